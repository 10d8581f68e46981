"""Distillation stages: whatever runs after the student's forward and feeds the losses.

A step of the :class:`~mmkd.models.distillers.Distiller` is: the teachers' forwards, the
student's forward, then every stage in order, then the losses. A stage reads this step's
records (and, through loss-input specs, the batch and the task-loss gradients), runs
something, and keeps its outputs under its names; a loss-input spec whose ``recorder`` is one
of those names reads that output as if it were a recorder of the stage's :attr:`sides
<DistillStage.sides>` (see :mod:`.loss_inputs`). After the losses, every stage is reset.

Three stages ship with mmkd, each configured by a Distiller argument of its own:

- :class:`~mmkd.models.distillers.teacher_replays.TeacherReplays` (``teacher_replays``): a
  teacher method run again under ``no_grad`` on recorded data;
- :class:`~mmkd.models.distillers.cross_heads.CrossHeads` (``cross_heads``, CrossKD): the
  teacher's dense head run with gradient on the student's head features;
- :class:`~mmkd.models.distillers.distill_points.DistillPoints` (``distill_points``, KD-DETR):
  one set of queries through both DETR decoders.

Any other is registered in :data:`STAGES` and configured by the Distiller's ``stages``
argument, ``stages=dict(MyStage=dict(name=dict(...)))`` (see
docs/en/advanced_guides/new_stage.md). The Distiller never names a stage: the wiring
(:mod:`.wiring`) builds them, adds the recorders they ask for and tells the loss inputs their
names; the step runs and resets them one after the other.
"""
import contextlib
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Dict, List, Optional, Tuple

from mmengine.registry import Registry
from torch import nn

from .teacher_runner import device_type_of
from .teachers import DEFAULT_TEACHER

#: Stage classes by class name (the keys of the Distiller's ``stages`` argument).
STAGES = Registry('distill stage')


@dataclass
class StageStep:
    """What a stage receives at each step.

    Args:
        recorders (dict): ``{'student': RecorderManager, 'teacher': RecorderManager}``, holding
            this step's records.
        batch (dict): ``inputs`` and ``data_samples`` as the student received them.
        resolve (callable): ``resolve(spec)``, the value of a loss-input spec (recorded data,
            the batch, a task-loss gradient; :meth:`.LossInputs.resolve`).
        teacher_contexts (dict): ``{teacher name: callable(device_type) -> context}``, each
            teacher's precision (:meth:`.TeacherRunner.precision_context`).
    """

    recorders: Dict[str, object]
    batch: dict
    resolve: Callable[[dict], object]
    teacher_contexts: Dict[str, Callable]

    @property
    def device_type(self) -> str:
        return device_type_of(self.batch['inputs'])

    def teacher_precision(self, teacher: str = DEFAULT_TEACHER):
        """The context that runs ``teacher``'s computations in its own precision."""
        context = self.teacher_contexts.get(teacher)
        return contextlib.nullcontext() if context is None else context(self.device_type)


