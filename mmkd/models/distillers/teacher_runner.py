"""How the frozen teacher runs: its precision, memory format, early stop and compilation.

The teacher's forward is a third or more of a distillation step, and it is pure inference, so
it can run cheaper than the student without touching the student's training:

- ``precision``: the teacher's forward runs under ``torch.autocast`` of that dtype (bf16 on
  CPU and GPU, fp16 on CUDA only), inside the student's own autocast, if any, which it
  replaces for the teacher only. Autocast rather than a cast of the teacher's weights: the
  normalisation layers, the anchor / point generators and the teacher replays (which receive
  the student's float32 tensors) keep working unchanged, and the teacher's state dict stays
  float32. Autocast casts every weight at every forward, though: ``cast_weights`` casts them
  once instead (the teacher's modules in that dtype, normalisation layers included), for
  where the benchmark shows that it pays; ops outside autocast's lists (e.g. mmcv's RoIAlign
  in a teacher replay) then see mixed dtypes, so keep it off with replays. Recorded tensors
  keep the teacher's dtype; the losses cast them to float32
  (:class:`mmkd.models.losses.BaseDistillLoss`), and so do the connectors.
- ``channels_last``: the teacher's weights and inputs in NHWC memory format, which cuDNN
  (tensor cores) and oneDNN with bf16 convolve faster (float32 on an AVX2-only CPU did not
  gain: ``benchmarks/teacher_settings_cpu.md``); recorded tensors may then be channels_last,
  which every loss handles (none calls ``.view`` on its inputs; tested on 8 methods).
- ``early_stop``: the forward ends as soon as every teacher recorder holds the records the
  losses and replays read (``record_idx`` + 1 records of each; a recorder read with a
  negative ``record_idx`` needs them all, so the teacher then runs to the end). A recorder
  hook raises :class:`TeacherStopped`, which this runner catches. Counting records, not
  module calls, makes a module called several times per forward (a dense head's convs run
  once per FPN level) stop the teacher after the last call read, not the first.
- ``compile``: ``torch.compile`` of the teacher's forward (off by default; see
  docs/en/user_guides/teacher_settings.md for when it pays). Compiled code cannot be stopped
  from a hook, so it runs without early stop.

The ``'tensor'`` mode runs up to the head's raw outputs: the model's own ``_forward``, except
for the mmseg segmentors whose ``_forward`` cannot (:func:`forward_to_head`).
"""
import contextlib
import functools
import logging
from typing import Callable, Dict, Iterable, Optional

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from ..recorders import RecorderManager
from .decode_heads import auxiliary_heads, decode_heads, heads_to_run, takes_data_samples

#: ``teacher_precision`` choices; None runs the teacher in the surrounding (student's) autocast.
TEACHER_PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


class TeacherStopped(BaseException):
    """Raised by a teacher recorder once every needed record is taken; caught by
    :meth:`TeacherRunner.run`. A ``BaseException`` so that no ``except Exception`` inside
    mmdet / mmseg code can swallow it."""


