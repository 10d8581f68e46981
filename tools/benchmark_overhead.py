"""What distillation adds to a training step, per shipped method, measured in one run.

    python tools/benchmark_overhead.py [--pair digits_det] [--methods fitnet_fpn cka_fpn ...]
        [--device cpu|cuda] [--repeats 3] [--batch-size 2] [--image-size H W] [--json OUT]
    python tools/benchmark_overhead.py --teacher-settings [--cases pkd_x101_r50 cwd_r101_r50]
        [--settings fp32 bf16 ...] [--quick] [--device cpu|cuda] [--repeats 3] [--json OUT]

For every method config of a teacher / student pair (``configs/distill/<method>/
<method>_<where>_<pair>.py``, found by :mod:`mmkd.apis.method_configs`) it builds the
Distiller (random init: timings do not depend on the weights) and times, on the same synthetic batch (random images, random ground truth):

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

The second form measures the teacher settings (``teacher_precision``,
``teacher_channels_last``, ``teacher_early_stop``, ``teacher_compile``; see
``mmkd/models/distillers/teacher_runner.py``) on the model-zoo pairs of issue 11 (``CASES``):
per case, in one process, on one built distiller and one batch, the student step, the fp32
teacher forward (whole forward of the method's teacher_forward_mode) and the distill step
under each setting, as ratios to (student step + fp32 teacher forward), with each step's
peak memory. ``--quick`` runs the same on the digits pair at 64 px (seconds; the tests use it).
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
from mmkd.models.distillers.teacher_runner import cpu_has_fast_bf16
from mmkd.testing import build_random_distiller, random_batch
from mmkd.utils.benchmark import measure_step, peak_tensor_mib

#: Where this benchmark's goal does not apply, and why.
BY_DESIGN = {
    'gkd': 'needs each model\'s task-loss gradient (teacher head backward)',
    'sokd': 'trains its own refiner and area head',
    'crosskd': 'runs the teacher\'s remaining head layers on the student\'s features, with '
               'backward through them',
    'kddetr': 'decodes its distillation points with both decoders (the student\'s with backward)',
}
GOAL = 1.05


def step_functions(distiller, data: dict) -> Dict[str, Callable[[], None]]:
    """The three measured steps on one preprocessed batch (``teacher``: every teacher's
    forward, for a distiller with several)."""
    inputs, samples = data['inputs'], data['data_samples']

    def backward(losses):
        loss, _ = distiller.parse_losses(losses)
        loss.backward()
        distiller.zero_grad(set_to_none=True)

    def student():
        backward(distiller.student.loss(inputs, samples))

    def teacher():
        with torch.no_grad():
            for name, model in distiller.teachers.items():
                teacher_inputs = data.get('teacher_inputs', {}).get(name, inputs)
                if distiller.teacher_forward_modes[name] == 'extract_feat':
                    model.extract_feat(teacher_inputs)
                else:  # 'tensor', and 'loss' (GKD) without its gradient part
                    teacher_samples = data.get('teacher_data_samples', {}).get(name, samples)
                    model(teacher_inputs, teacher_samples, mode='tensor')

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


#: Teacher-settings cases: name -> (pair, method, teacher cfg_path or None (the pair's),
#: default (H, W)). The issue's model-zoo pairs, at a COCO-like size a CPU can run.
CASES = {
    'pkd_x101_r50': ('coco_retina', 'pkd_fpn', None, (384, 384)),
    'cwd_r101_r50': ('coco_retina', 'cwd_fpn', 'mmdet::retinanet/retinanet_r101_fpn_2x_coco.py',
                     (512, 512)),
}
QUICK_CASES = {
    'pkd_digits': ('digits_det', 'pkd_fpn', None, (64, 64)),
    'cwd_digits': ('digits_det', 'cwd_fpn', None, (64, 64)),
}
#: Teacher settings: name -> TeacherRunner.configure arguments. 'fp32' is the reference step
#: (no early stop, contiguous, float32), the others change one thing or two.
SETTINGS = {
    'fp32': dict(precision='fp32', early_stop=False),
    'fp32+early_stop': dict(precision='fp32', early_stop=True),
    'fp32+channels_last': dict(precision='fp32', channels_last=True, early_stop=False),
    'bf16': dict(precision='bf16', early_stop=False),
    'bf16+channels_last': dict(precision='bf16', channels_last=True, early_stop=False),
    'bf16+channels_last+early_stop': dict(precision='bf16', channels_last=True, early_stop=True),
    'bf16-weights+channels_last': dict(precision='bf16', channels_last=True, early_stop=False,
                                       cast_weights=True),
    'fp16+channels_last': dict(precision='fp16', channels_last=True, early_stop=False),
    'compile': dict(precision='fp32', compile=True),
}
#: What --teacher-settings runs without --settings (fp16 on CUDA only; compile when asked).
DEFAULT_SETTINGS = ['fp32', 'fp32+early_stop', 'fp32+channels_last', 'bf16',
                    'bf16+channels_last', 'bf16-weights+channels_last',
                    'bf16+channels_last+early_stop', 'fp16+channels_last']


def default_settings(device: str) -> list:
    """:data:`DEFAULT_SETTINGS` that can pay on ``device``: fp16 on CUDA only, bf16 on CUDA
    and on CPUs with native bfloat16."""
    return [s for s in DEFAULT_SETTINGS
            if not (s.startswith('fp16') and device != 'cuda')
            and not (s.startswith('bf16') and device == 'cpu' and not cpu_has_fast_bf16())]


def benchmark_teacher_settings(case: tuple, settings: list, device: str, repeats: int,
                               batch_size: int, size: tuple) -> dict:
    """One case's student step, fp32 teacher forward and distill step per setting, each with
    its ratio to (student + fp32 teacher) and its peak memory."""
    pair, method, teacher_cfg_path, _ = case
    _, task, _, cfg_options = PAIRS[pair]
    cfg = Config.fromfile(method_configs(pair, [method])[method])
    if teacher_cfg_path:
        cfg.model.teacher = dict(cfg_path=teacher_cfg_path, pretrained=False)
    distiller = build_random_distiller(cfg, cfg_options).to(device).train()
    batch = random_batch(task, get_num_classes(distiller.student) or 1, batch_size, size)
    data = distiller.data_preprocessor(batch, training=True)
    runner = distiller.teacher_runner
    runner.configure(precision='fp32', early_stop=False)
    steps = step_functions(distiller, data)

    def measure(step):
        row = measure_step(step, device, repeats)
        if device == 'cpu':  # the process's peak RSS hides what earlier steps left cached
            row['peak_mib'] = peak_tensor_mib(step)
        return row

    result = dict(student=measure(steps['student']), teacher=measure(steps['teacher']),
                  settings={})
    bound = result['student']['seconds'] + result['teacher']['seconds']
    for name in settings:
        try:
            runner.configure(**SETTINGS[name])
            row = measure(steps['distill'])
            row['ratio'] = round(row['seconds'] / bound, 10)
        except Exception as err:  # reported in the table, not hidden
            row = dict(error=f'{type(err).__name__}: {err}'.splitlines()[0][:200])
        result['settings'][name] = row
    runner.configure(precision='fp32', early_stop=False)
    return result


def format_settings_table(results: Dict[str, dict]) -> str:
    """One block per case: the reference steps, then one line per teacher setting."""
    lines = []
    for case, r in results.items():
        if 'error' in r:
            lines.append(f'{case}: failed: {r["error"]}')
            continue
        bound = 1000 * (r['student']['seconds'] + r['teacher']['seconds'])
        lines.append(f'{case}: student step {1000 * r["student"]["seconds"]:.1f} ms '
                     f'({r["student"]["peak_mib"]:.1f} MiB), fp32 teacher forward '
                     f'{1000 * r["teacher"]["seconds"]:.1f} ms ({r["teacher"]["peak_mib"]:.1f} '
                     f'MiB), bound {bound:.1f} ms')
        header = f'  {"teacher setting":<32} {"distill ms":>10} {"ratio":>6} {"peak MiB":>9}'
        lines += [header, '  ' + '-' * (len(header) - 2)]
        for name, row in r['settings'].items():
            if 'error' in row:
                lines.append(f'  {name:<32} failed: {row["error"]}')
                continue
            lines.append(f'  {name:<32} {1000 * row["seconds"]:>10.1f} {row["ratio"]:>6.3f} '
                         f'{row["peak_mib"]:>9.1f}')
    return '\n'.join(lines)


def main_teacher_settings(args) -> Dict[str, dict]:
    cases = QUICK_CASES if args.quick else CASES
    names = args.cases or list(cases)
    unknown = [n for n in names if n not in cases]
    if unknown:
        raise SystemExit(f'Unknown --cases {unknown}; choose from {list(cases)}.')
    settings = args.settings or default_settings(args.device)
    if not args.settings and args.device == 'cpu' and not cpu_has_fast_bf16():
        print('this CPU has no native bfloat16 (oneDNN emulates it, about 100x slower than '
              'float32): the bf16 settings are left out; name them in --settings to time them')
    repeats = args.repeats or (1 if args.quick else 3)
    print(f'teacher settings, device {args.device}, batch {args.batch_size}, median of '
          f'{repeats}; peak MiB: the step\'s peak of live tensor memory (CPU: torch profiler, '
          'one extra run; CUDA: max_memory_allocated)')
    results = {}
    for name in names:
        size = tuple(args.image_size or cases[name][3])
        print(f'  {name} at {size[0]}x{size[1]} ...', flush=True)
        try:
            results[name] = benchmark_teacher_settings(cases[name], settings, args.device,
                                                       repeats, args.batch_size, size)
            results[name]['image_size'] = size
        except Exception as err:
            results[name] = dict(error=f'{type(err).__name__}: {err}')
    print(format_settings_table(results))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(device=args.device, batch_size=args.batch_size, repeats=repeats,
                           torch=torch.__version__, results=results), f, indent=2)
    return results


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
    parser.add_argument('--repeats', type=int, help='timed runs (default 3; --quick: 1)')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--image-size', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--json', help='also write the measurements here')
    parser.add_argument('--teacher-settings', action='store_true',
                        help='measure the teacher settings on the model-zoo cases instead')
    parser.add_argument('--cases', nargs='+', help=f'teacher-settings cases: {list(CASES)}')
    parser.add_argument('--settings', nargs='+', choices=list(SETTINGS),
                        help=f'teacher settings (default: {DEFAULT_SETTINGS})')
    parser.add_argument('--quick', action='store_true',
                        help='teacher settings on the digits pair at 64 px, one repeat')
    args = parser.parse_args(argv)
    if args.teacher_settings or args.quick:
        return main_teacher_settings(args)
    args.repeats = args.repeats or 3
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
