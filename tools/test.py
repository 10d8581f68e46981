"""Evaluate a checkpoint: the student of a distiller config, or a plain mmdet / mmseg model.

    python tools/test.py CONFIG CKPT [--work-dir DIR] [--tta] [--show-dir DIR] [--cfg-options k=v]

``--tta`` runs the config's test-time augmentation (its ``tta_model`` and ``tta_pipeline``,
as mmdet's and mmseg's own tools/test.py do) around the student; ``--show-dir`` makes the
config's visualization hook draw the student's predictions into ``<work dir>/<timestamp>/DIR``.
"""
import argparse

from mmengine.config import DictAction
from mmengine.runner import Runner

from mmkd.engine import check_annotation_files
from mmkd.engine.runtime import (add_launcher_arguments, distributed_teardown, enable_tta,
                                 load_config, parse_tool_args, setup_device, show_predictions)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation: the config's tta_model and tta_pipeline")
    parser.add_argument('--show-dir', help='draw the predictions into this folder (under the '
                        "work dir's timestamped folder), by the config's visualization hook")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    add_launcher_arguments(parser)
    return parse_tool_args(parser, argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    if args.tta:
        enable_tta(cfg)
    if args.show_dir:
        show_predictions(cfg, args.show_dir)
    setup_device(cfg)
    check_annotation_files(cfg)
    runner = Runner.from_cfg(cfg)
    with distributed_teardown():
        return runner.test()


if __name__ == '__main__':
    main()