class DistillStage(metaclass=ABCMeta):
    """Runs after the student's forward; its outputs are read by the losses by name.

    Every stage is built from ``{name: options}`` (one entry per output) and the two models,
    in the single-teacher form only; the wiring then asks it for the recorders it needs
    (:meth:`recorders`), checks its names, tells the loss inputs where its outputs are read
    (:attr:`sides`), lets it check its specs once the loss inputs exist (:meth:`bind`) and
    asks it which teacher records it reads (:meth:`reads`, for the teacher's early stop). At
    every step the Distiller calls :meth:`run`, then, after the losses, :meth:`reset`.

    Args:
        cfgs (dict, optional): ``{name: options}``; None or empty: a stage that does nothing.
        student (nn.Module): The student model.
        teacher (nn.Module, optional): The (single) teacher model, frozen; None with several
            teachers (the stage then has no entries).

    Example:
        >>> @STAGES.register_module()
        ... class Doubled(DistillStage):
        ...     '''A recorded student tensor, times two.'''
        ...     sides = ('student', )
        ...     def run(self, step):
        ...         for name, cfg in self.cfgs.items():
        ...             self.outputs[name] = 2 * step.resolve(cfg['spec'])
        >>> stage = Doubled(dict(twice=dict(spec=dict(from_data='inputs'))), None, None)
        >>> stage.names, stage.argument
        (['twice'], "stages['Doubled']")
        >>> stage.run(StageStep({}, dict(inputs=3), lambda spec: 3, {}))
        >>> stage.outputs
        {'twice': 6}
        >>> stage.reset(); stage.outputs
        {}
        >>> _ = STAGES.module_dict.pop('Doubled')  # (keep the registry clean)
    """

    #: The Distiller argument that configures this stage, as errors name it; a stage without
    #: an argument of its own is configured as ``stages['<class name>']``.
    argument: ClassVar[str] = ''
    #: Where loss-input specs read the outputs by name: ``'student'`` and / or ``'teacher'``.
    sides: ClassVar[Tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get('argument'):
            cls.argument = f'stages[{cls.__name__!r}]'

    def __init__(self, cfgs: Optional[Dict[str, dict]], student: nn.Module,
                 teacher: Optional[nn.Module]):
        self.cfgs: Dict[str, dict] = dict(cfgs or {})
        #: This step's outputs by name (empty between steps).
        self.outputs: Dict[str, object] = {}

    @property
    def names(self) -> List[str]:
        """The names its outputs are read by (each must differ from the recorders' names)."""
        return list(self.cfgs)

    def __bool__(self) -> bool:
        return bool(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def recorders(self, side: str) -> Dict[str, dict]:
        """``{recorder name: recorder cfg}`` to add on ``side`` (``'student'`` or
        ``'teacher'``). Defaults to none."""
        return {}

    def bind(self, loss_inputs) -> None:
        """Check what depends on the wiring (the specs it reads) once the loss inputs
        (:class:`.LossInputs`) exist. Defaults to nothing."""

    def reads(self) -> List[dict]:
        """Loss-input specs of the recorded data it reads (the teacher's early stop waits for
        the teacher's). Defaults to none."""
        return []

    @abstractmethod
    def run(self, step: StageStep) -> None:
        """Compute this step's outputs into :attr:`outputs` (called only when the stage has
        entries, after the student's forward)."""

    def reset(self) -> None:
        """Forget this step's outputs (after the losses, also when a step fails)."""
        self.outputs.clear()


def stage_configs(stages: Optional[Dict[str, dict]], **arguments) -> Dict[str, dict]:
    """``{stage class name: {name: options}}``, in running order, from the Distiller's
    arguments of the stages that have one (``teacher_replays=...``, in the order given) and
    its ``stages`` argument.

    Example:
        >>> from mmkd.models.distillers import wiring  # registers the stages mmkd ships
        >>> stage_configs(dict(Mine=dict(a=dict())), cross_heads=dict(x=dict()),
        ...               distill_points=None)
        {'CrossHeads': {'x': {}}, 'DistillPoints': None, 'Mine': {'a': {}}}
    """
    by_argument = {cls.argument: name for name, cls in STAGES.module_dict.items()}
    cfgs = {}
    for argument, value in arguments.items():
        if argument not in by_argument:
            raise KeyError(f'No distillation stage is configured by {argument!r}; the stages '
                           f'with an argument of their own: {sorted(by_argument)}.')
        cfgs[by_argument[argument]] = value
    for name, value in (stages or {}).items():
        if name in cfgs:
            raise KeyError(f'stages[{name!r}] is configured by the Distiller argument '
                           f'{STAGES.get(name).argument!r}: use that one.')
        cfgs[name] = value
    return cfgs


def build_stage(name: str, cfgs: Optional[Dict[str, dict]], student: nn.Module,
                teacher: Optional[nn.Module]) -> DistillStage:
    """The stage class ``name`` of :data:`STAGES`, built on ``cfgs`` and the models."""
    cls = STAGES.get(name)
    if cls is None:
        raise KeyError(f'{name} is not in the distill stage registry '
                       f'(mmkd.models.distillers.stages.STAGES: {sorted(STAGES.module_dict)}). '
                       'Please check that it is spelled as its class and that the module '
                       'registering it is imported (custom_imports).')
    if cfgs and not isinstance(cfgs, dict):
        raise TypeError(f'{cls.argument} must be a dict {{name: options}}, got {cfgs!r}.')
    return cls(cfgs, student, teacher)
