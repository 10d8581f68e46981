"""The distillation model: a trainable student, one or several frozen teachers (by name:
:mod:`.teachers`) and the losses between them.

One training step (:meth:`Distiller.loss`; docs/en/advanced_guides/training_step.md): each
teacher runs, recording what the losses read (:mod:`.teacher_runner`); the student computes
its task losses, recording likewise; the stages run (:mod:`.stages`: teacher replays, cross
heads, distillation points ...); each distillation loss receives what its
``loss_forward_mappings`` entry names (:mod:`.loss_inputs`), and the weighting combines them
into ``distill.<name>`` (a NaN or inf stops the step: :mod:`.nonfinite`). What feeds what is
built once, outside this class, by :func:`.wiring.build_wiring` (``recipes`` included).

To mmdet's and mmseg's hooks, loops and tools the Distiller is its student
(:mod:`.student_access`); its teachers stay frozen and out of checkpoints
(:mod:`.teacher_access`).
"""
import copy
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
from mmengine.dist import get_world_size
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from torch import Tensor

from mmkd.registry import MODELS
from .data_preprocessor import DistillDataPreprocessor
from .loss_inputs import sum_loss_values
from .model_config import resolve_model_cfg
from .nonfinite import NonFiniteGuard
from .stages import StageStep, stage_configs
from .student_access import StudentAccess
from .teacher_access import TeacherAccess
from .teacher_runner import TeacherRunner, check_precision, device_type_of, to_channels_last
from .teachers import teacher_entries, teacher_role
from .wiring import build_wiring, check_wiring_arguments


