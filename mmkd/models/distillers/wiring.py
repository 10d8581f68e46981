"""The wiring of a Distiller, built once from its config: what records what, what feeds which
loss, what runs after the student's forward, and how each teacher runs.

:func:`build_wiring` takes the built student and teachers and the config's wiring arguments
and, in this order,

1. expands the ``recipes`` into recorders, connectors, losses, mappings and teacher replays
   (:mod:`.expansion`, after probing both models: :mod:`.probe`);
2. builds the stages (:mod:`.stages`: teacher replays, cross heads, distillation points and
   any registered in ``stages``) and adds the recorders they ask for, checking that no name
   is used twice;
3. builds each model's recorders (:class:`mmkd.models.recorders.RecorderManager`) and attaches
   them, then the connectors and the distillation losses;
4. checks every loss's ``loss_forward_mappings`` and the stages' specs (:mod:`.loss_inputs`),
   and finds the task-loss gradients they ask for (:mod:`.task_gradients`);
5. builds the weighting (:mod:`mmkd.models.weighting`);
6. chooses each teacher's forward mode and builds its runner (:mod:`.teacher_runner`), which
   stops the teacher once every record the losses and stages read is taken.

It returns a :class:`Wiring`, whose parts the Distiller keeps as its attributes of the same
names; the Distiller itself only runs the step (docs/en/advanced_guides/training_step.md).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

from torch import nn

from mmkd.registry import build_component
from ..connectors import BaseConnector
from ..losses.base import BaseDistillLoss
from ..recorders import MethodOutputsRecorder, RecorderManager
from ..weighting import BaseWeighting
from . import cross_heads, distill_points, teacher_replays  # noqa: F401 (register the stages)
from .expansion import expand_recipes, log_expansion
from .loss_inputs import LossInputs, side_name
from .model_config import get_num_classes
from .probe import choose_input_size
from .stages import DistillStage, build_stage
from .task_gradients import TaskGradients
from .teacher_runner import TeacherRunner, needed_records
from .teachers import DEFAULT_TEACHER, setting_name, teacher_role

#: Top-level submodules whose outputs exist before the task head runs.
FEATURE_MODULES = ('backbone', 'neck', 'data_preprocessor')
TEACHER_FORWARD_MODES = ('auto', 'extract_feat', 'tensor', 'loss')
#: The config's wiring arguments that :func:`build_wiring` reads from ``cfgs``.
WIRING_KEYS = ('student_recorders', 'connectors', 'distill_losses', 'loss_forward_mappings')


@dataclass
class Wiring:
    """Everything :func:`build_wiring` built; the Distiller keeps each part under its name."""
    #: ``{'student': RecorderManager, <teacher name>: RecorderManager, ...}``, attached.
    recorders: Dict[str, RecorderManager]
    connectors: nn.ModuleDict
    distill_losses: nn.ModuleDict
    loss_inputs: LossInputs
    task_gradients: TaskGradients
    #: ``{stage class name: DistillStage}``, in running order (empty stages included).
    stages: Dict[str, DistillStage]
    weighting: BaseWeighting
    #: Each teacher's forward mode and runner (precision, memory format, early stop).
    teacher_forward_modes: Dict[str, str]
    teacher_runners: Dict[str, TeacherRunner]
    #: The recipes' pairing table, and their wiring written out as config text (None
    #: without recipes).
    recipe_table: Optional[str] = None
    recipe_explicit_config: Optional[str] = None


def build_wiring(student: nn.Module, teachers: nn.ModuleDict, entries: Dict[str, dict],
                 cfgs: dict, stage_cfgs: Dict[str, Optional[dict]], weighting: Optional[dict],
                 recipes: Optional[List[dict]] = None, input_size=None,
                 model_cfgs: Optional[dict] = None) -> Wiring:
    """Build the wiring of a Distiller (see the module docstring).

    Args:
        student (nn.Module): The built student.
        teachers (nn.ModuleDict): The built, frozen teachers by name.
        entries (dict): Each teacher's settings (:func:`.teachers.teacher_entries`).
        cfgs (dict): The Distiller's arguments of :data:`WIRING_KEYS`.
        stage_cfgs (dict): ``{stage class name: {name: options}}`` in running order
            (:func:`.stages.stage_configs`).
        weighting (dict, optional): The weighting's config; None: ``FixedWeighting``.
        recipes (list[dict], optional): The recipes (single-teacher form only).
        input_size (int | tuple, optional): The recipes' probe size.
        model_cfgs (dict, optional): ``{'student' / teacher name: (model cfg, source
            Config)}``, where the probe looks for the training size.
    """
    cfgs = {key: cfgs.get(key) for key in WIRING_KEYS}
    stage_cfgs = dict(stage_cfgs)
    teacher_recorders = {name: entry['recorders'] for name, entry in entries.items()}
    recipe_table = recipe_explicit_config = None
    if recipes:  # the single-teacher form only (checked by the Distiller)
        (student_cfg, student_source), (teacher_cfg, teacher_source) = (
            model_cfgs['student'], model_cfgs[DEFAULT_TEACHER])
        size, origin = choose_input_size(input_size, [
            ('student', student_source, student_cfg), ('teacher', teacher_source, teacher_cfg)])
        expansion = expand_recipes(recipes, student, teachers[DEFAULT_TEACHER], dict(
            cfgs, teacher_recorders=teacher_recorders[DEFAULT_TEACHER],
            teacher_replays=stage_cfgs['TeacherReplays']), size, origin)
        cfgs.update({key: getattr(expansion, key) for key in WIRING_KEYS})
        teacher_recorders[DEFAULT_TEACHER] = expansion.teacher_recorders
        stage_cfgs['TeacherReplays'] = expansion.teacher_replays or None
        recipe_table, recipe_explicit_config = expansion.table(), expansion.explicit_config()
        log_expansion(expansion)
    # Stages exist in the single-teacher form only (checked by the Distiller): with several
    # teachers, each stage is empty.
    sole_teacher = teachers[DEFAULT_TEACHER] if DEFAULT_TEACHER in teachers else None
    stages = {name: build_stage(name, stage_cfg, student, sole_teacher)
              for name, stage_cfg in stage_cfgs.items()}
    recorder_cfgs = {side: with_stage_recorders(stages.values(), side, side_cfgs) for side,
                     side_cfgs in dict(student=cfgs['student_recorders'],
                                       **teacher_recorders).items()}
    recorders = {side: RecorderManager(side_cfgs) for side, side_cfgs in recorder_cfgs.items()}
    recorders['student'].attach(student, 'student')
    for name, model in teachers.items():
        recorders[name].attach(model, teacher_role(name))
    connectors = build_all(cfgs['connectors'], BaseConnector, 'Connector',
                           'mmkd.models.connectors.BaseConnector')
    distill_losses = build_all(cfgs['distill_losses'], BaseDistillLoss, 'Distill loss',
                               'mmkd.models.losses.BaseDistillLoss')
    loss_inputs = LossInputs(cfgs['loss_forward_mappings'], distill_losses, recorders,
                             connectors, {name: stage.sides for stage in stages.values()
                                          for name in stage.names})
    for stage in stages.values():
        stage.bind(loss_inputs)
    task_gradients = TaskGradients(loss_inputs.mappings, distill_losses, recorders,
                                   loss_inputs.side_of)
    check_num_classes(distill_losses, student, teachers)
    built_weighting = build_component(weighting or dict(type='FixedWeighting'))
    if not isinstance(built_weighting, BaseWeighting):
        raise TypeError(f'weighting built a {type(built_weighting).__name__}; use '
                        'FixedWeighting, UncertaintyWeighting or GradientSimilarityWeighting.')
    built_weighting.bind(list(distill_losses), student)
    specs = ([spec for mapping in loss_inputs.mappings.values() for spec in mapping.values()]
             + [spec for stage in stages.values() for spec in stage.reads()])
    forward_modes, runners = {}, {}
    for name, model in teachers.items():
        entry = entries[name]
        forward_modes[name] = choose_forward_mode(entry['forward_mode'], name, model,
                                                  recorders[name], task_gradients.needed(name))
        reads = [spec for spec in specs
                 if 'from_data' not in spec and loss_inputs.side_of(spec) == name]
        runners[name] = TeacherRunner(
            model, recorders[name], entry['precision'], entry['channels_last'],
            needed_records(reads, recorders[name].recorders), entry['early_stop'],
            entry['compile'], entry['cast_weights'])
    return Wiring(recorders, connectors, distill_losses, loss_inputs, task_gradients, stages,
                  built_weighting, forward_modes, runners, recipe_table, recipe_explicit_config)


def check_wiring_arguments(several_teachers: bool, recipes: Optional[List[dict]],
                           stage_arguments: Dict[str, Optional[dict]], input_size) -> None:
    """Before any model is built: a ValueError for recipes or stages (``stage_arguments``,
    the Distiller's stage arguments by name) with several teachers, and for an
    ``input_size`` without recipes."""
    if several_teachers:
        one_teacher_only = [key for key, value in (('recipes', recipes),
                                                   *stage_arguments.items()) if value]
        if one_teacher_only:
            raise ValueError(f'{one_teacher_only} work with the single-teacher form '
                             '(teacher=...) only; with teachers=..., write the wiring out '
                             '(recorders in each teacher entry, teacher=<name> in the '
                             'loss_forward_mappings specs).')
    if input_size is not None and not recipes:
        raise ValueError('input_size sets the size of the recipes\' probe only, and this '
                         'config has no recipes: remove input_size.')


def with_stage_recorders(stages, side: str,
                         recorders: Optional[Dict[str, dict]]) -> Dict[str, dict]:
    """``recorders`` (the config's, of ``side``) plus the recorders the stages add on
    ``side``. A stage's name may not be a recorder's name on a side that reads the stage's
    outputs, nor another stage's name; a recorder a stage adds may not take a name in use."""
    explicit = set(recorders or {})
    merged, taken = dict(recorders or {}), set()
    for stage in filter(None, stages):  # (with several teachers, every stage is empty)
        added, names = stage.recorders(side), set(stage.names)
        if side in stage.sides:
            for name in stage.names:
                if name in explicit:
                    raise KeyError(f'{stage.argument}[{name!r}] has the name of a '
                                   f'{side_name(side)} recorder; give it its own name.')
        clash = sorted(((taken | explicit) & set(added)) | (taken & names))
        if clash:
            raise KeyError(f'{stage.argument} use the names {sorted(names)} and their recorders '
                           f'{sorted(added)}; {clash} is also a {side_name(side)} recorder or '
                           "another stage's name or recorder: rename one.")
        taken |= set(added) | names
        merged.update(added)
    return merged


def build_all(cfgs: Optional[Dict[str, dict]], base: type, kind: str,
              base_name: str) -> nn.ModuleDict:
    """``{name: built module}``, each checked to subclass ``base``."""
    built = nn.ModuleDict({name: build_component(cfg) for name, cfg in (cfgs or {}).items()})
    for name, module in built.items():
        if not isinstance(module, base):
            raise TypeError(f'{kind} {name!r} built a {type(module).__name__}; '
                            f'{kind.lower()}s subclass {base_name}.')
    return built


def choose_forward_mode(mode: str, name: str, teacher: nn.Module, recorders: RecorderManager,
                        needs_grad: bool) -> str:
    """Teacher ``name``'s forward mode: ``'loss'`` for task-loss gradients, the configured one,
    or for ``'auto'``, ``'extract_feat'`` when every recorder sits in :data:`FEATURE_MODULES`
    (else ``'tensor'``)."""
    if mode not in TEACHER_FORWARD_MODES:
        raise ValueError(f'{setting_name(name, "forward_mode")} must be one of '
                         f'{TEACHER_FORWARD_MODES}, got {mode!r}.')
    if needs_grad:
        if mode not in ('auto', 'loss'):
            raise ValueError(f"teacher_forward_mode={mode!r} cannot give teacher gradients: "
                             "a loss maps gradient=True from a teacher recorder, which needs "
                             "teacher_forward_mode='loss' (or 'auto').")
        return 'loss'
    if mode != 'auto':
        return mode
    if not hasattr(teacher, 'extract_feat'):
        return 'tensor'
    for recorder in recorders:
        source = (recorder.module_name if isinstance(recorder, MethodOutputsRecorder)
                  else recorder.source)
        if source.split('.')[0] not in FEATURE_MODULES:
            return 'tensor'
    return 'extract_feat'


def check_num_classes(distill_losses: nn.ModuleDict, student: nn.Module,
                      teachers: nn.ModuleDict) -> None:
    """A ValueError when a loss compares class scores of models with different classes."""
    needs_equal = [n for n, m in distill_losses.items() if m.requires_equal_num_classes]
    if not needs_equal:
        return
    n_student = get_num_classes(student)
    for name, teacher in teachers.items():
        n_teacher = get_num_classes(teacher)
        if n_student is not None and n_teacher is not None and n_student != n_teacher:
            raise ValueError(f'Distill losses {needs_equal} compare class scores, but the '
                             f'student predicts {n_student} classes and the '
                             f'{side_name(name)} {n_teacher}. Use a teacher trained on '
                             'the same classes.')
