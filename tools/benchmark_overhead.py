"""What distillation adds to a training step, per shipped method, measured in one run.

    python tools/benchmark_overhead.py [--pair digits_det] [--methods fitnet_fpn cka_fpn ...]
        [--device cpu|cuda] [--repeats 3] [--batch-size 2] [--image-size H W] [--json OUT]

For every method config of a teacher / student pair (``configs/distill/<method>/
<method>_<where>_<pair>.py``, found by :mod:`mmkd.apis.method_configs`) it builds the Distiller (random init: timings do not depend on
the weights) and times, on the same synthetic batch (random images, random ground truth):

* ``student``: the student's own training step (its loss, forward + backward);
* ``teacher``: the teacher's forward alone, no grad, as far as the method reads it
  (backbone + neck, or up to the head's outputs);
* ``distill``: the whole distillation step (teacher, student, every distillation loss,
  backward).

and prints ``ratio = distill / (student + teacher)``: 1.00 means the distillation losses,
recorders and connectors cost nothing. The goal is at most 1.05; methods whose design needs
more (GKD's task-loss gradients, SoKD's refiner) are reported like every other. Peak memory is
each step's own rise (see ``mmkd/utils/benchmark.py``). Without ``--image-size`` the images
have the size the pair trains on (128 px digits, 1333x800 COCO, 1024x512 Cityscapes crops).
"""
import argparse
import json
import os
import os.path as osp
import time
from typing import Callable, Dict

import torch
from mmengine.config import Config

from mmkd.apis.method_configs import PAIRS, method_configs
from mmkd.models.distillers.model_config import get_num_classes
from mmkd.testing import build_random_distiller, random_batch
from mmkd.utils.benchmark import measure_step

#: Where this benchmark's goal does not apply, and why.
BY_DESIGN = {
    'gkd': 'needs each model\'s task-loss gradient (teacher head backward)',
    'sokd': 'trains its own refiner and area head',
}
GOAL = 1.05


def step_functions(distiller, data: dict) -> Dict[str, Callable[[], None]]:
    """The three measured steps on one preprocessed batch."""
    inputs, samples = data['inputs'], data['data_samples']
    teacher_inputs = data.get('teacher_inputs', inputs)
    teacher_samples = data.get('teacher_data_samples', samples)

    def backward(losses):
        loss, _ = distiller.parse_losses(losses)
        loss.backward()
        distiller.zero_grad(set_to_none=True)

    def student():
        backward(distiller.student.loss(inputs, samples))

    def teacher():
        with torch.no_grad():
            if distiller.teacher_forward_mode == 'extract_feat':
                distiller.teacher.extract_feat(teacher_inputs)
            else:  # 'tensor', and 'loss' (GKD) without its gradient part
                distiller.teacher(teacher_inputs, teacher_samples, mode='tensor')

    def distill():
        backward(distiller.loss(inputs, samples, data.get('teacher_inputs'),
                                data.get('teacher_data_samples')))

    return dict(student=student, teacher=teacher, distill=distill)


def overhead_ratio(result: Dict[str, dict]) -> float:
    """distill / (student + teacher) of one method's measurements.

    Example:
        >>> overhead_ratio(dict(student=dict(seconds=2.0), teacher=dict(seconds=1.0),
        ...                     distill=dict(seconds=3.3)))
        1.1
    """
    return round(result['distill']['seconds']
                 / (result['student']['seconds'] + result['teacher']['seconds']), 10)


def measure_steps(steps: Dict[str, Callable[[], None]], device: str, repeats: int,
                  clock: Callable[[], float] = time.perf_counter) -> dict:
    """Each step's median time and peak memory, all in this process, plus the ratio."""
    result = {name: measure_step(step, device, repeats, clock) for name, step in steps.items()}
    result['ratio'] = overhead_ratio(result)
    return result


def benchmark_method(path: str, pair: str, device: str, repeats: int, batch_size: int,
                     size: tuple) -> dict:
    _, task, _, cfg_options = PAIRS[pair]
    distiller = build_random_distiller(Config.fromfile(path), cfg_options).to(device).train()
    batch = random_batch(task, get_num_classes(distiller.student) or 1, batch_size, size)
    data = distiller.data_preprocessor(batch, training=True)
    return measure_steps(step_functions(distiller, data), device, repeats)


def format_table(results: Dict[str, dict]) -> str:
    header = (f'{"method":<36} {"student ms":>10} {"teacher ms":>10} {"distill ms":>10} '
              f'{"ratio":>6} {"student MiB":>11} {"distill MiB":>11}  note')
    lines = [header, '-' * len(header)]
    for method, r in results.items():
        if 'error' in r:
            lines.append(f'{method:<36} failed: {r["error"]}')
            continue
        note = ''
        if r['ratio'] > GOAL:
            reason = next((why for key, why in BY_DESIGN.items() if method.startswith(key)),
                          None)
            note = f'above {GOAL}' + (f' by design: {reason}' if reason else '')
        lines.append(
            f'{method:<36} {1000 * r["student"]["seconds"]:>10.1f} '
            f'{1000 * r["teacher"]["seconds"]:>10.1f} {1000 * r["distill"]["seconds"]:>10.1f} '
            f'{r["ratio"]:>6.3f} {r["student"]["peak_mib"]:>11.1f} '
            f'{r["distill"]["peak_mib"]:>11.1f}  {note}'.rstrip())
    return '\n'.join(lines)


def main(argv=None) -> Dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pair', choices=list(PAIRS), default='digits_det')
    parser.add_argument('--methods', nargs='+', help='method names (default: all of the pair)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--image-size', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--json', help='also write the measurements here')
    args = parser.parse_args(argv)
    _, task, default_size, _ = PAIRS[args.pair]
    size = tuple(args.image_size or default_size)
    configs = method_configs(args.pair, args.methods)
    print(f'pair {args.pair} ({task}), device {args.device}, batch {args.batch_size} of '
          f'{size[0]}x{size[1]}, median of {args.repeats}; {len(configs)} methods')
    results = {}
    for method, path in configs.items():
        try:
            results[method] = benchmark_method(path, args.pair, args.device, args.repeats,
                                               args.batch_size, size)
        except Exception as err:  # reported in the table, not hidden
            results[method] = dict(error=f'{type(err).__name__}: {err}')
        print(f'  measured {method}', flush=True)
    print(format_table(results))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(pair=args.pair, device=args.device, batch_size=args.batch_size,
                           image_size=size, repeats=args.repeats, results=results), f, indent=2)
    return results


if __name__ == '__main__':
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    main()
