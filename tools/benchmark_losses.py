"""Cost of every distillation loss next to one student training step, measured in one run.

    python tools/benchmark_losses.py [--device cpu|cuda] [--repeats 3] [--quick]

Inputs are COCO-sized: the 5 FPN levels (strides 8-128, 256 channels) of a batch of 2 images
padded to 1344x800, as RetinaNet sees a 1333x800 COCO image. Each loss is timed forward +
backward over the levels its COCO config uses (PCKA: the first 4), next to one RetinaNet-R50
student training step on the same batch. GKD's gradient maps need the distiller, so GKD is also
timed as whole distillation steps (stop-gradient and double-backward) against the plain
student step. TopKD, a logit loss, is timed on 80-class logit maps of the same 5 levels (every
location, its batch contrastive term on, capped at ``max_contrastive_samples`` = 4096
locations: the cap keeps the InfoNCE matrix 4096 x 4096 whatever the map size). PCKA is
compared with the per-channel Python loop of the published code (``pcka_loop_reference`` in
``mmkd/testing.py``, the reference the tests check ``pcka_loss`` against) on the first level,
and its intra term (RetinaNet's setting) with a plain per-channel loop of the same math
(``pcka_plain_loop``: patches cut once, one Gram CKA per channel) on the two largest levels.

Every measurement runs in its own process (spawned), so peak memory is that measurement's own:
on CUDA ``torch.cuda.max_memory_allocated``, on CPU the rise of the process's peak resident
memory (VmHWM, reset before the measurement) over its resident memory before it. Times are
medians of ``--repeats`` runs after one warm-up. ``--quick`` shrinks everything (for tests).
The measurements themselves are in :mod:`mmkd.apis.loss_benchmark`; this script prints them.
"""
import argparse
import os
from typing import Dict, Optional

import torch

from mmkd.apis.loss_benchmark import LOSSES, level_shapes, measure


def format_row(name: str, result: dict, reference: Optional[float]) -> str:
    if 'error' in result:
        return f'{name:<34} failed: {result["error"]}'
    ms = result['seconds'] * 1000
    share = f'{100 * result["seconds"] / reference:8.2f}%' if reference else f'{"":>9}'
    return f'{name:<34} {ms:10.1f} {share} {result["peak_mib"]:10.1f}'


def run(device: str, repeats: int, quick: bool, names=None) -> Dict[str, dict]:
    results = {}
    header = f'{"measurement":<34} {"ms":>10} {"of step":>9} {"peak MiB":>10}'
    shapes = ', '.join(f'{h}x{w}' for _, _, h, w in level_shapes(quick))
    print(f'device: {device}; batch 2, 256 channels, levels {shapes}; median of {repeats}')
    print(header)
    print('-' * len(header))
    student = results['student step'] = measure('model', 'student step', device, quick, repeats)
    reference = student.get('seconds')
    print(format_row('student step (RetinaNet R50)', student, None))
    for name in names or LOSSES:
        results[name] = measure('loss', name, device, quick, repeats)
        print(format_row(f'{name} ({LOSSES[name][1]} levels)', results[name], reference))
    for name in ('distill step (GKD stop-gradient)', 'distill step (GKD double-backward)'):
        results[name] = measure('model', name, device, quick, repeats)
        print(format_row(name, results[name], reference))
    races = (('PCKA on level P3, intra + inter, batched vs the published per-channel loop:',
              'PCKALoss (batched)', 'PCKA per-channel loop (reference)'),
             ('PCKA intra term on P3 + P4, batched vs a plain per-channel loop:',
              'PCKALoss intra (batched, P3+P4)', 'PCKA intra plain loop (P3+P4)'))
    for title, batched_name, loop_name in races:
        print(f'\n{title}')
        for name in (batched_name, loop_name):
            results[name] = measure('pcka', name, device, quick, repeats)
            print(format_row(name, results[name], None))
        batched = results[batched_name].get('seconds')
        loop = results[loop_name].get('seconds')
        if batched and loop:
            print(f'batched PCKA is {loop / batched:.2f}x as fast as the loop')
    return results


def main(argv=None) -> Dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--quick', action='store_true', help='small inputs, for tests')
    parser.add_argument('--losses', nargs='+', choices=list(LOSSES), help='only these losses')
    args = parser.parse_args(argv)
    return run(args.device, args.repeats, args.quick, args.losses)


if __name__ == '__main__':
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    main()
