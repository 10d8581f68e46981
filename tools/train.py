"""Train a distiller (or any mmdet / mmseg model) with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v]
    bash tools/dist_train.sh CONFIG NUM_PROCESSES   # torchrun + mmengine's DDP
"""
import argparse

from mmkd.engine.runtime import add_train_arguments, load_config, parse_tool_args, train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a distiller (or a plain model)')
    parser.add_argument('config', help='train config file path')
    add_train_arguments(parser)
    return parse_tool_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    train(cfg, amp=args.amp, resume=args.resume)

if __name__ == '__main__':
    main()
