"""Every loss value of distillation configs at a fixed seed, to check that a change to the
code leaves them unchanged.

    python tools/analysis/loss_values.py [CONFIG ...] [--seed 0] [--json OUT] \
        [--compare BEFORE.json] [--rtol 1e-5]

For each config (default: every embedded-digits config under configs/distill) it builds the
Distiller with random init (seeded; no checkpoint is read), runs one training forward on a
seeded random batch at the digits size (2 images of 128 px), and records every task and
distillation loss, their total, and the norm of the total's gradient on the student and the
connectors. ``--compare`` reads the JSON of an earlier run (e.g. before a refactor, with
``PYTHONPATH`` pointing at the old code) and prints, per config, the largest relative
difference; it exits with status 1 when one exceeds ``--rtol`` or a loss appeared or went.
"""
import argparse
import glob
import json
import math
import os.path as osp
import sys
from typing import Dict

import torch
from mmengine.config import Config

from mmkd.models.distillers.loss_inputs import sum_loss_values
from mmkd.models.distillers.model_config import get_num_classes
from mmkd.testing import build_random_distiller, random_batch, trains_masks

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS = osp.join(REPO, 'configs', 'distill', '*', '*_digits.py')


def loss_values(path: str, seed: int = 0, size: int = 128) -> Dict[str, float]:
    """``{loss key: value}`` of one training forward, plus ``'total'`` and ``'grad_norm'``."""
    cfg = Config.fromfile(path)
    model = build_random_distiller(cfg, seed=seed).train()
    task = 'seg' if cfg.get('default_scope') == 'mmseg' else 'det'
    batch = random_batch(task, get_num_classes(model.student) or 1, 2, size, seed,
                         masks=trains_masks(model.student))
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    values = {key: float(sum_loss_values({key: value}).detach())
              for key, value in losses.items() if 'loss' in key}
    total = sum_loss_values(losses)
    total.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    values['total'] = float(total.detach())
    values['grad_norm'] = float(torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))
    return values


def compare(now: Dict[str, dict], before: Dict[str, dict], rtol: float) -> bool:
    """Print the largest relative difference per config; True when all are within rtol."""
    ok = True
    for name in sorted(set(now) | set(before)):
        if name not in now or name not in before:
            print(f'{name}: only in {"the new run" if name in now else "the earlier run"}')
            ok = False
            continue
        a, b = now[name], before[name]
        if set(a) != set(b):
            print(f'{name}: loss keys differ: new {sorted(set(a) - set(b))}, '
                  f'gone {sorted(set(b) - set(a))}')
            ok = False
            continue
        worst = max(a, key=lambda k: _rel(a[k], b[k]))
        diff = _rel(a[worst], b[worst])
        flag = 'ok' if diff <= rtol else 'CHANGED'
        ok &= diff <= rtol
        print(f'{name}: max relative difference {diff:.2e} ({worst}: {b[worst]:.6g} -> '
              f'{a[worst]:.6g}) {flag}')
    return ok


def _rel(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(a - b) / max(abs(b), 1e-12)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='*', help='default: every digits distillation config')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the values here')
    parser.add_argument('--compare', help='JSON of an earlier run to compare with')
    parser.add_argument('--rtol', type=float, default=1e-5)
    args = parser.parse_args(argv)
    paths = args.configs or sorted(glob.glob(DIGITS))
    results = {}
    for path in paths:
        name = osp.splitext(osp.basename(path))[0]
        results[name] = loss_values(path, args.seed)
        print(f'{name}: total {results[name]["total"]:.6g}, '
              f'grad norm {results[name]["grad_norm"]:.6g}', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1, sort_keys=True)
    if args.compare:
        with open(args.compare) as f:
            before = json.load(f)
        if args.configs:  # compare only what ran
            before = {k: v for k, v in before.items() if k in results}
        return 0 if compare(results, before, args.rtol) else 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
