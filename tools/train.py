"""Train a distiller (or any mmdet / mmseg model) with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v]
    bash tools/dist_train.sh CONFIG NUM_PROCESSES   # torchrun + mmengine's DDP
"""
import argparse
import os

from mmengine.config import DictAction

from mmkd.engine.runtime import load_config, train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a distiller (or a plain model)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (float16 on CUDA, bfloat16 on CPU)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT, or without a value from the latest checkpoint in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    train(cfg, amp=args.amp, resume=args.resume)

if __name__ == '__main__':
    main()
