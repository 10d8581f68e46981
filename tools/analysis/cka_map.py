"""Heatmap of linear CKA between every teacher layer and every student layer.

    python tools/analysis/cka_map.py DISTILL_CONFIG [--checkpoint DISTILLED_CKPT] \
        [--teacher-ckpt PATH] [--layers-teacher NAME ...] [--layers-student NAME ...] \
        [--batches 4] [--split val|train] [--pool 8] [--out cka.png] [--json cka.json] \
        [--data-root DIR] [--cfg-options k=v ...]

CKA compares two representations of the same images: each layer's output on ``--batches``
batches of the config's dataloader is average-pooled to ``--pool`` x ``--pool`` cells,
flattened to (num_images, features), and every (teacher layer, student layer) pair gets
``mmkd.models.losses.linear_cka`` (centered; 1 = the same representation up to rotation and
scale). Without ``--checkpoint`` the figure has one panel: the config's student at its
initialisation. With it, two panels side by side: before distillation (that initialisation,
seeded with the config's ``randomness.seed``) and after (the distilled checkpoint; a plain
student checkpoint from tools/export_student.py works too).

Layer names are module names (``backbone.layer3``) or a module name and an output index
(``neck.0``: the first FPN level). A module with several outputs and no index (``neck``)
stands for all of them (:mod:`mmkd.apis.analysis`, shared with the other analysis tools). The
default: the backbone's stages and the neck's outputs.
"""
import argparse
import copy
import json
import os
import os.path as osp
from collections import OrderedDict
from itertools import islice
from typing import Dict, List, Mapping, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.config import DictAction
from mmengine.runner import Runner
from torch import Tensor, nn

from mmkd.apis.analysis import (Layer, build_distiller, load_analysis_config,
                                load_student_weights, quiet_logs, record_features,
                                resolve_layers, save_figure)
from mmkd.models.losses.cka import linear_cka


# ---------------------------------------------------------------------- layers
def default_layers(model: nn.Module) -> List[str]:
    """The backbone's stages (ResNet's ``layer1..4``, else its outputs) and the neck's outputs."""
    names = []
    backbone = getattr(model, 'backbone', None)
    if backbone is not None:
        stages = getattr(backbone, 'res_layers', None)
        names += [f'backbone.{s}' for s in stages] if stages else ['backbone']
    if getattr(model, 'neck', None) is not None:
        names.append('neck')
    if not names:
        raise ValueError(f'{type(model).__name__} has no backbone or neck: name the layers '
                         'to compare on the command line.')
    return names


# ---------------------------------------------------------------------- CKA
def flatten_features(x: Tensor, pool: int) -> Tensor:
    """(N, C, H, W) -> (N, C * pool * pool) by adaptive average pooling (``pool`` 0: no
    pooling); other shapes are flattened per image."""
    x = x.detach().float()
    if pool and x.dim() == 4:
        x = F.adaptive_avg_pool2d(x, pool)
    return x.reshape(x.shape[0], -1).cpu()


def gather_features(model: nn.Module, layers: Sequence[Layer], batches: Sequence[dict],
                    pool: int = 8) -> Dict[str, Tensor]:
    """``{layer: (num_images, features)}`` over ``batches``, in their order."""
    chunks: Dict[str, List[Tensor]] = OrderedDict()
    for batch in batches:
        for name, value in record_features(model, layers, batch).items():
            chunks.setdefault(name, []).append(flatten_features(value, pool))
    features = OrderedDict()
    for name, parts in chunks.items():
        widths = {p.shape[1] for p in parts}
        if len(widths) > 1:
            raise ValueError(f'Layer {name!r} has a different size in different batches '
                             f'({sorted(widths)} features): use --pool > 0.')
        features[name] = torch.cat(parts)
    return features


def cka_matrix(features_a: Union[Mapping[str, Tensor], Sequence[Tensor]],
               features_b: Union[Mapping[str, Tensor], Sequence[Tensor]]) -> Tensor:
    """Linear CKA (centered) of every feature of ``a`` with every feature of ``b``.

    Args:
        features_a: ``{name: (n, ...)}`` or a list of (n, ...) tensors, rows = the same n
            images for every entry; each is flattened to (n, d).
        features_b: the same for the other model.

    Returns:
        Tensor: (len(a), len(b)) float32, clamped to [0, 1] (rounding can leave a value a
        hair above 1).

    Example:
        >>> x = torch.randn(10, 4, 3, 3)
        >>> m = cka_matrix({'a': x}, [x, 2 * x.flatten(1), torch.randn(10, 5)])
        >>> m.shape
        torch.Size([1, 3])
        >>> [round(float(v), 4) for v in m[0, :2]]
        [1.0, 1.0]
    """
    a = list(features_a.values()) if isinstance(features_a, Mapping) else list(features_a)
    b = list(features_b.values()) if isinstance(features_b, Mapping) else list(features_b)
    a = [x.reshape(x.shape[0], -1).double() for x in a]
    b = [y.reshape(y.shape[0], -1).double() for y in b]
    n = {x.shape[0] for x in a + b}
    if len(n) != 1:
        raise ValueError(f'CKA compares the same images: every feature needs the same number '
                         f'of rows, got {sorted(n)}.')
    if n.pop() < 3:
        raise ValueError('Centered CKA needs at least 3 images (with 2 it is always 1): use '
                         'more --batches.')
    matrix = torch.zeros(len(a), len(b))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            matrix[i, j] = float(linear_cka(x, y))
    return matrix.clamp_(0, 1)


