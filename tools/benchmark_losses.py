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
``tests/pcka_reference.py``, the reference the tests check ``pcka_loss`` against) on the
first level.

Every measurement runs in its own process (spawned), so peak memory is that measurement's own:
on CUDA ``torch.cuda.max_memory_allocated``, on CPU the rise of the process's peak resident
memory (VmHWM, reset before the measurement) over its resident memory before it. Times are
medians of ``--repeats`` runs after one warm-up. ``--quick`` shrinks everything (for tests).
"""
import argparse
import multiprocessing as mp
import os
import os.path as osp
import sys
from typing import Callable, Dict, List, Optional

try:
    import mmkd  # noqa: F401
except ImportError:
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmkd  # noqa: F401

import torch

from mmkd.utils.benchmark import measure_step

STUDENT_CFG = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
#: name -> (loss config, number of FPN levels its COCO config uses, extra forward inputs;
#: 'logits': 80-class logit maps in place of the 256-channel features)
LOSSES = {
    'MSEFeatureLoss': (dict(type='MSEFeatureLoss'), 5, ()),
    'L1FeatureLoss': (dict(type='L1FeatureLoss'), 5, ()),
    'CKALoss': (dict(type='CKALoss'), 5, ()),
    'PCKALoss': (dict(type='PCKALoss', loss_weight=10.0, inter_weight=1.0), 4, ()),
    'SSIMLoss': (dict(type='SSIMLoss'), 5, ()),
    'CWDLoss': (dict(type='CWDLoss'), 5, ()),
    'PKDLoss': (dict(type='PKDLoss'), 4, ()),
    'ATLoss': (dict(type='ATLoss'), 5, ()),
    'MGDLoss': (dict(type='MGDLoss', student_channels=256, teacher_channels=256), 5, ()),
    'FGDLoss': (dict(type='FGDLoss', student_channels=256, teacher_channels=256), 5,
                ('data_samples', )),
    'GKDLoss': (dict(type='GKDLoss'), 5, ('grads', )),
    'GKDLoss+BMFI': (dict(type='GKDLoss', bmfi=dict(student_channels=256, teacher_channels=256)),
                     5, ('grads', 'data_samples')),
    'TopKDLoss+contrastive': (dict(type='TopKDLoss', contrastive_weight=1.0), 5, ('logits', )),
}
NUM_CLASSES = 80


def level_shapes(quick: bool) -> List[tuple]:
    height, width = (128, 192) if quick else (800, 1344)
    return [(2, 256, -(-height // s), -(-width // s)) for s in (8, 16, 32, 64, 128)]


def image_size(quick: bool) -> tuple:
    return (128, 192) if quick else (800, 1344)


def det_samples(quick: bool, n: int = 2):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    h, w = image_size(quick)
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             pad_shape=(h, w), batch_input_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        xy = torch.rand(6, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
        wh = 16 + torch.rand(6, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
        sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                           labels=torch.randint(0, 80, (6, ), generator=g))
        samples.append(sample)
    return samples


# ---------------------------------------------------------------- measurement (child side)
def _loss_step(name: str, device: str, quick: bool) -> Callable[[], None]:
    from mmkd.registry import build_component
    cfg, num_levels, extras = LOSSES[name]
    shapes = level_shapes(quick)[:num_levels]
    if 'logits' in extras:
        shapes = [(n, NUM_CLASSES, h, w) for n, _, h, w in shapes]
    losses = [build_component(cfg).to(device) for _ in shapes]
    preds_S = [torch.randn(s, device=device, requires_grad=True) for s in shapes]
    preds_T = [torch.randn(s, device=device) for s in shapes]
    kwargs = [{} for _ in shapes]
    for i, shape in enumerate(shapes):
        if 'grads' in extras:
            kwargs[i].update(grads_S=torch.randn(shape, device=device),
                             grads_T=torch.randn(shape, device=device))
        if 'data_samples' in extras:
            kwargs[i]['data_samples'] = [s.to(device) for s in det_samples(quick)]

    def step():
        total = sum(loss(s, t, **kw) for loss, s, t, kw in zip(losses, preds_S, preds_T, kwargs))
        total.backward()
        for s in preds_S:
            s.grad = None

    return step


def _pcka_step(name: str, device: str, quick: bool) -> Callable[[], None]:
    from mmkd.models.losses import pcka_loss
    tests = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tests')
    if tests not in sys.path:  # the reference is test code, not part of the package
        sys.path.insert(0, tests)
    from pcka_reference import pcka_loop_reference
    shape = level_shapes(quick)[0]
    s = torch.randn(shape, device=device, requires_grad=True)
    t = torch.randn(shape, device=device)
    fn = pcka_loss if name == 'PCKALoss (batched)' else pcka_loop_reference

    def step():
        fn(s, t, inter_weight=1.0).backward()
        s.grad = None

    return step


def _model_step(name: str, device: str, quick: bool) -> Callable[[], None]:
    from mmengine.registry import init_default_scope
    from mmkd.registry import MODELS
    init_default_scope('mmdet')
    student = dict(cfg_path=STUDENT_CFG, pretrained=False)
    if name == 'student step':
        model = MODELS.build(dict(_scope_='mmkd', type='Distiller', student=student,
                                  teacher=student)).student
    else:
        spec = dict(recorder='fpn')
        mapping = {f'loss_gkd{i}': dict(
            preds_S=dict(spec, from_student=True, data_idx=i),
            preds_T=dict(spec, from_student=False, data_idx=i),
            grads_S=dict(spec, from_student=True, data_idx=i, gradient=True),
            grads_T=dict(spec, from_student=False, data_idx=i, gradient=True)) for i in range(5)}
        double = name.endswith('double-backward)')
        model = MODELS.build(dict(
            _scope_='mmkd', type='Distiller', student=student, teacher=student,
            student_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
            teacher_recorders=dict(fpn=dict(type='ModuleOutputsRecorder', source='neck')),
            distill_losses={k: dict(type='GKDLoss', double_backward=double) for k in mapping},
            loss_forward_mappings=mapping))
    model = model.to(device).train()
    inputs = torch.randn(2, 3, *image_size(quick), device=device)
    samples = [s.to(device) for s in det_samples(quick)]

    def step():
        losses = model.loss(inputs, samples)
        total = sum(v.mean() for k, vs in losses.items() if 'loss' in k
                    for v in (vs if isinstance(vs, list) else [vs]))
        total.backward()
        model.zero_grad(set_to_none=True)

    return step


def _child(kind: str, name: str, device: str, quick: bool, repeats: int, queue) -> None:
    try:
        torch.manual_seed(0)
        make = {'loss': _loss_step, 'pcka': _pcka_step, 'model': _model_step}[kind]
        queue.put(measure_step(make(name, device, quick), device, repeats))
    except Exception as err:  # reported, not hidden
        queue.put(dict(error=f'{type(err).__name__}: {err}'))


def measure(kind: str, name: str, device: str, quick: bool, repeats: int) -> dict:
    """Run one measurement in a fresh process (its own peak memory, no cross-talk)."""
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, name, device, quick, repeats, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# ---------------------------------------------------------------- report (parent side)
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
    print('\nPCKA on level P3 only, batched vs the published per-channel loop:')
    for name in ('PCKALoss (batched)', 'PCKA per-channel loop (reference)'):
        results[name] = measure('pcka', name, device, quick, repeats)
        print(format_row(name, results[name], None))
    batched = results['PCKALoss (batched)'].get('seconds')
    loop = results['PCKA per-channel loop (reference)'].get('seconds')
    if batched and loop:
        print(f'batched PCKA is {loop / batched:.1f}x faster than the loop')
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
