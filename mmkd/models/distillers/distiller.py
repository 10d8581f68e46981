"""The distillation model: a trainable student, a frozen teacher and the losses between them.

One training step, as :meth:`Distiller.loss` runs it:

1. the teacher runs under ``no_grad`` (stopping at its neck when only backbone / neck outputs
   are recorded) while its recorders capture what the config names;
2. the student computes its own task losses, its recorders capturing likewise;
3. each distillation loss receives the tensors its ``loss_forward_mappings`` entry names
   (recorded data, optionally passed through connectors, or the batch's data samples), in
   float32 with autocast off, and its value joins the student's losses as ``distill.<name>``.
"""
import copy
import inspect
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

from mmkd.registry import MODELS, build_component
from mmkd.utils import get_submodule_or_raise, load_checkpoint_file
from ..connectors import BaseConnector
from ..recorders import (MethodOutputsRecorder, ModuleInputsRecorder, ModuleOutputsRecorder,
                         RecorderManager)
from ..recorders.base_recorder import select
from ..weighting import BaseWeighting
from .data_preprocessor import DistillDataPreprocessor
from .model_config import get_num_classes, resolve_model_cfg

#: Top-level submodules whose outputs exist before the task head runs.
FEATURE_MODULES = ('backbone', 'neck', 'data_preprocessor')
TEACHER_FORWARD_MODES = ('auto', 'extract_feat', 'tensor', 'loss')
#: Keys a ``loss_forward_mappings`` argument spec may have.
SPEC_KEYS = {'from_student', 'recorder', 'record_idx', 'data_idx', 'connector', 'from_data',
             'gradient'}
DATA_SOURCES = ('data_samples', 'inputs', 'gt_sem_seg')


