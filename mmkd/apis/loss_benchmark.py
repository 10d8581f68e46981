"""The measurements of ``tools/benchmark_losses.py``: every distillation loss, forward +
backward, on COCO-sized FPN levels, next to a RetinaNet-R50 student step and GKD's whole
distillation steps, and batched PCKA against per-channel loops (:data:`PCKA_RACES`).

:func:`measure` runs one measurement in a spawned process of its own (its peak memory is that
measurement's alone); the process imports this module by name to build the step, which is why
it is in the package and not in the script. ``quick`` shrinks every input (tests).
"""
import multiprocessing as mp
from typing import Callable, List

import torch

from mmkd.testing import random_batch
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


def image_size(quick: bool) -> tuple:
    """(H, W) of the padded input: 800x1344 as for a COCO image, 128x192 with ``quick``."""
    return (128, 192) if quick else (800, 1344)


def level_shapes(quick: bool) -> List[tuple]:
    """(batch, channels, H, W) of the five FPN levels (strides 8 to 128) of the padded input."""
    height, width = image_size(quick)
    return [(2, 256, -(-height // s), -(-width // s)) for s in (8, 16, 32, 64, 128)]


def det_samples(quick: bool, n: int = 2) -> list:
    """``n`` detection samples of the benchmark's image size with 6 random boxes of the 80
    COCO classes each (:func:`mmkd.testing.random_batch`, seeded), and the
    ``batch_input_shape`` that FGD's masks read."""
    size = image_size(quick)
    samples = random_batch('det', 80, n, size, seed=0, boxes_per_image=6)['data_samples']
    for sample in samples:
        sample.set_metainfo(dict(batch_input_shape=size))
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


#: PCKA races: name -> (function, FPN levels, keyword arguments). On P3 with the intra and
#: inter terms against the published loop; on P3 + P4 with the intra term (RetinaNet's
#: setting) against a plain per-channel loop.
PCKA_RACES = {
    'PCKALoss (batched)': ('pcka_loss', 1, dict(inter_weight=1.0)),
    'PCKA per-channel loop (reference)': ('pcka_loop_reference', 1, dict(inter_weight=1.0)),
    'PCKALoss intra (batched, P3+P4)': ('pcka_loss', 2, {}),
    'PCKA intra plain loop (P3+P4)': ('pcka_plain_loop', 2, {}),
}


def _pcka_step(name: str, device: str, quick: bool) -> Callable[[], None]:
    from mmkd import testing
    from mmkd.models.losses import pcka_loss
    fn_name, num_levels, kwargs = PCKA_RACES[name]
    fn = pcka_loss if fn_name == 'pcka_loss' else getattr(testing, fn_name)
    shapes = level_shapes(quick)[:num_levels]
    preds_S = [torch.randn(shape, device=device, requires_grad=True) for shape in shapes]
    preds_T = [torch.randn(shape, device=device) for shape in shapes]

    def step():
        sum(fn(s, t, **kwargs) for s, t in zip(preds_S, preds_T)).backward()
        for s in preds_S:
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
    """Run one measurement in a fresh process (its own peak memory, no cross-talk).

    ``kind``: ``'loss'`` (``name`` a :data:`LOSSES` entry), ``'pcka'`` (``'PCKALoss
    (batched)'`` or the per-channel loop) or ``'model'`` (``'student step'`` or a GKD
    distillation step); returns :func:`mmkd.utils.benchmark.measure_step`'s numbers, or
    ``dict(error=...)`` when the measurement failed.
    """
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, name, device, quick, repeats, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result