def check_precision(precision: Optional[str], device_type: Optional[str] = None) -> None:
    """A ValueError naming the fix when ``precision`` is unknown or cannot run on the device
    (``device_type``, e.g. 'cpu'; None: the device this machine would train on)."""
    if precision is not None and precision not in TEACHER_PRECISIONS:
        raise ValueError(f'teacher_precision must be one of {list(TEACHER_PRECISIONS)} or None '
                         f'(the student\'s), got {precision!r}.')
    if device_type is None:
        device_type = 'cuda' if torch.cuda.is_available() else 'cpu'
    if precision == 'fp16' and device_type != 'cuda':
        raise ValueError(f"teacher_precision='fp16' runs on CUDA only, but the teacher runs on "
                         f"{device_type!r} (no CUDA device here): float16 autocast is not a "
                         "speed-up elsewhere. Use teacher_precision='bf16' (same range as "
                         "float32, fast on recent CPUs) or 'fp32'.")


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bfloat16 convolutions natively on this CPU (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def needed_records(specs: Iterable[dict],
                   recorder_names: Iterable[str]) -> Optional[Dict[str, int]]:
    """``{teacher recorder: how many records the specs read}`` (``record_idx`` + 1 at most);
    None when some spec reads a record counted from the end (negative ``record_idx``), which
    only the full forward gives.

    Example:
        >>> needed_records([dict(from_student=False, recorder='fpn', record_idx=1),
        ...                 dict(from_student=True, recorder='fpn'),
        ...                 dict(from_student=False, recorder='head')], ['fpn', 'head'])
        {'fpn': 2, 'head': 1}
    """
    names, needed = set(recorder_names), {}
    for spec in specs:
        if spec.get('from_student', True) or spec.get('recorder') not in names:
            continue
        idx = spec.get('record_idx', 0)
        if idx < 0:
            return None
        needed[spec['recorder']] = max(needed.get(spec['recorder'], 0), idx + 1)
    return needed


class TeacherRunner:
    """Runs the teacher's forward for one step with the configured execution settings.

    Args:
        teacher (nn.Module): the frozen teacher (eval mode, no grad). It is converted to
            channels_last here when asked.
        recorders (RecorderManager): the teacher's recorders.
        precision (str, optional): ``'fp32'``, ``'bf16'``, ``'fp16'`` (CUDA only) or None (the
            surrounding autocast, i.e. the student's). Defaults to None.
        channels_last (bool): NHWC weights and inputs. Defaults to False.
        needed (dict, optional): ``{recorder name: records read}`` (:func:`needed_records`);
            early stop needs it. None (or an empty dict) runs the whole forward.
        early_stop (bool): stop once the needed records are taken. Defaults to True.
        compile (bool): ``torch.compile`` the teacher's forward. Defaults to False.
        cast_weights (bool): Cast the teacher's parameters and buffers to ``precision`` once
            (bf16 / fp16 only) instead of at every forward. Defaults to False.
    """

    def __init__(self, teacher: nn.Module, recorders: RecorderManager,
                 precision: Optional[str] = None, channels_last: bool = False,
                 needed: Optional[Dict[str, int]] = None, early_stop: bool = True,
                 compile: bool = False, cast_weights: bool = False):
        self.teacher = teacher
        self.recorders = recorders
        #: The 'tensor' forward where the teacher's own ``_forward`` cannot run it (or does
        #: not run the auxiliary heads a recorder reads), else None.
        self.head_forward = head_forward(teacher, auxiliary=reads_auxiliary_heads(recorders))
        self.needed_all = dict(needed or {})
        self._remaining = 0
        self._taken: Dict[str, int] = {}
        self._compiled: Dict[str, Callable] = {}
        self.configure(precision, channels_last, early_stop, compile, cast_weights)

    def configure(self, precision: Optional[str] = None, channels_last: bool = False,
                  early_stop: bool = True, compile: bool = False,
                  cast_weights: bool = False) -> None:
        """(Re)apply the settings (the arguments of the same names); the overhead benchmark
        switches them on one built distiller."""
        check_precision(precision)
        if precision == 'bf16' and not torch.cuda.is_available() and not cpu_has_fast_bf16():
            print_log("teacher_precision='bf16' on a CPU without native bfloat16 (no AVX512-BF16 "
                      'or AMX: oneDNN falls back to slow reference kernels, a convolution can '
                      "run 100x slower than in float32): use teacher_precision='fp32' here.",
                      logger='current', level=logging.WARNING)
        for name, value in (('teacher_channels_last', channels_last),
                            ('teacher_early_stop', early_stop), ('teacher_compile', compile),
                            ('teacher_cast_weights', cast_weights)):
            if not isinstance(value, bool):
                raise TypeError(f'{name} must be True or False, got {value!r}.')
        weights_dtype = torch.float32
        if cast_weights:
            if precision not in ('bf16', 'fp16'):
                raise ValueError(f"teacher_cast_weights=True casts the teacher to "
                                 f"teacher_precision, which is {precision!r}: set "
                                 "teacher_precision='bf16' or 'fp16', or drop "
                                 'teacher_cast_weights.')
            weights_dtype = TEACHER_PRECISIONS[precision]
        if weights_dtype != getattr(self, 'weights_dtype', torch.float32):
            self.teacher.to(weights_dtype)
        if channels_last != getattr(self, 'channels_last', False):
            self.teacher.to(memory_format=torch.channels_last if channels_last
                            else torch.contiguous_format)
        self.weights_dtype = weights_dtype
        self.precision = precision
        self.channels_last = channels_last
        self.compile = compile
        self.needed = self.needed_all if early_stop and not compile else {}
        for name, recorder in self.recorders.recorders.items():
            recorder.on_record = self._counter(name) if name in self.needed else None
        self._compiled.clear()

    # ------------------------------------------------------------------ per step
    def run(self, mode: str, inputs, data_samples=None):
        """The teacher's forward in ``mode`` (``'extract_feat'``, ``'tensor'`` or ``'loss'``)
        with the recorders on, in the teacher's precision and memory format; returns what the
        teacher returned, or None when it stopped early."""
        device_type = device_type_of(inputs)
        check_precision(self.precision, device_type)
        inputs = self.format_inputs(inputs)
        self._taken = {name: 0 for name in self.needed}
        self._remaining = sum(self.needed.values()) if mode != 'loss' else 0
        with self.recorders.recording(), self.precision_context(device_type):
            try:
                if mode == 'extract_feat':
                    return self._method('extract_feat')(inputs)
                if mode == 'tensor' and self.head_forward is not None:
                    return self._method('head_forward')(inputs, data_samples)
                return self._method('forward')(inputs, data_samples, mode=mode)
            except TeacherStopped:
                return None
            finally:
                self._remaining = 0

    def precision_context(self, device_type: str):
        """Autocast of the teacher's precision (float32: autocast off), or nothing for None.
        Also used around the teacher replays."""
        if self.precision is None:
            return contextlib.nullcontext()
        dtype = TEACHER_PRECISIONS[self.precision]
        if dtype == torch.float32:
            return torch.autocast(device_type=device_type, enabled=False)
        return torch.autocast(device_type=device_type, dtype=dtype)

    def format_inputs(self, inputs):
        """The teacher's inputs in its memory format."""
        return to_channels_last(inputs) if self.channels_last else inputs

    @property
    def stops_early(self) -> bool:
        return bool(self.needed)

    # ------------------------------------------------------------------ internals
    def _counter(self, name: str) -> Callable:
        def on_record(recorder) -> None:
            if self._remaining <= 0:  # not in a stoppable run (e.g. the benchmark's own call)
                return
            if self._taken[name] < self.needed[name]:
                self._taken[name] += 1
                self._remaining -= 1
                if self._remaining == 0:
                    raise TeacherStopped
        return on_record

    def _method(self, name: str) -> Callable:
        """The teacher's bound method ``name`` (``'head_forward'``: :attr:`head_forward`),
        compiled once when ``compile`` is on."""
        method = self.head_forward if name == 'head_forward' else getattr(self.teacher, name)
        if not self.compile:
            return method
        if name not in self._compiled:
            self._compiled[name] = torch.compile(method)
        return self._compiled[name]


def device_type_of(inputs) -> str:
    """``inputs.device.type`` for a batch tensor; ``'cpu'`` for anything else (a list of
    images of different sizes)."""
    return inputs.device.type if isinstance(inputs, Tensor) else 'cpu'


def to_channels_last(inputs):
    """A 4-D tensor in channels_last memory format; anything else unchanged."""
    if isinstance(inputs, Tensor) and inputs.dim() == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def reads_auxiliary_heads(sources) -> bool:
    """Whether a recorder ``source`` among ``sources`` (strings, recorders or recorder
    configs, or a :class:`RecorderManager`) reads an mmseg segmentor's ``auxiliary_head``
    (which the segmentor's ``'tensor'`` mode does not run)."""
    if isinstance(sources, RecorderManager):
        sources = sources.recorders.values()
    names = (s if isinstance(s, str) else s.get('source', '') if isinstance(s, dict)
             else getattr(s, 'source', '') for s in sources)
    return any(str(name).split('.')[0] == 'auxiliary_head' for name in names)


def head_forward(model: nn.Module, auxiliary: bool = False) -> Optional[Callable]:
    """``forward_to_head`` bound to ``model`` where the model's own ``_forward`` (its
    ``'tensor'`` mode) cannot reach the head's raw outputs, else None: mmseg segmentors with
    a decode head that takes the data samples (MaskFormer, Mask2Former) or a cascade that ends
    in a head without a per-pixel map (PointRend's ``PointHead``, which ``_forward`` calls
    with arguments it does not take), mmseg segmentors whose auxiliary heads are read
    (``auxiliary``: ``_forward`` runs the decode head only), and mmdet's CondInst / BoxInst
    (whose ``_forward`` needs the ground truth: the box head's outputs are what a recipe
    reads)."""
    if _box_first_instance_segmentor(model):
        return functools.partial(forward_to_head, model)
    if auxiliary and auxiliary_heads(model):
        return functools.partial(forward_to_head, model, auxiliary=True)
    heads = decode_heads(model)
    if heads is None or (heads_to_run(heads) == len(heads)
                         and not any(takes_data_samples(h) for h in heads)):
        return None
    return functools.partial(forward_to_head, model)


def _box_first_instance_segmentor(model: nn.Module) -> bool:
    """An mmdet single-stage instance segmentor with a box head (CondInst, BoxInst): its
    ``_forward`` runs the box head's loss (ground truth needed) to feed the mask head."""
    from mmdet.models.detectors.single_stage_instance_seg import SingleStageInstanceSegmentor
    return isinstance(model, SingleStageInstanceSegmentor) and model.with_bbox


def forward_to_head(model: nn.Module, inputs: Tensor, data_samples=None,
                    auxiliary: bool = False):
    """``model``'s raw head outputs on ``inputs``: its ``_forward``, or, for the mmseg
    segmentors :func:`head_forward` names, the backbone (and neck), then each decode head up
    to the last one with a per-pixel class map (a cascade's later head on the previous one's
    output, as ``CascadeEncoderDecoder`` runs them), giving the heads that take data samples
    :func:`head_data_samples`; with ``auxiliary``, then each auxiliary head on the features
    (as mmseg's training forward runs them; their outputs are recorded, not returned).

    Args:
        model (nn.Module): An mmdet detector or mmseg segmentor.
        inputs (Tensor): The preprocessed images (N, 3, H, W).
        data_samples (list, optional): The batch's data samples; None (the recipes' probe)
            makes dummy ones of the inputs' size where a head needs them.
    """
    if _box_first_instance_segmentor(model):  # the box head's raw outputs (no mask head)
        return model.bbox_head.forward(model.extract_feat(inputs))
    heads = decode_heads(model)
    if head_forward(model) is None and not auxiliary:
        return model._forward(inputs) if data_samples is None else model._forward(
            inputs, data_samples)
    feats = model.extract_feat(inputs)
    samples, out = None, None
    for i, head in enumerate(heads[:heads_to_run(heads)]):
        args = (feats, ) if i == 0 else (feats, out)
        if takes_data_samples(head):
            samples = samples or head_data_samples(inputs, data_samples)
            args += (samples, )
        out = head.forward(*args)  # as mmseg's segmentors call them (no module hooks)
    if auxiliary:
        for head in auxiliary_heads(model):
            head.forward(feats)
    return out


def head_data_samples(inputs: Tensor, data_samples=None) -> list:
    """``SegDataSample`` s carrying the metainfo mmseg's MaskFormer / Mask2Former heads read,
    with ``batch_input_shape`` set to ``img_shape`` as mmseg's ``loss`` and ``predict`` set it
    (new samples: the batch's are not changed); without ``data_samples``, one per image with
    ``img_shape`` / ``pad_shape`` / ``ori_shape`` the inputs' size."""
    from mmseg.structures import SegDataSample
    shape = tuple(inputs.shape[-2:])
    if data_samples is None:
        metas = [dict(img_shape=shape, pad_shape=shape, ori_shape=shape)] * inputs.shape[0]
    else:
        metas = [sample.metainfo for sample in data_samples]
    return [SegDataSample(metainfo=dict(meta, batch_input_shape=meta.get('img_shape', shape)))
            for meta in metas]