@MODELS.register_module()
class Distiller(BaseModel):
    """Distills a frozen mmdet / mmseg teacher into a student built from its own config.

    Args:
        student (dict): Student model: ``dict(cfg_path=..., pretrained=False)`` or a model
            config with a scope (``_scope_='mmdet'``); see
            :func:`mmkd.models.distillers.model_config.resolve_model_cfg`.
        teacher (dict): Teacher model, same forms.
        teacher_ckpt (str, optional): Teacher weights (a path or a URL such as mmdet's model
            zoo links), loaded at build, so also on resume. None keeps the teacher's random
            init and warns. Defaults to None.
        student_recorders (dict): ``{name: recorder cfg}`` on the student.
        teacher_recorders (dict): ``{name: recorder cfg}`` on the teacher.
        connectors (dict): ``{name: connector cfg}``; trained with the student.
        distill_losses (dict): ``{name: loss cfg}``.
        loss_forward_mappings (dict): ``{loss name: {forward argument: spec}}``. A spec reads a
            recorder, ``dict(from_student=True, recorder='fpn', record_idx=0, data_idx=0,
            connector='fpn0')`` (``connector`` may be a list, applied in order), or the batch,
            ``dict(from_data='data_samples')`` / ``dict(from_data='inputs')`` /
            ``dict(from_data='gt_sem_seg')`` ((N, H, W) segmentation labels). ``gradient=True``
            in a recorder spec gives instead the gradient of that model's own task loss (on the
            batch's ground truth) w.r.t. the recorded tensor: for the frozen teacher the backward
            pass stops at the recorded module; for the student it is taken with
            ``retain_graph`` (and ``create_graph`` when the loss sets ``create_graph = True``).
        teacher_forward_mode (str): ``'extract_feat'`` (backbone + neck), ``'tensor'`` (up to the
            head's raw outputs), ``'loss'`` (the teacher's own loss on the batch's ground truth)
            or ``'auto'``: ``'extract_feat'`` when every teacher recorder sits in the backbone
            or neck, else ``'tensor'``; ``'loss'`` when a loss needs teacher gradients.
            Defaults to ``'auto'``.
        teacher_replays (dict, optional): ``{name: dict(method='roi_head._bbox_forward',
            args=[spec, ...])}``: after the student's forward, call that teacher method under
            ``no_grad`` on recorded data, e.g. the teacher's RoI head on the teacher's features
            and the RoIs the student sampled (recorded with ``MethodInputsRecorder``), so both
            classify the same proposals. A teacher-side spec with ``recorder=<name>`` reads its
            output (``data_idx`` may be a dict key such as ``'cls_score'``).
        weighting (dict, optional): How the distillation losses ('paths') are combined:
            ``FixedWeighting`` (the default: their sum), ``UncertaintyWeighting`` or
            ``GradientSimilarityWeighting`` (see ``mmkd/models/weighting``). A configured
            weighting logs each path's effective weight every iteration as
            ``distill_weight.<name>``.
        data_preprocessor (dict, optional): Ignored when given by a base config: the student's
            and teacher's own preprocessors are used.
    """

    def __init__(self,
                 student: dict,
                 teacher: dict,
                 teacher_ckpt: Optional[str] = None,
                 student_recorders: Optional[Dict[str, dict]] = None,
                 teacher_recorders: Optional[Dict[str, dict]] = None,
                 connectors: Optional[Dict[str, dict]] = None,
                 distill_losses: Optional[Dict[str, dict]] = None,
                 loss_forward_mappings: Optional[Dict[str, dict]] = None,
                 teacher_forward_mode: str = 'auto',
                 teacher_replays: Optional[Dict[str, dict]] = None,
                 weighting: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        student_cfg, _ = resolve_model_cfg(student, 'student')
        teacher_cfg, _ = resolve_model_cfg(teacher, 'teacher')
        self.student = MODELS.build(copy.deepcopy(student_cfg))
        # Whatever is built after the student draws from a copy of torch's random state: with
        # the same seed, the student is initialised exactly as when it trains alone, so a
        # distilled and a plain student compare seed by seed.
        rng_after_student = torch.get_rng_state()
        self.teacher = MODELS.build(copy.deepcopy(teacher_cfg))
        self.student_cfg = student_cfg

        same_preprocessing = (student_cfg.get('data_preprocessor')
                              == teacher_cfg.get('data_preprocessor'))
        self.data_preprocessor = DistillDataPreprocessor(
            self.student.data_preprocessor,
            None if same_preprocessing else self.teacher.data_preprocessor)

        self.teacher_ckpt = teacher_ckpt
        self._load_teacher(teacher_ckpt)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        # Checkpoints hold no teacher weights; loading fills them from the current teacher.
        self._register_state_dict_hook(_drop_teacher_keys)
        self._register_load_state_dict_pre_hook(_fill_teacher_keys, with_module=True)

        self.student_recorders = RecorderManager(student_recorders)
        self.teacher_recorders = RecorderManager(teacher_recorders)
        self.student_recorders.attach(self.student, 'student')
        self.teacher_recorders.attach(self.teacher, 'teacher')

        self.connectors = nn.ModuleDict(
            {name: build_component(cfg) for name, cfg in (connectors or {}).items()})
        for name, connector in self.connectors.items():
            if not isinstance(connector, BaseConnector):
                raise TypeError(f'Connector {name!r} built a {type(connector).__name__}; '
                                'connectors subclass mmkd.models.connectors.BaseConnector.')
        self.distill_losses = nn.ModuleDict(
            {name: build_component(cfg) for name, cfg in (distill_losses or {}).items()})
        self.teacher_replays = self._check_teacher_replays(teacher_replays or {})
        self._replay_outputs: Dict[str, object] = {}
        self.loss_forward_mappings = dict(loss_forward_mappings or {})
        self._check_loss_mappings()
        self._check_num_classes()
        self._setup_gradients()
        self.log_path_weights = weighting is not None
        self.weighting = build_component(weighting or dict(type='FixedWeighting'))
        if not isinstance(self.weighting, BaseWeighting):
            raise TypeError(f'weighting built a {type(self.weighting).__name__}; use '
                            'FixedWeighting, UncertaintyWeighting or GradientSimilarityWeighting.')
        self.weighting.bind(list(self.distill_losses), self.student)
        self.teacher_forward_mode = self._choose_teacher_forward_mode(teacher_forward_mode)
        self._gradients: Dict[int, Tensor] = {}  # id(recorded tensor) -> its gradient, per step
        torch.set_rng_state(rng_after_student)

    # ------------------------------------------------------------------ teacher
    def _load_teacher(self, teacher_ckpt: Optional[str]) -> None:
        if teacher_ckpt is None:
            print_log('teacher_ckpt is None: the teacher keeps its random initialisation, '
                      'which only makes sense for tests.', logger='current', level=30)
            return
        if '://' in teacher_ckpt:  # a URL (e.g. mmdet's model zoo): mmengine downloads it
            checkpoint = CheckpointLoader.load_checkpoint(teacher_ckpt, map_location='cpu')
        else:
            checkpoint = load_checkpoint_file(teacher_ckpt)
        state_dict = checkpoint.get('state_dict', checkpoint)
        if not isinstance(state_dict, dict):
            raise ValueError(f'teacher_ckpt {teacher_ckpt!r} holds no state dict.')
        try:
            result = self.teacher.load_state_dict(state_dict, strict=False)
        except RuntimeError as err:  # shape mismatches
            details = str(err).split('\n')[1:4]
            raise ValueError(f'teacher_ckpt {teacher_ckpt!r} does not fit the teacher config: '
                             f'{" ".join(d.strip() for d in details)} Is it a checkpoint of this '
                             'teacher model?') from None
        if result.missing_keys:
            raise ValueError(
                f'teacher_ckpt {teacher_ckpt!r} does not fit the teacher config: '
                f'{len(result.missing_keys)} teacher weights are missing from it, e.g. '
                f'{result.missing_keys[:5]}. Is it a checkpoint of this teacher model?')
        if result.unexpected_keys:
            print_log(f'teacher_ckpt has {len(result.unexpected_keys)} keys the teacher does '
                      f'not use, e.g. {result.unexpected_keys[:5]}', logger='current', level=30)
        # mmengine's Runner calls init_weights() after building: keep the loaded weights.
        self.teacher._is_init = True

    def train(self, mode: bool = True) -> 'Distiller':
        super().train(mode)
        self.teacher.train(False)  # the frozen teacher keeps BN statistics and dropout off
        return self

    def _choose_teacher_forward_mode(self, mode: str) -> str:
        if mode not in TEACHER_FORWARD_MODES:
            raise ValueError(f'teacher_forward_mode must be one of {TEACHER_FORWARD_MODES}, '
                             f'got {mode!r}.')
        if self._gradient_recorders['teacher']:
            if mode not in ('auto', 'loss'):
                raise ValueError(f"teacher_forward_mode={mode!r} cannot give teacher gradients: "
                                 "a loss maps gradient=True from a teacher recorder, which needs "
                                 "teacher_forward_mode='loss' (or 'auto').")
            return 'loss'
        if mode != 'auto':
            return mode
        if not hasattr(self.teacher, 'extract_feat'):
            return 'tensor'
        for recorder in self.teacher_recorders:
            name = (recorder.module_name if isinstance(recorder, MethodOutputsRecorder)
                    else recorder.source)
            if name.split('.')[0] not in FEATURE_MODULES:
                return 'tensor'
        return 'extract_feat'

    def _run_teacher(self, inputs: Tensor, data_samples) -> None:
        # Grad mode only for teacher gradients: the frozen weights record no graph, and the
        # recorded outputs are leaves, so only the head's part of the graph is built.
        needs_grad = bool(self._gradient_recorders['teacher'])
        with torch.set_grad_enabled(needs_grad), self.teacher_recorders.recording():
            if self.teacher_forward_mode == 'extract_feat':
                self.teacher.extract_feat(inputs)
            elif self.teacher_forward_mode == 'tensor':
                self.teacher(inputs, data_samples, mode='tensor')
            else:
                losses = self.teacher(inputs, data_samples, mode='loss')
                if needs_grad:
                    self._store_gradients(losses, 'teacher', retain_graph=False,
                                          create_graph=False)

    # ------------------------------------------------------------------ forward
    def forward(self, inputs, data_samples=None, mode: str = 'tensor',
                teacher_inputs=None, teacher_data_samples=None):
        if mode == 'loss':
            return self.loss(inputs, data_samples, teacher_inputs, teacher_data_samples)
        return self.student(inputs, data_samples, mode=mode)

    def loss(self, inputs, data_samples, teacher_inputs=None, teacher_data_samples=None) -> dict:
        """Student task losses plus ``distill.<name>`` for every distillation loss."""
        if teacher_inputs is None:
            teacher_inputs, teacher_data_samples = inputs, data_samples
        self._run_teacher(teacher_inputs, teacher_data_samples)
        with self.student_recorders.recording():
            losses = self.student.loss(inputs, data_samples)
        if self._gradient_recorders['student']:
            self._store_gradients(losses, 'student', retain_graph=True,
                                  create_graph=self._student_create_graph)
        losses = dict(losses)
        if self.teacher_replays:
            self._run_teacher_replays(dict(inputs=inputs, data_samples=data_samples))
        task_loss = sum(_sum_loss_values(losses))
        losses.update(self.compute_distill_losses(inputs, data_samples, task_loss))
        self.student_recorders.reset()
        self.teacher_recorders.reset()
        self._gradients.clear()
        self._replay_outputs.clear()
        return losses

    # ------------------------------------------------------------------ gradients
    def _setup_gradients(self) -> None:
        """Find the recorders whose task-loss gradients some loss needs."""
        self._gradient_recorders = {'student': set(), 'teacher': set()}
        self._student_create_graph = False
        for name, mapping in self.loss_forward_mappings.items():
            for arg, spec in mapping.items():
                if not spec.get('gradient'):
                    continue
                side = 'student' if spec['from_student'] else 'teacher'
                recorder = (self.student_recorders if side == 'student'
                            else self.teacher_recorders)[spec['recorder']]
                if not isinstance(recorder, ModuleOutputsRecorder) or isinstance(
                        recorder, ModuleInputsRecorder):
                    raise TypeError(f'loss_forward_mappings[{name!r}][{arg!r}]: gradient=True '
                                    f'needs a ModuleOutputsRecorder, but {side} recorder '
                                    f"{spec['recorder']!r} is a {type(recorder).__name__}.")
                self._gradient_recorders[side].add(spec['recorder'])
                if side == 'teacher':
                    recorder.outputs_as_grad_leaves = True
                else:
                    self._student_create_graph |= bool(
                        getattr(self.distill_losses[name], 'create_graph', False))

    def _store_gradients(self, losses: dict, side: str, retain_graph: bool,
                         create_graph: bool) -> None:
        """d(sum of ``side``'s task losses) / d(recorded tensors), kept by tensor id."""
        manager = self.student_recorders if side == 'student' else self.teacher_recorders
        tensors = [t for name in sorted(self._gradient_recorders[side])
                   for t in _tensors_in(manager[name].data_buffer) if t.requires_grad]
        if not tensors:
            return
        total = sum(_sum_loss_values(losses))
        grads = torch.autograd.grad(total, tensors, retain_graph=retain_graph,
                                    create_graph=create_graph, allow_unused=True)
        for tensor, grad in zip(tensors, grads):
            self._gradients[id(tensor)] = torch.zeros_like(tensor) if grad is None else grad

    def _gradient_of(self, value):
        if isinstance(value, Tensor):
            if id(value) not in self._gradients:
                raise RuntimeError('No gradient was recorded for this tensor: it did not take '
                                   'part in the task loss.')
            return self._gradients[id(value)]
        if isinstance(value, (list, tuple)):
            return type(value)(self._gradient_of(v) for v in value)
        raise TypeError(f'gradient=True needs recorded tensors, got {type(value).__name__}.')

    def compute_distill_losses(self, inputs, data_samples,
                               task_loss: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Evaluate every distillation loss on the data recorded in this step and combine
        them with the weighting."""
        batch = dict(inputs=inputs, data_samples=data_samples)
        raw = OrderedDict()
        device_type = inputs.device.type if isinstance(inputs, Tensor) else 'cpu'
        # Losses compute in float32 even under AMP: their reductions overflow in half.
        with torch.autocast(device_type=device_type, enabled=False):
            for name, loss_module in self.distill_losses.items():
                kwargs = self._gather_loss_inputs(name, batch)
                self._check_shapes(name, loss_module, kwargs)
                raw[name] = loss_module(**kwargs)
            weighted, weights = self.weighting(raw, task_loss)
        if self.log_path_weights and self.training:
            hub = MessageHub.get_current_instance()
            for name, weight in weights.items():
                hub.update_scalar(f'train/distill_weight.{name}', weight)
        return OrderedDict((_loss_key(name), weighted[name]) for name in raw)

    def _gather_loss_inputs(self, name: str, batch: dict) -> dict:
        mapping = self.loss_forward_mappings[name]
        kwargs = {}
        # Teacher-side first, so a student connector can follow the teacher tensor's shape.
        order = sorted(mapping, key=lambda arg: bool(mapping[arg].get('from_student', False)))
        for arg in order:
            spec = mapping[arg]
            value = self._resolve_spec(spec, batch)
            if 'from_data' in spec:
                kwargs[arg] = value
                continue
            if spec.get('connector') is not None:
                target = kwargs.get('preds_T', next(
                    (v for a, v in kwargs.items() if not mapping[a].get('from_student', False)
                     and isinstance(v, Tensor)), None))
                for connector_name in _as_list(spec['connector']):
                    value = self.connectors[connector_name](_to_float(value), target)
            kwargs[arg] = _to_float(value)
        return kwargs

    def _resolve_spec(self, spec: dict, batch: dict):
        """The value a mapping spec names: batch data, recorded data, a teacher replay's
        output, or a recorded tensor's task-loss gradient (teacher side detached)."""
        if 'from_data' in spec:
            return _batch_value(batch, spec['from_data'])
        if not spec['from_student'] and spec['recorder'] in self.teacher_replays:
            return select(self._replay_outputs[spec['recorder']], spec.get('data_idx'),
                          f"teacher replay {spec['recorder']!r}")
        manager = self.student_recorders if spec['from_student'] else self.teacher_recorders
        value = manager.get_record_data(spec['recorder'], spec.get('record_idx', 0),
                                        spec.get('data_idx'))
        if spec.get('gradient'):
            value = self._gradient_of(value)
        if not spec['from_student'] and isinstance(value, Tensor):
            value = value.detach()
        return value

    def _run_teacher_replays(self, batch: dict) -> None:
        """Call teacher methods on recorded data, e.g. its RoI head on the student's RoIs."""
        with torch.no_grad():
            for name, replay in self.teacher_replays.items():
                args = [self._resolve_spec(spec, batch) for spec in replay['args']]
                self._replay_outputs[name] = replay['method'](*args)

    # ------------------------------------------------------------------ checks
    def _check_teacher_replays(self, replays: Dict[str, dict]) -> Dict[str, dict]:
        resolved = {}
        for name, replay in replays.items():
            if name in self.teacher_recorders:
                raise KeyError(f'teacher_replays[{name!r}] has the name of a teacher recorder; '
                               'give it its own name.')
            if set(replay) != {'method', 'args'}:
                raise KeyError(f"teacher_replays[{name!r}] needs exactly 'method' (e.g. "
                               "'roi_head._bbox_forward') and 'args' (a list of specs).")
            module_name, _, method_name = replay['method'].rpartition('.')
            module = get_submodule_or_raise(self.teacher, module_name, 'teacher')
            method = getattr(module, method_name, None)
            if not callable(method):
                raise KeyError(f"teacher module {module_name!r} has no method {method_name!r} "
                               f"(teacher_replays[{name!r}]).")
            for i, spec in enumerate(replay['args']):
                self._check_spec(f'teacher_replays[{name!r}].args[{i}]', spec)
                if spec.get('gradient') or spec.get('connector'):
                    raise KeyError(f'teacher_replays[{name!r}].args[{i}]: replays take plain '
                                   'recorded data (no gradient, no connector).')
            resolved[name] = dict(method=method, args=list(replay['args']))
        return resolved

    def _check_loss_mappings(self) -> None:
        """Validate the whole wiring at build time, naming the valid choices."""
        missing = set(self.distill_losses) - set(self.loss_forward_mappings)
        extra = set(self.loss_forward_mappings) - set(self.distill_losses)
        if missing or extra:
            raise KeyError(f'distill_losses and loss_forward_mappings must name the same losses; '
                           f'without mapping: {sorted(missing)}, without loss: {sorted(extra)}.')
        for name, loss_module in self.distill_losses.items():
            signature = inspect.signature(loss_module.forward)
            params = signature.parameters
            takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
            mapping = self.loss_forward_mappings[name]
            for arg, spec in mapping.items():
                where = f'loss_forward_mappings[{name!r}][{arg!r}]'
                if arg not in params and not takes_kwargs:
                    raise KeyError(f'{where}: {type(loss_module).__name__}.forward has no '
                                   f'argument {arg!r}; its arguments: {list(params)}.')
                self._check_spec(where, spec)
            required = [p for p, v in params.items() if v.default is v.empty
                        and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
            unmapped = [p for p in required if p not in mapping]
            if unmapped:
                raise KeyError(f'loss_forward_mappings[{name!r}] does not map the required '
                               f'arguments {unmapped} of {type(loss_module).__name__}.forward.')

    def _check_spec(self, where: str, spec) -> None:
        if not isinstance(spec, dict):
            raise TypeError(f'{where} must be a dict, got {spec!r}.')
        unknown = set(spec) - SPEC_KEYS
        if unknown:
            raise KeyError(f'{where} has unknown keys {sorted(unknown)}; allowed: '
                           f'{sorted(SPEC_KEYS)}.')
        if 'from_data' in spec:
            if spec['from_data'] not in DATA_SOURCES:
                raise ValueError(f"{where}: from_data must be one of {DATA_SOURCES}, "
                                 f"got {spec['from_data']!r}.")
            return
        if 'from_student' not in spec or 'recorder' not in spec:
            raise KeyError(f'{where} needs from_student and recorder (or from_data).')
        manager = self.student_recorders if spec['from_student'] else self.teacher_recorders
        side = 'student' if spec['from_student'] else 'teacher'
        replays = {} if spec['from_student'] else getattr(self, 'teacher_replays', {})
        if spec['recorder'] not in manager and spec['recorder'] not in replays:
            raise KeyError(f"{where}: no {side} recorder named {spec['recorder']!r}; "
                           f'{side}_recorders defines {sorted(r for r in manager.recorders)}'
                           + (f' and teacher_replays {sorted(replays)}.' if replays else '.'))
        for connector_name in _as_list(spec.get('connector')):
            if connector_name not in self.connectors:
                raise KeyError(f'{where}: no connector named {connector_name!r}; connectors '
                               f'defines {sorted(self.connectors)}.')

    def _check_num_classes(self) -> None:
        needs_equal = [n for n, m in self.distill_losses.items()
                       if getattr(m, 'requires_equal_num_classes', False)]
        if not needs_equal:
            return
        n_student, n_teacher = get_num_classes(self.student), get_num_classes(self.teacher)
        if n_student is not None and n_teacher is not None and n_student != n_teacher:
            raise ValueError(f'Distill losses {needs_equal} compare class scores, but the '
                             f'student predicts {n_student} classes and the teacher '
                             f'{n_teacher}. Use a teacher trained on the same classes.')

    def _check_shapes(self, name: str, loss_module: nn.Module, kwargs: dict) -> None:
        if not getattr(loss_module, 'requires_same_shape', False):
            return
        preds_S, preds_T = kwargs.get('preds_S'), kwargs.get('preds_T')
        if not (isinstance(preds_S, Tensor) and isinstance(preds_T, Tensor)):
            return
        if preds_S.shape == preds_T.shape:
            return
        s, t = tuple(preds_S.shape), tuple(preds_T.shape)
        fixes = []
        if preds_S.dim() == 4 and s[1] != t[1]:
            fixes.append(f"dict(type='ConvConnector', in_channels={s[1]}, out_channels={t[1]})")
        if preds_S.dim() == 4 and s[2:] != t[2:]:
            fixes.append("dict(type='ResizeConnector')")
        hint = (f'Add connectors={{...: {" then ".join(fixes)}}} and name them in '
                f"loss_forward_mappings[{name!r}]['preds_S']['connector']." if fixes else
                'The batch or dimension counts differ: check recorder, record_idx and data_idx.')
        raise ValueError(f'Distill loss {name!r} ({type(loss_module).__name__}) needs equal '
                         f'shapes, but got preds_S {s} (student) and preds_T {t} (teacher). {hint}')


def _loss_key(name: str) -> str:
    """Log key of a distillation loss; mmengine sums every key that contains 'loss'."""
    return f'distill.{name}' if name.startswith('loss') else f'distill.loss_{name}'


def _as_list(value) -> List:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _to_float(value):
    if isinstance(value, Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(v) for v in value)
    return value


def _batch_value(batch: dict, source: str):
    if source != 'gt_sem_seg':
        return batch[source]
    samples = batch['data_samples']
    if not samples or 'gt_sem_seg' not in samples[0]:
        raise ValueError("from_data='gt_sem_seg' needs segmentation data samples with "
                         'gt_sem_seg (an mmseg model and dataset).')
    return torch.stack([sample.gt_sem_seg.data[0] for sample in samples]).long()


def _tensors_in(value) -> List[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors_in(v)]
    return []


def _sum_loss_values(losses: dict) -> List[Tensor]:
    """The terms mmengine sums into the training loss (keys containing 'loss')."""
    return [t.mean() for key, value in losses.items() if 'loss' in key
            for t in _tensors_in(value)]


def _drop_teacher_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + 'teacher.')]:
        del state_dict[key]


def _fill_teacher_keys(module: 'Distiller', state_dict: dict, prefix: str, *args) -> None:
    for key, value in module.teacher.state_dict().items():
        state_dict.setdefault(f'{prefix}teacher.{key}', value)
