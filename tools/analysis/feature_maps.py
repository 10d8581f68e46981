"""Teacher, student and |difference| feature maps of chosen layers on one image.

    python tools/analysis/feature_maps.py DISTILL_CONFIG IMAGE [--checkpoint CKPT] \
        [--teacher-ckpt PATH] [--layers neck.0 ...] [--layers-student NAME ...] \
        [--out maps.png] [--cfg-options k=v ...]

The image goes through the config's test pipeline (annotation loading removed) and each
model's own data preprocessor. For every layer, the channel mean of the teacher's and the
student's feature is drawn (the student's map resized to the teacher's size when they differ,
so channel counts and strides may differ), each min-max normalised to [0, 1], and their
absolute difference. One row per layer: input image | teacher | student | |T - S|. Without
``--checkpoint`` the student is the config's student at initialisation. The maps cover what
the models see: the resized input, plus any padding the data preprocessor adds to reach its
size divisor.

Layer names are those of every analysis tool (:mod:`mmkd.apis.analysis`): module names
(``backbone.layer2``) or a module and an output index (``neck.0``); a module with several
outputs (``neck``) stands for all of them. The default: every neck output.
"""
import argparse
import copy
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import DictAction
from mmengine.dataset import Compose, pseudo_collate
from torch import Tensor

from mmkd.apis.analysis import (build_distiller, load_analysis_config, load_student_weights,
                                quiet_logs, record_features, resolve_layers, save_figure)