@MODELS.register_module()
class Distiller(StudentAccess, TeacherAccess, BaseModel):
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
            Not with ``teacher``, ``teacher_ckpt``, ``teacher_recorders``, ``recipes`` or
            stages. See :mod:`.teachers`. Defaults to None.
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
            args=[spec, ...])}``: a teacher method run again under ``no_grad`` on recorded
            data; a teacher-side spec with ``recorder=<name>`` reads its output
            (:mod:`.teacher_replays`). Defaults to None.
        cross_heads (dict, optional): ``{name: dict(head='bbox_head',
            reused_teacher_head_idx=3)}`` (CrossKD): the teacher's dense head run with
            gradient on the student's head features; a student-side spec reads its predictions
            (:mod:`.cross_heads`). Defaults to None.
        distill_points (dict, optional): ``{name: dict(teacher_points=300,
            random_points=300)}`` (KD-DETR): both DETR decoders run on the same points; a spec
            of either side reads that side's predictions (:mod:`.distill_points`). Defaults
            to None.
        stages (dict, optional): Other stages, ``{class name: {name: options}}``, each a
            registered :class:`~.stages.DistillStage` (the three above are stages too, and
            run first). Stages run after the student's forward, in this order, and exist in
            the single-teacher form only. Defaults to None.
        weighting (dict, optional): How the distillation losses ('paths') are combined:
            ``FixedWeighting`` (the default: their sum), ``UncertaintyWeighting`` or
            ``GradientSimilarityWeighting`` (see ``mmkd/models/weighting``). A configured
            weighting logs each path's effective weight every iteration as
            ``distill_weight.<name>``.
        nonfinite (str): What a NaN or inf distillation loss does: ``'error'`` stops training
            before the optimizer step, naming the loss, the iteration and the non-finite side;
            ``'skip'`` skips that optimizer step and counts the skips in the log
            (``distill_skipped_steps``; single-process training only). Defaults to 'error'.
        teacher_precision (str, optional): The teacher forward's autocast precision:
            ``'fp32'``, ``'bf16'`` or ``'fp16'`` (CUDA only); None: the student's autocast
            (``--amp``), if any. The losses receive float32. Defaults to None.
        teacher_channels_last (bool): The teacher's weights and inputs in channels_last
            memory format. Defaults to False.
        student_channels_last (bool): The same for the student. Defaults to False.
        teacher_early_stop (bool): End the teacher's forward once every record the losses and
            stages read is taken. Defaults to True.
        teacher_compile (bool): ``torch.compile`` the teacher's forward (without early
            stop). Defaults to False.
        teacher_cast_weights (bool): Cast the teacher's weights to ``teacher_precision`` once
            instead of at every forward. Defaults to False. (These six: :mod:`.teacher_runner`.)
        recipes (list[dict], optional): Compact wiring, e.g. ``[dict(type='PKD', on='neck')]``,
            expanded when the model is built, after probing both models, into recorders,
            connectors, losses, mappings and teacher replays added to the explicit ones; the
            pairing table goes to the log and to :attr:`recipe_table` (:mod:`.recipes`,
            :mod:`.expansion`). Defaults to None.
        input_size (int | tuple, optional): (H, W) of the training images, for the recipes'
            probe only; None: from the student's config (:mod:`.probe`). Defaults to None.
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
                 init_cfg: Optional[dict] = None,
                 stages: Optional[Dict[str, dict]] = None):
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
        stage_arguments = dict(teacher_replays=teacher_replays, cross_heads=cross_heads,
                               distill_points=distill_points, stages=stages)
        check_wiring_arguments(teachers is not None, recipes, stage_arguments, input_size)
        if not isinstance(student_channels_last, bool):
            raise TypeError(f'student_channels_last must be True or False, got '
                            f'{student_channels_last!r}.')
        self.nonfinite_guard = NonFiniteGuard(nonfinite)
        if nonfinite == 'skip' and get_world_size() > 1:
            raise ValueError("nonfinite='skip' works in single-process training only (every "
                             "process would have to skip together); use nonfinite='error'.")
        model_cfgs = {'student': resolve_model_cfg(student, 'student'),
                      **{name: resolve_model_cfg(entry['model'], teacher_role(name))
                         for name, entry in entries.items()}}
        student_cfg = model_cfgs['student'][0]
        self.student = MODELS.build(copy.deepcopy(student_cfg))
        # Whatever is built after the student draws from a copy of torch's random state: with
        # the same seed, the student is initialised exactly as when it trains alone, so a
        # distilled and a plain student compare seed by seed.
        rng_after_student = torch.get_rng_state()
        self.build_teachers(entries, model_cfgs)
        self.data_preprocessor = DistillDataPreprocessor(self.student.data_preprocessor, {
            name: self.teachers[name].data_preprocessor for name in entries
            if model_cfgs[name][0].get('data_preprocessor') != student_cfg.get(
                'data_preprocessor')})
        wiring = build_wiring(
            self.student, self.teachers, entries, dict(
                student_recorders=student_recorders, connectors=connectors,
                distill_losses=distill_losses, loss_forward_mappings=loss_forward_mappings),
            stage_configs(**stage_arguments), weighting, recipes, input_size, model_cfgs)
        self.recipe_table = wiring.recipe_table  # (and the expansion as config text:)
        self.recipe_explicit_config = wiring.recipe_explicit_config
        #: ``{'student': RecorderManager, <teacher name>: RecorderManager, ...}``.
        self.recorders = wiring.recorders
        self.connectors, self.distill_losses = wiring.connectors, wiring.distill_losses
        self.loss_inputs, self.task_gradients = wiring.loss_inputs, wiring.task_gradients
        #: ``{stage class name: DistillStage}``, run after the student's forward, in order.
        self.stages = wiring.stages
        self.log_path_weights = weighting is not None
        self.weighting = wiring.weighting
        #: Each teacher's forward mode and runner (precision, memory format, early stop).
        self.teacher_forward_modes: Dict[str, str] = wiring.teacher_forward_modes
        self.teacher_runners: Dict[str, TeacherRunner] = wiring.teacher_runners
        self.student_channels_last = student_channels_last
        if student_channels_last:
            self.student.to(memory_format=torch.channels_last)
        torch.set_rng_state(rng_after_student)

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
        step = StageStep(self.recorders, batch, lambda spec: self.loss_inputs.resolve(
            spec, batch, {}, self.task_gradients.of), {
                name: runner.precision_context for name, runner in self.teacher_runners.items()})
        try:
            for stage in filter(None, self.stages.values()):  # those with entries
                stage.run(step)
            losses.update(self.compute_distill_losses(batch, sum_loss_values(losses)))
        finally:  # nothing recorded in this step outlives it
            for recorders in self.recorders.values():
                recorders.reset()
            self.task_gradients.clear()
            for stage in self.stages.values():
                stage.reset()
        return losses

    def compute_distill_losses(self, batch: dict,
                               task_loss: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Every distillation loss on this step's recorded data and stage outputs, checked for
        NaN / inf and combined by the weighting; ``batch`` holds ``inputs`` and
        ``data_samples``."""
        raw, inputs = OrderedDict(), {}
        device_type = device_type_of(batch['inputs'])
        outputs = {name: output for stage in self.stages.values()
                   for name, output in stage.outputs.items()}
        # Connectors and the weighting run in float32 too (the losses cast for themselves).
        with torch.autocast(device_type=device_type, enabled=False):
            for name, loss in self.distill_losses.items():
                inputs[name] = self.loss_inputs.gather(name, batch, outputs,
                                                       self.task_gradients.of)
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

    def _run_teacher(self, name: str, inputs: Tensor, data_samples) -> None:
        # Grad mode only for teacher gradients: the frozen weights record no graph, and the
        # recorded outputs are leaves, so only the head's part of the graph is built.
        needs_grad = self.task_gradients.needed(name)
        with torch.set_grad_enabled(needs_grad):
            losses = self.teacher_runners[name].run(self.teacher_forward_modes[name], inputs,
                                                    data_samples)
        if needs_grad:
            self.task_gradients.store(losses, name)


def _loss_key(name: str) -> str:
    """Log key of a distillation loss; mmengine sums every key that contains 'loss'."""
    return f'distill.{name}' if name.startswith('loss') else f'distill.loss_{name}'