# ---------------------------------------------------------------------- output
def format_matrix(matrix: Tensor, rows: Sequence[str], cols: Sequence[str]) -> str:
    width = max(6, *map(len, cols))
    first = max(map(len, rows))
    lines = [' ' * first + ''.join(f'  {c:>{width}}' for c in cols)]
    for name, row in zip(rows, matrix.tolist()):
        lines.append(f'{name:<{first}}' + ''.join(f'  {v:>{width}.3f}' for v in row))
    return '\n'.join(lines)


def plot_cka(panels: Mapping[str, Tensor], rows: Sequence[str], cols: Sequence[str],
             out: str, suptitle: str = '', vmin: float = 0.0) -> None:
    """One annotated heatmap per ``{title: (len(rows), len(cols)) matrix}`` entry, side by
    side, with a shared colour bar."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    row_label, col_label = 0.075 * max(map(len, rows)), 0.055 * max(map(len, cols))
    panel_w = 0.62 * len(cols) + row_label + 0.5
    fig, axes = plt.subplots(
        1, len(panels), squeeze=False, constrained_layout=True,
        figsize=(len(panels) * panel_w + 1.0, 0.45 * len(rows) + col_label + 1.4))
    image = None
    for ax, (title, matrix) in zip(axes[0], panels.items()):
        image = ax.imshow(matrix.numpy(), vmin=vmin, vmax=1, cmap='viridis')
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha='right')
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel('student layer')
        ax.set_ylabel('teacher layer')
        ax.set_title(title)
        fontsize = 8 if len(cols) <= 10 else 6
        threshold = vmin + 0.6 * (1 - vmin)
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                value = float(matrix[i, j])
                ax.text(j, i, f'{value:.2f}', ha='center', va='center', fontsize=fontsize,
                        color='black' if value > threshold else 'white')
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label='linear CKA')
    save_figure(fig, out, suptitle)


# ---------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='distillation config')
    parser.add_argument('--checkpoint', help='distilled checkpoint: adds the "after" panel')
    parser.add_argument('--teacher-ckpt', help="teacher weights (default: the config's)")
    parser.add_argument('--layers-teacher', nargs='+', help='teacher layers (rows)')
    parser.add_argument('--layers-student', nargs='+', help='student layers (columns)')
    parser.add_argument('--batches', type=int, default=4, help='dataloader batches to use')
    parser.add_argument('--split', choices=['val', 'train', 'test'], default='val',
                        help='which dataloader of the config gives the images')
    parser.add_argument('--pool', type=int, default=8,
                        help='average-pool maps to POOL x POOL cells (0: full maps)')
    parser.add_argument('--out', default='cka.png', help='output PNG')
    parser.add_argument('--json', help='also write the matrices to this JSON file')
    parser.add_argument('--vmin', type=float, default=0.0,
                        help='lower end of the colour scale (e.g. 0.8 when all values are high)')
    parser.add_argument('--data-root', help='dataset root (replaces the config\'s)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error('--batches must be >= 1')
    if args.pool < 0:
        parser.error('--pool must be >= 0')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_logs()
    cfg = load_analysis_config(args.config, args.cfg_options, args.teacher_ckpt, args.data_root)
    distiller = build_distiller(cfg, args.device)
    teacher_layers = resolve_layers(
        distiller.teacher, args.layers_teacher or default_layers(distiller.teacher), 'teacher')
    student_layers = resolve_layers(
        distiller.student, args.layers_student or default_layers(distiller.student), 'student')

    loader = Runner.build_dataloader(copy.deepcopy(cfg[f'{args.split}_dataloader']), seed=0)
    batches = list(islice(loader, args.batches))  # kept: both students see the same images
    teacher = gather_features(distiller.teacher, teacher_layers, batches, args.pool)
    num_images = next(iter(teacher.values())).shape[0]
    student = gather_features(distiller.student, student_layers, batches, args.pool)
    matrices = OrderedDict(init=cka_matrix(teacher, student))
    titles = dict(init='student at initialisation')
    if args.checkpoint:
        load_student_weights(distiller, args.checkpoint)
        student = gather_features(distiller.student, student_layers, batches, args.pool)
        matrices['distilled'] = cka_matrix(teacher, student)
        titles = dict(init='before: student at initialisation',
                      distilled=f'after: distilled student ({osp.basename(args.checkpoint)})')

    rows, cols = list(teacher), list(student)
    print(f'Linear CKA on {num_images} {args.split} images (rows: teacher layers, columns: '
          f'student layers; maps pooled to {args.pool}x{args.pool})' if args.pool else
          f'Linear CKA on {num_images} {args.split} images (rows: teacher layers, columns: '
          'student layers; full maps)')
    for key, matrix in matrices.items():
        print(f'\n[{titles[key]}]')
        print(format_matrix(matrix, rows, cols))
    plot_cka(OrderedDict((titles[k].replace(' (', '\n('), m) for k, m in matrices.items()),
             rows, cols, args.out, f'{osp.basename(args.config)}: linear CKA, {num_images} '
             f'{args.split} images', args.vmin)
    print(f'\nheatmap: {args.out}')
    result = dict(config=args.config, checkpoint=args.checkpoint, num_images=num_images,
                  split=args.split, pool=args.pool, teacher_layers=rows, student_layers=cols,
                  matrices={key: m.tolist() for key, m in matrices.items()})
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
        print(f'matrices: {args.json}')
    return result


if __name__ == '__main__':
    main()
