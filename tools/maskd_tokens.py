"""MasKD stage 1: learn the receptive tokens on the frozen teacher, for ``MasKDLoss(tokens=...)``.

    python tools/maskd_tokens.py CONFIG [CHECKPOINT] [--out PATH] [--num-tokens 8]
        [--iters 200] [--lr 0.1] [--weight-decay 0.001] [--batch-size N] [--device DEVICE]
        [--seed 0] [--cfg-options k=v]

CONFIG is the teacher's own config (``configs/digits/semfpn_r18_digits.py``, an mmseg
model-zoo config) with its CHECKPOINT, or a distillation config: then its ``model.teacher``
runs, with ``model.teacher_ckpt`` unless CHECKPOINT is given. The teacher must be an mmseg
``EncoderDecoder`` (one decode head); it runs in eval mode on the config's
``train_dataloader`` (its training pipeline and augmentation; ``--batch-size`` overrides its
batch size), cycled until ``--iters`` iterations are done. Only the tokens learn: SGD,
momentum 0.9, poly decay, on the cross-entropy of the masked teacher logits plus the masks'
Dice diversity (:mod:`mmkd.models.losses.maskd`).

Published (Cityscapes): ``--iters 10000 --batch-size 16 --lr 0.1 --weight-decay 0.001``, 8
tokens. The default ``--iters 200`` is the digits benchmark's.

The file (``torch.save(dict(tokens=(T, C), num_classes=C, meta=...))``, written atomically)
goes to ``--out``, else next to the checkpoint (``<checkpoint without .pth>.maskd_tokens.pth``;
for a URL checkpoint, in the config's work dir). The same teacher, data, settings and
``--seed`` give the same tokens on the same machine. A summary (first and last losses, each
token's mean mask coverage) is printed.
"""
import argparse

from mmkd.apis.maskd_tokens import DEFAULT_ITERS, learn_maskd_tokens
from mmkd.apis.significance import add_teacher_tool_arguments


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MasKD stage 1: learn receptive tokens on the frozen teacher')
    parser.add_argument('config', help='teacher config, or a distillation config')
    parser.add_argument('checkpoint', nargs='?',
                        help='teacher checkpoint (default for a distillation config: its '
                        'model.teacher_ckpt)')
    parser.add_argument('--out', help='tokens file to write (default: next to the checkpoint, '
                        '<checkpoint without .pth>.maskd_tokens.pth)')
    parser.add_argument('--num-tokens', type=int, default=8, help='T (published: 8)')
    parser.add_argument('--iters', type=int, default=DEFAULT_ITERS,
                        help=f'SGD iterations (default {DEFAULT_ITERS}; published: 10000)')
    parser.add_argument('--lr', type=float, default=0.1,
                        help='initial learning rate, poly decay (published: 0.1)')
    parser.add_argument('--weight-decay', type=float, default=1e-3,
                        help='SGD weight decay (published: 0.001)')
    parser.add_argument('--batch-size', type=int,
                        help="images per iteration (default: the config's train_dataloader "
                        'batch size; published: 16)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seeds the tokens, the shuffle and the augmentation')
    add_teacher_tool_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> str:
    """Learn, write and summarise; returns the path written."""
    args = parse_args(argv)
    return learn_maskd_tokens(args.config, args.checkpoint, args.out, args.num_tokens,
                              args.iters, args.lr, args.weight_decay, args.batch_size,
                              args.device, args.cfg_options, args.seed)


if __name__ == '__main__':
    main()
