"""The distillation model: a trainable student, one or several frozen teachers (by name:
:mod:`.teachers`) and the losses between them.

One training step, as :meth:`Distiller.loss` runs it:

1. each teacher runs under ``no_grad`` on its own preprocessing of the batch while its
   recorders capture what the config names, in its own precision and memory format, and stops
   once the last record read is taken (:mod:`.teacher_runner`);
2. the student computes its own task losses, its recorders capturing likewise (then, where a
   loss maps ``gradient=True``, the task-loss gradients: :mod:`.task_gradients`; the
   teacher replays: :mod:`.teacher_replays`; the cross heads, the teacher's head run with
   gradient on the student's features: :mod:`.cross_heads`; and the distillation points, one
   set of queries run through both DETR decoders: :mod:`.distill_points`);
3. each distillation loss receives the tensors its ``loss_forward_mappings`` entry names
   (:mod:`.loss_inputs`); the loss itself casts to float32 and detaches the teacher
   (:class:`mmkd.models.losses.BaseDistillLoss`); the weighting combines them, and each joins
   the student's losses as ``distill.<name>``;
4. a NaN or inf distillation loss stops the step before the optimizer (:mod:`.nonfinite`).

The wiring (recorders, connectors, losses, mappings) is written out in the config, or given
as ``recipes`` (``[dict(type='PKD', on='neck')]``) that are expanded into it when the model is
built (:mod:`.recipes`, :mod:`.expansion`, after probing both models' shapes: :mod:`.probe`).

To mmdet's and mmseg's hooks, loops and tools the Distiller is its student: an attribute it
does not have is the student's (``model.bbox_head``), and copies share the frozen teachers
(EMAHook's average): :mod:`.student_access`.
"""
import copy
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
from mmengine.dist import get_world_size
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmkd.registry import MODELS, build_component
from mmkd.utils import load_teacher_weights
from ..connectors import BaseConnector
from ..losses.base import BaseDistillLoss
from ..recorders import MethodOutputsRecorder, RecorderManager
from ..weighting import BaseWeighting
from .data_preprocessor import DistillDataPreprocessor
from .loss_inputs import LossInputs, side_name, sum_loss_values
from .model_config import get_num_classes, resolve_model_cfg
from .nonfinite import NonFiniteGuard
from .probe import choose_input_size
from .expansion import expand_recipes, log_expansion
from .task_gradients import TaskGradients
from .cross_heads import CrossHeads
from .distill_points import DistillPoints
from .student_access import StudentAccess
from .teacher_replays import TeacherReplays
from .teacher_runner import TeacherRunner, check_precision, needed_records, to_channels_last
from .teachers import DEFAULT_TEACHER, teacher_entries, teacher_role

#: Top-level submodules whose outputs exist before the task head runs.
FEATURE_MODULES = ('backbone', 'neck', 'data_preprocessor')
TEACHER_FORWARD_MODES = ('auto', 'extract_feat', 'tensor', 'loss')