def normalise(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Min-max normalise to [0, 1]; a constant map becomes zeros."""
    low, high = x.min(), x.max()
    return (x - low) / (high - low).clamp_min(eps)


def channel_mean_maps(teacher: Tensor, student: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """(teacher map, student map, |difference|) of one image's features.

    Args:
        teacher (Tensor): (C_T, H_T, W_T) or (1, C_T, H_T, W_T).
        student (Tensor): (C_S, H_S, W_S) or (1, C_S, H_S, W_S); channels and size may differ.

    Returns:
        tuple: three (H_T, W_T) float32 maps in [0, 1]: the channel means, each min-max
        normalised (the student's bilinearly resized to the teacher's size first), and
        their absolute difference.

    Example:
        >>> t, s = torch.rand(8, 6, 6), torch.rand(1, 4, 3, 3)
        >>> [tuple(m.shape) for m in channel_mean_maps(t, s)]
        [(6, 6), (6, 6), (6, 6)]
    """
    maps = []
    for name, feature in (('teacher', teacher), ('student', student)):
        feature = feature.detach().float().cpu()
        if feature.dim() == 4 and feature.shape[0] == 1:
            feature = feature[0]
        if feature.dim() != 3:
            raise ValueError(f'channel_mean_maps needs one image\'s (C, H, W) feature map, got '
                             f'{tuple(feature.shape)} from the {name}.')
        maps.append(feature.mean(dim=0))
    t_map, s_map = maps
    if s_map.shape != t_map.shape:
        s_map = F.interpolate(s_map[None, None], size=tuple(t_map.shape), mode='bilinear',
                              align_corners=False)[0, 0]
    t_map, s_map = normalise(t_map), normalise(s_map)
    return t_map, s_map, (t_map - s_map).abs()


def load_image(cfg, image: str) -> dict:
    """One image through the config's test pipeline, as a batch of one.

    The pipeline's annotation loading is dropped: a user's image has no annotations.
    """
    pipeline = [copy.deepcopy(t) for t in cfg.test_dataloader.dataset.pipeline
                if 'LoadAnnotations' not in str(t.get('type', ''))]
    if not osp.isfile(image):
        raise FileNotFoundError(f'Image {image!r} does not exist.')
    data = Compose(pipeline)(dict(img_path=image, img_id=0))
    return pseudo_collate([data])


def input_image(batch: dict) -> np.ndarray:
    """The packed input of a one-image batch as an RGB uint8 array (what the models see)."""
    image = batch['inputs'][0].permute(1, 2, 0).numpy()
    return np.ascontiguousarray(image[..., ::-1])  # mmcv loads BGR


def plot_maps(image: np.ndarray, rows: Dict[str, Tuple[Tensor, Tensor, Tensor]],
              labels: Dict[str, str], out: str, suptitle: str = '') -> None:
    """A grid: one row per layer, columns input | teacher | student | |T - S|."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    titles = ('input', 'teacher (channel mean)', 'student (channel mean)', '|teacher - student|')
    fig, axes = plt.subplots(len(rows), 4, figsize=(11, 2.7 * len(rows) + 0.6), squeeze=False,
                             constrained_layout=True)
    for r, (name, (t_map, s_map, diff)) in enumerate(rows.items()):
        axes[r, 0].imshow(image)
        for c, (values, cmap) in enumerate(((t_map, 'viridis'), (s_map, 'viridis'),
                                            (diff, 'magma')), start=1):
            shown = axes[r, c].imshow(values.numpy(), cmap=cmap, vmin=0, vmax=1)
        fig.colorbar(shown, ax=axes[r, 3], fraction=0.046, pad=0.04)
        axes[r, 0].set_ylabel(labels[name], fontsize=9)
        axes[r, 3].set_xlabel(f'mean {float(diff.mean()):.3f}', fontsize=9)
        for c in range(4):
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=10)
    save_figure(fig, out, suptitle)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='distillation config')
    parser.add_argument('image', help='image file')
    parser.add_argument('--checkpoint', help='distilled checkpoint (default: the student at '
                        'initialisation)')
    parser.add_argument('--teacher-ckpt', help="teacher weights (default: the config's)")
    parser.add_argument('--layers', nargs='+', default=['neck'],
                        help='layers to show, for both models (default: every neck output)')
    parser.add_argument('--layers-student', nargs='+',
                        help='student layers, one per --layers entry (default: the same names)')
    parser.add_argument('--out', default='maps.png', help='output PNG')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    return parser.parse_args(argv)


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    quiet_logs()
    cfg = load_analysis_config(args.config, args.cfg_options, args.teacher_ckpt)
    distiller = build_distiller(cfg, args.device)
    if args.checkpoint:
        load_student_weights(distiller, args.checkpoint)
    student_names = args.layers_student or args.layers
    if len(student_names) != len(args.layers):
        raise ValueError(f'--layers-student names {len(student_names)} layers but --layers '
                         f'{len(args.layers)}: give one student layer per teacher layer.')
    teacher_layers = resolve_layers(distiller.teacher, args.layers, 'teacher')
    student_layers = resolve_layers(distiller.student, student_names, 'student')

    batch = load_image(cfg, args.image)
    teacher = record_features(distiller.teacher, teacher_layers, batch)
    student = record_features(distiller.student, student_layers, batch)
    if len(teacher) != len(student):
        raise ValueError(f'The teacher layers give {len(teacher)} maps ({list(teacher)}) but '
                         f'the student layers {len(student)} ({list(student)}).')

    rows, labels, summary = OrderedDict(), {}, []
    which = (f'student from {osp.basename(args.checkpoint)}' if args.checkpoint
             else 'student at initialisation')
    print(f'{args.image} through the test pipeline; {which}')
    for (t_name, t_feat), (s_name, s_feat) in zip(teacher.items(), student.items()):
        t_map, s_map, diff = channel_mean_maps(t_feat[0], s_feat[0])
        rows[t_name] = (t_map, s_map, diff)
        label = t_name if t_name == s_name else f'{t_name} / {s_name}'
        t_shape, s_shape = tuple(t_feat.shape[1:]), tuple(s_feat.shape[1:])
        labels[t_name] = f'{label}\nT {"x".join(map(str, t_shape))}\nS ' \
                         f'{"x".join(map(str, s_shape))}'
        summary.append(dict(teacher_layer=t_name, student_layer=s_name, teacher_shape=t_shape,
                            student_shape=s_shape, mean_abs_diff=float(diff.mean())))
        print(f'{label}: teacher {t_shape}, student {s_shape}, mean |T - S| of the normalised '
              f'channel-mean maps {float(diff.mean()):.3f}')
    plot_maps(input_image(batch), rows, labels, args.out,
              f'{osp.basename(args.image)}: {osp.basename(args.config)} ({which})')
    print(f'maps: {args.out}')
    return summary


if __name__ == '__main__':
    main()
