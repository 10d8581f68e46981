"""What each distillation loss receives: ``loss_forward_mappings`` checked at build, resolved
at every step.

A mapping is ``{loss name: {argument: spec}}``. A spec reads

- a recorder: ``dict(from_student=True, recorder='fpn', record_idx=0, data_idx=0,
  connector='fpn0')`` (on the teacher side, ``teacher='gfl'`` names which of several teachers,
  see :mod:`.teachers`; with one teacher it may be left out; ``connector`` may be a list,
  applied in order; ``gradient=True`` gives
  the gradient of that model's task loss w.r.t. the recorded tensor instead, see
  :mod:`.task_gradients`), or by its name a teacher replay's output (teacher side, see
  :mod:`.teacher_replays`), a cross head's (student side, see :mod:`.cross_heads`) or, on
  either side, the distillation points' predictions of that model (see :mod:`.distill_points`);
- the batch: ``dict(from_data='data_samples')``, ``'inputs'`` or ``'gt_sem_seg'``
  ((N, H, W) segmentation labels).

Arguments that read the teacher end in ``_T``: the losses detach them
(:class:`mmkd.models.losses.BaseDistillLoss`).
"""
from typing import Callable, Dict, List, Optional, Sequence, Union

from torch import Tensor, nn

from ..losses.utils import seg_labels, tensors_in, to_float32
from ..recorders import RecorderManager
from ..recorders.base_recorder import select
from .teachers import DEFAULT_TEACHER

#: Keys a spec may have.
SPEC_KEYS = {'from_student', 'teacher', 'recorder', 'record_idx', 'data_idx', 'connector',
             'from_data', 'gradient'}
DATA_SOURCES = ('data_samples', 'inputs', 'gt_sem_seg')


class PerSide(dict):
    """What a runner gives each side, ``{side: output}``: a spec with that runner's name as its
    recorder reads the output of its own side (the distillation points give the student's
    predictions, with gradient, and the teacher's, under ``no_grad``)."""