@MODELS.register_module()
class Distiller(StudentAccess, BaseModel):
    """Distills one or several frozen mmdet / mmseg teachers into a student built from its own
    config.

    Args:
        student (dict): Student model: ``dict(cfg_path=..., pretrained=False)`` or a model
            config with a scope (``_scope_='mmdet'``); see
            :func:`mmkd.models.distillers.model_config.resolve_model_cfg`.
        teacher (dict, optional): Teacher model, same forms (the single-teacher form; give it
            or ``teachers``).
        teachers (dict, optional): Several teachers, ``{name: dict(cfg_path=..., ckpt=...,
            recorders=..., [forward_mode, precision, channels_last, early_stop, compile,
            cast_weights])}``: each its own model, weights, recorders, data preprocessor and
            execution settings (those left out take the ``teacher_<key>`` arguments below);
            a teacher-side loss-input spec names the teacher it reads (``teacher='gfl'``).
            Not with ``teacher``, ``teacher_ckpt``, ``teacher_recorders``, ``recipes``,
            ``teacher_replays``, ``cross_heads`` or ``distill_points``. See :mod:`.teachers`.
            Defaults to None.
        teacher_ckpt (str, optional): Teacher weights (a path or a URL such as mmdet's model
            zoo links), loaded at build, so also on resume. None keeps the teacher's random
            init and warns. Defaults to None.
        student_recorders (dict): ``{name: recorder cfg}`` on the student.
        teacher_recorders (dict): ``{name: recorder cfg}`` on the teacher (the single-teacher
            form; with ``teachers``, each entry's ``recorders``).
        connectors (dict): ``{name: connector cfg}``; trained with the student.
        distill_losses (dict): ``{name: loss cfg}``.
        loss_forward_mappings (dict): ``{loss name: {forward argument: spec}}``. A spec reads a
            recorder, ``dict(from_student=True, recorder='fpn', record_idx=0, data_idx=0,
            connector='fpn0')``, or the batch, ``dict(from_data='data_samples')``; see
            :mod:`.loss_inputs`. ``gradient=True`` in a recorder spec gives the gradient of that
            model's own task loss w.r.t. the recorded tensor (:mod:`.task_gradients`).
        teacher_forward_mode (str): ``'extract_feat'`` (backbone + neck), ``'tensor'`` (up to the
            head's raw outputs), ``'loss'`` (the teacher's own loss on the batch's ground truth)
            or ``'auto'``: ``'extract_feat'`` when every teacher recorder sits in the backbone
            or neck, else ``'tensor'``; ``'loss'`` when a loss needs teacher gradients.
            Defaults to ``'auto'``.
        teacher_replays (dict, optional): ``{name: dict(method='roi_head._bbox_forward',
            args=[spec, ...])}``: after the student's forward, call that teacher method under
            ``no_grad`` on recorded data (e.g. the teacher's RoI head on the RoIs the student
            sampled); a teacher-side spec with ``recorder=<name>`` reads its output. See
            :mod:`.teacher_replays`.
        cross_heads (dict, optional): ``{name: dict(head='bbox_head',
            reused_teacher_head_idx=3)}`` (CrossKD): after the student's forward, the teacher's
            dense head runs, with gradient to the student, on the student's head features
            after that conv, normalised to the teacher's; a student-side spec with
            ``recorder=<name>`` reads its predictions (``data_idx='cls_score'``, ...). Adds
            the recorders ``<name>_cls`` / ``<name>_reg`` to both models. See
            :mod:`.cross_heads`. Defaults to None.
        distill_points (dict, optional): ``{name: dict(teacher_points=300,
            random_points=300)}`` (KD-DETR, DINO / two-stage Deformable DETR): after the
            student's forward, both decoders run on the same distillation points (the
            teacher's best queries' reference boxes and random boxes), the teacher's under
            ``no_grad``; a spec with ``recorder=<name>`` reads that side's predictions
            (``data_idx='cls_scores'`` / ``'bbox_preds'``). Adds the recorders
            ``<name>_decoder`` (both models) and ``<name>_head`` (teacher). See
            :mod:`.distill_points`. Defaults to None.
        weighting (dict, optional): How the distillation losses ('paths') are combined:
            ``FixedWeighting`` (the default: their sum), ``UncertaintyWeighting`` or
            ``GradientSimilarityWeighting`` (see ``mmkd/models/weighting``). A configured
            weighting logs each path's effective weight every iteration as
            ``distill_weight.<name>``.
        nonfinite (str): What a NaN or inf distillation loss does: ``'error'`` stops training
            before the optimizer step, naming the loss, the iteration and the non-finite side;
            ``'skip'`` skips that optimizer step and counts the skips in the log
            (``distill_skipped_steps``; single-process training only). Defaults to 'error'.
        teacher_precision (str, optional): The teacher forward's precision, independent of the
            student's: ``'fp32'``, ``'bf16'`` or ``'fp16'`` (CUDA only; elsewhere a ValueError
            at build), run as autocast of that dtype; None runs the teacher in the student's
            autocast (``--amp``), if any. Recorded teacher tensors reach the losses in float32.
            See README, "How to choose the teacher settings". Defaults to None.
        teacher_channels_last (bool): The teacher's weights and inputs in channels_last
            memory format (faster convolutions on tensor-core GPUs and with oneDNN bf16; no
            gain for float32 on an AVX2 CPU). Defaults to False.
        student_channels_last (bool): The same for the student. Defaults to False.
        teacher_early_stop (bool): End the teacher's forward once every record the losses and
            replays read is taken (counted per recorder, so modules called once per FPN level
            stop after the last call read); False runs the whole forward of
            ``teacher_forward_mode``. Defaults to True.
        teacher_compile (bool): ``torch.compile`` the teacher's forward (without early
            stop). Defaults to False.
        teacher_cast_weights (bool): Cast the teacher's weights to ``teacher_precision``
            (bf16 / fp16) once, instead of autocast casting them at every forward. Defaults to
            False.
        recipes (list[dict], optional): Compact wiring, e.g. ``[dict(type='PKD', on='neck')]``:
            expanded when the model is built, after probing both models once on a dummy
            image, into recorders, connectors, losses and mappings that are added to the
            explicit ones (neck levels paired by stride, connectors where channels or sizes
            differ, each method's published weight and levels; RoI-head recipes add the
            teacher replay they read to ``teacher_replays``); the pairing table goes to the
            log and to :attr:`recipe_table`. See :mod:`.recipes`. Defaults to None.
        input_size (int | tuple, optional): (H, W) of the training images, for the recipes'
            probe only; None reads it from the student's config (its
            ``data_preprocessor.size`` or its training pipeline's resize / crop), see
            :mod:`.probe`. Defaults to None.
        data_preprocessor (dict, optional): Not accepted: the student's and the teacher's own
            preprocessors (from their configs) are used; an error says so when one is given.
    """

    def __init__(self,
                 student: dict,
                 teacher: Optional[dict] = None,
                 teacher_ckpt: Optional[str] = None,
                 student_recorders: Optional[Dict[str, dict]] = None,
                 teacher_recorders: Optional[Dict[str, dict]] = None,
                 connectors: Optional[Dict[str, dict]] = None,
                 distill_losses: Optional[Dict[str, dict]] = None,
                 loss_forward_mappings: Optional[Dict[str, dict]] = None,
                 teacher_forward_mode: str = 'auto',
                 teacher_replays: Optional[Dict[str, dict]] = None,
                 cross_heads: Optional[Dict[str, dict]] = None,
                 distill_points: Optional[Dict[str, dict]] = None,
                 weighting: Optional[dict] = None,
                 nonfinite: str = 'error',
                 teacher_precision: Optional[str] = None,
                 teacher_channels_last: bool = False,
                 student_channels_last: bool = False,
                 teacher_early_stop: bool = True,
                 teacher_compile: bool = False,
                 teacher_cast_weights: bool = False,
                 recipes: Optional[List[dict]] = None,
                 input_size=None,
                 teachers: Optional[Dict[str, dict]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if data_preprocessor is not None:
            raise ValueError('The Distiller takes no data_preprocessor: it uses the student\'s '
                             'and the teacher\'s own (their configs\' model.data_preprocessor). '
                             'Remove model.data_preprocessor from the distillation config.')
        entries = teacher_entries(teacher, teachers, dict(
            ckpt=teacher_ckpt, recorders=teacher_recorders, forward_mode=teacher_forward_mode,
            precision=teacher_precision, channels_last=teacher_channels_last,
            early_stop=teacher_early_stop, compile=teacher_compile,
            cast_weights=teacher_cast_weights))
        for entry in entries.values():
            check_precision(entry['precision'])  # before the models are built: fail fast
        if teachers is not None:
            one_teacher_only = [key for key, value in (
                ('recipes', recipes), ('teacher_replays', teacher_replays),
                ('cross_heads', cross_heads), ('distill_points', distill_points)) if value]
            if one_teacher_only:
                raise ValueError(f'{one_teacher_only} work with the single-teacher form '
                                 '(teacher=...) only; with teachers=..., write the wiring out '
                                 '(recorders in each teacher entry, teacher=<name> in the '
                                 'loss_forward_mappings specs).')
        if not isinstance(student_channels_last, bool):
            raise TypeError(f'student_channels_last must be True or False, got '
                            f'{student_channels_last!r}.')
        self.nonfinite_guard = NonFiniteGuard(nonfinite)
        if nonfinite == 'skip' and get_world_size() > 1:
            raise ValueError("nonfinite='skip' works in single-process training only (every "
                             "process would have to skip together); use nonfinite='error'.")
        if input_size is not None and not recipes:
            raise ValueError('input_size sets the size of the recipes\' probe only, and this '
                             'config has no recipes: remove input_size.')
        student_cfg, student_source = resolve_model_cfg(student, 'student')
        teacher_cfgs = {name: resolve_model_cfg(entry['model'], teacher_role(name))
                        for name, entry in entries.items()}
        self.student = MODELS.build(copy.deepcopy(student_cfg))
        # Whatever is built after the student draws from a copy of torch's random state: with
        # the same seed, the student is initialised exactly as when it trains alone, so a
        # distilled and a plain student compare seed by seed.
        rng_after_student = torch.get_rng_state()
        #: Every teacher by name (the single teacher's is 'teacher'), frozen, in eval mode.
        self.teachers = nn.ModuleDict({name: MODELS.build(copy.deepcopy(cfg))
                                       for name, (cfg, _) in teacher_cfgs.items()})
        self.data_preprocessor = DistillDataPreprocessor(self.student.data_preprocessor, {
            name: self.teachers[name].data_preprocessor
            for name, (cfg, _) in teacher_cfgs.items()
            if cfg.get('data_preprocessor') != student_cfg.get('data_preprocessor')})
        for name, model in self.teachers.items():
            load_teacher_weights(model, entries[name]['ckpt'], _setting(name, 'ckpt'))
            model.requires_grad_(False)
            model.eval()
        # Checkpoints hold no teacher weights; loading fills them from the current teachers.
        self._register_state_dict_hook(_drop_teacher_keys)
        self._register_load_state_dict_pre_hook(_fill_teacher_keys, with_module=True)
        teacher_recorders = {name: entry['recorders'] for name, entry in entries.items()}

        #: The recipes' pairing table, and their wiring written out as config text (None
        #: without recipes).
        self.recipe_table: Optional[str] = None
        self.recipe_explicit_config: Optional[str] = None
        if recipes:  # the single-teacher form only (checked above)
            teacher_cfg, teacher_source = teacher_cfgs[DEFAULT_TEACHER]
            size, origin = choose_input_size(input_size, [
                ('student', student_source, student_cfg), ('teacher', teacher_source, teacher_cfg)])
            expansion = expand_recipes(recipes, self.student, self.teacher, dict(
                student_recorders=student_recorders,
                teacher_recorders=teacher_recorders[DEFAULT_TEACHER],
                connectors=connectors, distill_losses=distill_losses,
                loss_forward_mappings=loss_forward_mappings, teacher_replays=teacher_replays),
                size, origin)
            student_recorders = expansion.student_recorders
            teacher_recorders[DEFAULT_TEACHER] = expansion.teacher_recorders
            connectors, distill_losses = expansion.connectors, expansion.distill_losses
            loss_forward_mappings = expansion.loss_forward_mappings
            teacher_replays = expansion.teacher_replays or None
            self.recipe_table = expansion.table()
            self.recipe_explicit_config = expansion.explicit_config()
            log_expansion(expansion)
        # Teacher replays, cross heads and distillation points exist in the single-teacher form
        # only (checked above).
        sole_teacher = self.teachers[DEFAULT_TEACHER] if teachers is None else None
        self.cross_heads = CrossHeads(cross_heads, self.student, sole_teacher)
        self.distill_points = DistillPoints(distill_points, self.student, sole_teacher)
        runners = dict(cross_heads=self.cross_heads, distill_points=self.distill_points)
        student_recorders = _with_runner_recorders(runners, 'student', student_recorders,
                                                   teacher_replays)
        teacher_recorders = {name: _with_runner_recorders(
            runners, 'teacher', recorders, teacher_replays)
            for name, recorders in teacher_recorders.items()}
        #: ``{'student': RecorderManager, <teacher name>: RecorderManager, ...}``.
        self.recorders = {'student': RecorderManager(student_recorders),
                          **{name: RecorderManager(recorders)
                             for name, recorders in teacher_recorders.items()}}
        self.recorders['student'].attach(self.student, 'student')
        for name, model in self.teachers.items():
            self.recorders[name].attach(model, teacher_role(name))
        self.connectors = _build_all(connectors, BaseConnector, 'Connector',
                                     'mmkd.models.connectors.BaseConnector')
        self.distill_losses = _build_all(distill_losses, BaseDistillLoss, 'Distill loss',
                                         'mmkd.models.losses.BaseDistillLoss')
        self.loss_inputs = LossInputs(
            loss_forward_mappings, self.distill_losses, self.recorders, self.connectors,
            {**{name: DEFAULT_TEACHER for name in teacher_replays or {}},
             **{name: 'student' for name in cross_heads or {}},
             **{name: ('student', DEFAULT_TEACHER) for name in distill_points or {}}})
        self.teacher_replays = TeacherReplays(teacher_replays, sole_teacher, self.loss_inputs)
        self.task_gradients = TaskGradients(self.loss_inputs.mappings, self.distill_losses,
                                            self.recorders, self.loss_inputs.side_of)
        self._check_num_classes()
        self.log_path_weights = weighting is not None
        self.weighting = build_component(weighting or dict(type='FixedWeighting'))
        if not isinstance(self.weighting, BaseWeighting):
            raise TypeError(f'weighting built a {type(self.weighting).__name__}; use '
                            'FixedWeighting, UncertaintyWeighting or GradientSimilarityWeighting.')
        self.weighting.bind(list(self.distill_losses), self.student)
        specs = ([spec for mapping in self.loss_inputs.mappings.values()
                  for spec in mapping.values()]
                 + [spec for replay in (teacher_replays or {}).values() for spec in replay['args']]
                 + self.cross_heads.teacher_specs() + self.distill_points.teacher_specs())
        #: Each teacher's forward mode and runner (precision, memory format, early stop).
        self.teacher_forward_modes: Dict[str, str] = {}
        self.teacher_runners: Dict[str, TeacherRunner] = {}
        for name, model in self.teachers.items():
            entry = entries[name]
            self.teacher_forward_modes[name] = self._choose_teacher_forward_mode(
                entry['forward_mode'], name)
            reads = [spec for spec in specs if 'from_data' not in spec
                     and self.loss_inputs.side_of(spec) == name]
            self.teacher_runners[name] = TeacherRunner(
                model, self.recorders[name], entry['precision'], entry['channels_last'],
                needed_records(reads, self.recorders[name].recorders), entry['early_stop'],
                entry['compile'], entry['cast_weights'])
        self.student_channels_last = student_channels_last
        if student_channels_last:
            self.student.to(memory_format=torch.channels_last)
        torch.set_rng_state(rng_after_student)

    @property
    def student_recorders(self) -> RecorderManager:
        return self.recorders['student']

    @property
    def teacher(self) -> nn.Module:
        """The teacher, in the single-teacher form (several: :attr:`teachers` by name)."""
        return self.teachers[self._sole_teacher_name('teacher')]

    @property
    def teacher_recorders(self) -> RecorderManager:
        return self.recorders[self._sole_teacher_name('teacher_recorders')]

    @property
    def teacher_runner(self) -> TeacherRunner:
        return self.teacher_runners[self._sole_teacher_name('teacher_runner')]

    @property
    def teacher_forward_mode(self) -> str:
        return self.teacher_forward_modes[self._sole_teacher_name('teacher_forward_mode')]

    def _sole_teacher_name(self, attribute: str) -> str:
        if len(self.teachers) != 1:
            # not an AttributeError: nn.Module.__getattr__ would replace this message
            raise KeyError(f'Distiller.{attribute} exists with one teacher; this one has '
                           f'{list(self.teachers)}: read them by name (Distiller.teachers, '
                           'recorders, teacher_runners, teacher_forward_modes).')
        return next(iter(self.teachers))

    def train(self, mode: bool = True) -> 'Distiller':
        super().train(mode)
        for teacher in self.teachers.values():  # frozen: BN statistics and dropout stay off
            teacher.train(False)
        return self

    # ------------------------------------------------------------------ one step
    def forward(self, inputs, data_samples=None, mode: str = 'tensor',
                teacher_inputs=None, teacher_data_samples=None):
        if mode == 'loss':
            return self.loss(inputs, data_samples, teacher_inputs, teacher_data_samples)
        return self.student(inputs, data_samples, mode=mode)

    def loss(self, inputs, data_samples, teacher_inputs=None, teacher_data_samples=None) -> dict:
        """Student task losses plus ``distill.<name>`` for every distillation loss."""
        for name in self.teachers:  # each teacher on its own preprocessing, where it has one
            self._run_teacher(name, (teacher_inputs or {}).get(name, inputs),
                              (teacher_data_samples or {}).get(name, data_samples))
        if self.student_channels_last:
            inputs = to_channels_last(inputs)
        with self.student_recorders.recording():
            losses = dict(self.student.loss(inputs, data_samples))
        if self.task_gradients.needed('student'):
            self.task_gradients.store(losses, 'student')
        batch = dict(inputs=inputs, data_samples=data_samples)
        device_type = inputs.device.type if isinstance(inputs, Tensor) else 'cpu'
        if self.teacher_replays:
            with self.teacher_runner.precision_context(device_type):
                self.teacher_replays.run(lambda spec: self.loss_inputs.resolve(
                    spec, batch, {}, self.task_gradients.of))
        try:
            self.cross_heads.run(self.recorders)
            if self.distill_points:
                self.distill_points.run(
                    self.recorders, lambda: self.teacher_runner.precision_context(device_type))
            losses.update(self.compute_distill_losses(batch, sum_loss_values(losses)))
        finally:  # nothing recorded in this step outlives it
            for recorders in self.recorders.values():
                recorders.reset()
            self.task_gradients.clear()
            self.teacher_replays.clear()
            self.cross_heads.clear()
            self.distill_points.clear()
        return losses

    def compute_distill_losses(self, batch: dict,
                               task_loss: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Every distillation loss on this step's recorded data, checked for NaN / inf and
        combined by the weighting; ``batch`` holds ``inputs`` and ``data_samples``."""
        raw, inputs = OrderedDict(), {}
        device_type = batch['inputs'].device.type if isinstance(batch['inputs'], Tensor) else 'cpu'
        # Connectors and the weighting run in float32 too (the losses cast for themselves).
        with torch.autocast(device_type=device_type, enabled=False):
            for name, loss in self.distill_losses.items():
                inputs[name] = self.loss_inputs.gather(
                    name, batch, {**self.teacher_replays.outputs, **self.cross_heads.outputs,
                                  **self.distill_points.outputs}, self.task_gradients.of)
                self.loss_inputs.check_shapes(name, loss, inputs[name])
                raw[name] = loss(**inputs[name])
            self.nonfinite_guard.check(raw, inputs)
            weighted, weights = self.weighting(raw, task_loss)
        if self.training:
            if self.log_path_weights:
                hub = MessageHub.get_current_instance()
                for name, weight in weights.items():
                    hub.update_scalar(f'train/distill_weight.{name}', weight)
            self.nonfinite_guard.log()
        if self.nonfinite_guard.skip_step:  # keep the NaN out of the logged averages
            weighted = {name: torch.zeros((), device=v.device) for name, v in weighted.items()}
        return OrderedDict((_loss_key(name), weighted[name]) for name in raw)

    def train_step(self, data, optim_wrapper) -> Dict[str, Tensor]:
        """mmengine's train step, except that a step whose distillation loss is NaN or inf
        (``nonfinite='skip'``) leaves the weights and the optimizer state untouched."""
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed_losses, log_vars = self.parse_losses(losses)
        if self.nonfinite_guard.skip_step:
            optim_wrapper.zero_grad()
        else:
            optim_wrapper.update_params(parsed_losses)
        return log_vars

    # ------------------------------------------------------------------ teacher
    def _choose_teacher_forward_mode(self, mode: str, name: str) -> str:
        if mode not in TEACHER_FORWARD_MODES:
            raise ValueError(f'{_setting(name, "forward_mode")} must be one of '
                             f'{TEACHER_FORWARD_MODES}, got {mode!r}.')
        if self.task_gradients.needed(name):
            if mode not in ('auto', 'loss'):
                raise ValueError(f"teacher_forward_mode={mode!r} cannot give teacher gradients: "
                                 "a loss maps gradient=True from a teacher recorder, which needs "
                                 "teacher_forward_mode='loss' (or 'auto').")
            return 'loss'
        if mode != 'auto':
            return mode
        if not hasattr(self.teachers[name], 'extract_feat'):
            return 'tensor'
        for recorder in self.recorders[name]:
            name = (recorder.module_name if isinstance(recorder, MethodOutputsRecorder)
                    else recorder.source)
            if name.split('.')[0] not in FEATURE_MODULES:
                return 'tensor'
        return 'extract_feat'

    def _run_teacher(self, name: str, inputs: Tensor, data_samples) -> None:
        # Grad mode only for teacher gradients: the frozen weights record no graph, and the
        # recorded outputs are leaves, so only the head's part of the graph is built.
        needs_grad = self.task_gradients.needed(name)
        with torch.set_grad_enabled(needs_grad):
            losses = self.teacher_runners[name].run(self.teacher_forward_modes[name], inputs,
                                                    data_samples)
        if needs_grad:
            self.task_gradients.store(losses, name)

    def _check_num_classes(self) -> None:
        needs_equal = [n for n, m in self.distill_losses.items() if m.requires_equal_num_classes]
        if not needs_equal:
            return
        n_student = get_num_classes(self.student)
        for name, teacher in self.teachers.items():
            n_teacher = get_num_classes(teacher)
            if n_student is not None and n_teacher is not None and n_student != n_teacher:
                raise ValueError(f'Distill losses {needs_equal} compare class scores, but the '
                                 f'student predicts {n_student} classes and the '
                                 f'{side_name(name)} {n_teacher}. Use a teacher trained on '
                                 'the same classes.')


def _with_runner_recorders(runners: dict, side: str, recorders: Optional[Dict[str, dict]],
                           teacher_replays: Optional[Dict[str, dict]]) -> Dict[str, dict]:
    """``recorders`` plus the recorders of ``side`` that the runners (``{'cross_heads':
    CrossHeads, 'distill_points': DistillPoints}``) add; a name used twice raises."""
    taken = set(recorders or {}) | set(teacher_replays or {})
    merged = dict(recorders or {})
    for kind, runner in runners.items():
        added = runner.recorders(side)
        names = set(runner.names)
        clash = sorted(taken & (set(added) | names))
        if clash:
            raise KeyError(f'{kind} use the names {sorted(names)} and their recorders '
                           f'{sorted(added)}; {clash} is also a {side} recorder, a teacher '
                           'replay or a cross head: rename one.')
        taken |= set(added) | names
        merged.update(added)
    return merged


def _build_all(cfgs: Optional[Dict[str, dict]], base: type, kind: str,
               base_name: str) -> nn.ModuleDict:
    built = nn.ModuleDict({name: build_component(cfg) for name, cfg in (cfgs or {}).items()})
    for name, module in built.items():
        if not isinstance(module, base):
            raise TypeError(f'{kind} {name!r} built a {type(module).__name__}; '
                            f'{kind.lower()}s subclass {base_name}.')
    return built


def _loss_key(name: str) -> str:
    """Log key of a distillation loss; mmengine sums every key that contains 'loss'."""
    return f'distill.{name}' if name.startswith('loss') else f'distill.loss_{name}'


def _setting(name: str, key: str) -> str:
    """A teacher setting as the config writes it: ``teacher_<key>`` or ``teachers['gfl'].<key>``."""
    return f'teacher_{key}' if name == DEFAULT_TEACHER else f'{teacher_role(name)}.{key}'


def _drop_teacher_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + 'teachers.')]:
        del state_dict[key]


def _fill_teacher_keys(module: 'Distiller', state_dict: dict, prefix: str, *args) -> None:
    for key, value in module.teachers.state_dict().items():
        state_dict.setdefault(f'{prefix}teachers.{key}', value)
