"""Evaluate a checkpoint: the student of a distiller config, or a plain mmdet / mmseg model.

    python tools/test.py CONFIG CKPT [--work-dir DIR] [--cfg-options k=v]
"""
import argparse

from mmengine.config import DictAction
from mmengine.runner import Runner

from mmkd.engine import check_annotation_files
from mmkd.engine.runtime import (add_launcher_arguments, distributed_teardown, load_config,
                                 parse_tool_args, setup_device)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    add_launcher_arguments(parser)
    return parse_tool_args(parser, argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    setup_device(cfg)
    check_annotation_files(cfg)
    runner = Runner.from_cfg(cfg)
    with distributed_teardown():
        return runner.test()


if __name__ == '__main__':
    main()
