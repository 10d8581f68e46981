"""How each distillation loss weighs against the task loss, in value and in gradient.

    python tools/analysis/loss_balance.py DISTILL_CONFIG [DISTILL_CONFIG ...] \
        [--checkpoint CKPT] [--teacher-ckpt PATH] [--pretrained BACKBONE_CKPT] [--module neck] \
        [--batches 4] [--data-root DIR] [--json OUT] [--cfg-options k=v ...]

On ``--batches`` training batches (the config's train pipeline, the student in train mode, no
update), it evaluates the student's task losses and every distillation loss as the config
weights it, then the gradient of the summed task loss and of each distillation loss on the
parameters of ``--module``, a student module both reach (default: the neck, shared by every
FPN method and by every logit method). Printed per loss, averaged over the batches: value,
gradient norm, its ratio to the task gradient's norm, and the cosine between the two.

A ratio far below 1 means the loss barely moves the student (its weight is too small for this
model); far above, it drowns the task; a negative cosine means it pulls against the task. The
student is the config's at initialisation (``--pretrained``: with that backbone checkpoint,
see mmkd/engine/pretrain.py) or ``--checkpoint`` (a distillation checkpoint or an exported
student), for the balance late in training. With several configs (e.g. every method of a
pair, same teacher), each gets its table and ``--json`` maps config name to numbers.
"""
import argparse
import json
import os.path as osp
from itertools import islice
from typing import Dict, List

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner
from torch import nn

from mmkd.apis.analysis import (build_distiller, load_analysis_config, load_student_weights,
                                quiet_logs)
from mmkd.engine.pretrain import set_pretrained_backbone
from mmkd.models.distillers.loss_inputs import sum_loss_values
from mmkd.utils import get_submodule_or_raise


def gradient_balance(model: nn.Module, batch: dict, module: str) -> Dict[str, dict]:
    """``{name: dict(value, grad_norm, ratio, cosine)}`` for ``'task'`` and each distillation
    loss (``distill.<name>``) of one training batch; gradients are on ``module``'s parameters
    (a module of the student)."""
    params = [p for p in get_submodule_or_raise(model.student, module, 'student').parameters()
              if p.requires_grad]
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    parts = {'task': sum_loss_values({k: v for k, v in losses.items()
                                      if not k.startswith('distill.')})}
    parts.update({k: sum_loss_values({k: v}) for k, v in losses.items() if k.startswith('distill.')})
    grads = {}
    for name, value in parts.items():
        g = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        grads[name] = torch.cat([(x if x is not None else torch.zeros_like(p)).flatten()
                                 for x, p in zip(g, params)]).double()  # exact cosines
    task = grads['task']
    out = {}
    for name, grad in grads.items():
        norm = grad.norm().item()
        cosine = (torch.dot(grad, task) / (norm * task.norm()).clamp_min(1e-12)).item()
        out[name] = dict(value=float(parts[name].detach()), grad_norm=norm,
                         ratio=norm / max(task.norm().item(), 1e-12), cosine=cosine)
    return out


def average(per_batch: List[Dict[str, dict]]) -> Dict[str, dict]:
    """Mean of every field over the batches.

    Example:
        >>> average([{'a': dict(x=1.0)}, {'a': dict(x=3.0)}])
        {'a': {'x': 2.0}}
    """
    return {name: {field: sum(b[name][field] for b in per_batch) / len(per_batch)
                   for field in per_batch[0][name]} for name in per_batch[0]}


def format_table(balance: Dict[str, dict], module: str) -> str:
    lines = [f'{"loss":<32} {"value":>10} {"grad norm":>10} {"/ task":>8} {"cosine":>7}'
             f'   (gradients on student.{module})']
    for name, row in balance.items():
        lines.append(f'{name:<32} {row["value"]:>10.4g} {row["grad_norm"]:>10.4g} '
                     f'{row["ratio"]:>8.3g} {row["cosine"]:>7.3f}')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='distillation configs')
    parser.add_argument('--checkpoint', help='student weights to analyse (default: its init)')
    parser.add_argument('--teacher-ckpt', help="overrides the config's model.teacher_ckpt")
    parser.add_argument('--pretrained', help="the student's backbone checkpoint")
    parser.add_argument('--module', default='neck', help='student module the gradients are on')
    parser.add_argument('--batches', type=int, default=4)
    parser.add_argument('--data-root', help="overrides the config's data root")
    parser.add_argument('--json', help='also write the numbers here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def config_balance(config: str, args) -> Dict[str, dict]:
    """The averaged balance of one config under the command line's options."""
    cfg = load_analysis_config(config, args.cfg_options, args.teacher_ckpt, args.data_root)
    set_pretrained_backbone(cfg, args.pretrained)
    model = build_distiller(cfg).train()
    if args.checkpoint:
        load_student_weights(model, args.checkpoint)
        model.train()
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    return average([gradient_balance(model, batch, args.module)
                    for batch in islice(loader, args.batches)])


def main(argv=None) -> Dict[str, Dict[str, dict]]:
    """``{config name: {loss: numbers}}``."""
    args = parse_args(argv)
    quiet_logs()
    results = {}
    for config in args.configs:
        name = osp.splitext(osp.basename(config))[0]
        results[name] = config_balance(config, args)
        print(f'\n{name}\n{format_table(results[name], args.module)}', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main()