def as_list(value) -> List:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class LossInputs:
    """Checks the wiring of every loss at build, and gathers each loss's arguments per step.

    Args:
        mappings (dict): ``loss_forward_mappings``.
        losses (nn.ModuleDict): the distillation losses (:class:`BaseDistillLoss`).
        recorders (dict): ``{'student': RecorderManager, <teacher name>: RecorderManager,
            ...}`` (the single teacher's name is ``'teacher'``).
        connectors (nn.ModuleDict): the connectors.
        replays (dict, optional): ``{name: side or sides}`` of the stages' outputs
            (:mod:`.stages`), read like a recorder of that side: the teacher replays (side: the
            teacher's name), the cross heads (``'student'``) and the distillation points (both
            sides; their output is a :class:`PerSide`). Defaults to None.
    """

    def __init__(self, mappings: Dict[str, dict], losses: nn.ModuleDict,
                 recorders: Dict[str, RecorderManager], connectors: nn.ModuleDict,
                 replays: Optional[Dict[str, Union[str, Sequence[str]]]] = None):
        self.mappings = dict(mappings or {})
        self.recorders = recorders
        self.connectors = connectors
        self.replays = {side: [name for name, sides in (replays or {}).items()
                               if side in ([sides] if isinstance(sides, str) else sides)]
                        for side in recorders}
        teachers = [side for side in recorders if side != 'student']
        #: The teacher a teacher-side spec without ``teacher=`` reads: the only one, if so.
        self.default_teacher = teachers[0] if len(teachers) == 1 else None
        missing = set(losses) - set(self.mappings)
        extra = set(self.mappings) - set(losses)
        if missing or extra:
            raise KeyError(f'distill_losses and loss_forward_mappings must name the same losses; '
                           f'without mapping: {sorted(missing)}, without loss: {sorted(extra)}.')
        for name, loss in losses.items():
            self._check_loss(name, loss, self.mappings[name])

    # ------------------------------------------------------------------ build-time checks
    def _check_loss(self, name: str, loss, mapping: dict) -> None:
        for arg, spec in mapping.items():
            where = f'loss_forward_mappings[{name!r}][{arg!r}]'
            if not loss.accepts(arg):
                raise KeyError(f'{where}: {type(loss).__name__}.forward has no argument '
                               f'{arg!r}; its arguments: {loss.argument_names()}.')
            self.check_spec(where, spec)
            if spec.get('from_student') is False and not arg.endswith('_T'):
                raise KeyError(f"{where} reads the teacher, but losses detach only the "
                               f"arguments ending in '_T' (the teacher's side): name the "
                               'argument e.g. preds_T.')
        unmapped = [p for p in loss.required_arguments() if p not in mapping]
        if unmapped:
            raise KeyError(f'loss_forward_mappings[{name!r}] does not map the required '
                           f'arguments {unmapped} of {type(loss).__name__}.forward.')

    def check_spec(self, where: str, spec, allow_replays: bool = True) -> None:
        """Raise a KeyError / TypeError / ValueError naming the valid choices."""
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
        side = self.side_of(spec, where)
        manager = self.recorders[side]
        replays = self.replays[side] if allow_replays else []
        if spec['recorder'] not in manager and spec['recorder'] not in replays:
            owner = (f'{side}_recorders' if side in ('student', DEFAULT_TEACHER)
                     else f'teachers[{side!r}].recorders')
            raise KeyError(f"{where}: no {side_name(side)} recorder named "
                           f"{spec['recorder']!r}; {owner} defines {sorted(manager.recorders)}"
                           + (' and its stages (teacher_replays, cross_heads, '
                              f'distill_points, stages) give {sorted(replays)}.'
                              if replays else '.'))
        for connector_name in as_list(spec.get('connector')):
            if connector_name not in self.connectors:
                raise KeyError(f'{where}: no connector named {connector_name!r}; connectors '
                               f'defines {sorted(self.connectors)}.')

    def side_of(self, spec: dict, where: str = 'a loss input spec') -> str:
        """Which model a recorder spec reads: ``'student'`` or a teacher's name."""
        if spec['from_student']:
            if 'teacher' in spec:
                raise KeyError(f"{where} reads the student (from_student=True) but names "
                               f"teacher={spec['teacher']!r}: drop one of them.")
            return 'student'
        teachers = sorted(side for side in self.recorders if side != 'student')
        name = spec.get('teacher', self.default_teacher)
        if name is None:
            raise KeyError(f'{where} reads a teacher but does not say which: add teacher=<one '
                           f'of {teachers}>.')
        if name not in teachers:
            raise KeyError(f'{where}: no teacher named {name!r}; the teachers are {teachers}.')
        return name

    # ------------------------------------------------------------------ per step
    def resolve(self, spec: dict, batch: dict, replay_outputs: Dict[str, object],
                gradient_of: Callable):
        """The value a spec names: batch data, recorded data, a teacher replay's or a cross
        head's output (``replay_outputs``, by name), or (``gradient=True``) a recorded tensor's
        task-loss gradient."""
        if 'from_data' in spec:
            return batch_value(batch, spec['from_data'])
        side = self.side_of(spec)
        if spec['recorder'] in self.replays[side] and spec['recorder'] in replay_outputs:
            output = replay_outputs[spec['recorder']]
            if isinstance(output, PerSide):
                output = output[side]
            return select(output, spec.get('data_idx'), f"{side} replay {spec['recorder']!r}")
        manager = self.recorders[side]
        value = manager.get_record_data(spec['recorder'], spec.get('record_idx', 0),
                                        spec.get('data_idx'))
        return gradient_of(value) if spec.get('gradient') else value

    def gather(self, name: str, batch: dict, replay_outputs: Dict[str, object],
               gradient_of: Callable) -> dict:
        """The keyword arguments of loss ``name``, connectors applied (in float32)."""
        mapping = self.mappings[name]
        kwargs = {}
        # Teacher side first, so a student connector can follow the teacher tensor's shape.
        for arg in sorted(mapping, key=lambda a: bool(mapping[a].get('from_student', False))):
            spec = mapping[arg]
            value = self.resolve(spec, batch, replay_outputs, gradient_of)
            if spec.get('connector') is not None:
                target = kwargs.get('preds_T', next(
                    (v for a, v in kwargs.items() if not mapping[a].get('from_student', False)
                     and isinstance(v, Tensor)), None))
                for connector_name in as_list(spec['connector']):
                    value = self.connectors[connector_name](to_float32(value), target)
            kwargs[arg] = value
        return kwargs

    @staticmethod
    def check_shapes(name: str, loss, kwargs: dict) -> None:
        """For losses that need equal shapes: an error naming the connector that fixes it."""
        if not loss.requires_same_shape:
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
        raise ValueError(f'Distill loss {name!r} ({type(loss).__name__}) needs equal '
                         f'shapes, but got preds_S {s} (student) and preds_T {t} (teacher). {hint}')


def side_name(side: str) -> str:
    """``'student'``, ``'teacher'`` (the single teacher), or ``"teacher 'gfl'"``."""
    return side if side in ('student', DEFAULT_TEACHER) else f'teacher {side!r}'


def batch_value(batch: dict, source: str):
    """``inputs`` / ``data_samples`` of the batch, or its (N, H, W) ``gt_sem_seg`` labels."""
    return seg_labels(batch['data_samples']) if source == 'gt_sem_seg' else batch[source]


def sum_loss_values(losses: dict):
    """What mmengine sums into the training loss: the mean of every tensor under a key that
    contains 'loss' (0 when there is none)."""
    return sum(t.mean() for key, value in losses.items() if 'loss' in key
               for t in tensors_in(value))
