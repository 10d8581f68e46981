"""Recipes expanded into the explicit wiring, after probing both built models once.

:func:`expand_recipes` turns the Distiller's ``recipes`` (:mod:`.recipes`) into the five
explicit dicts it takes (``student_recorders``, ``teacher_recorders``, ``connectors``,
``distill_losses``, ``loss_forward_mappings``), from the shapes :mod:`.probe` records:

* **recorders**: ``fpn`` (``ModuleOutputsRecorder`` on ``neck``), ``backbone`` (on
  ``backbone``), ``logits`` (``decode_head.conv_seg``; per model, the classifier of a
  cascade's last per-pixel head or a mask-classification head's forward turned into class
  logits: :mod:`.decode_heads`), ``aux_logits`` (the auxiliary head's ``conv_seg``), ``feat``
  (the input of the ``conv_seg`` that ``logits`` reads, ``ModuleInputsRecorder``, data_idx
  0), ``cls`` (``MethodOutputsRecorder`` on ``bbox_head.forward``)
  and the student's ``targets`` (``bbox_head.get_targets``): the names the shipped configs
  use, so a recipe and the written-out config build the same module tree;
* **neck levels are paired by stride** (input size / level size, each side at its own padded
  input): student level i goes with the teacher level of the nearest stride within a factor
  of 2^0.25; student levels without one, and teacher levels left over, are dropped and
  reported; ``levels`` then picks student levels (the method's published default, e.g. 0-3
  for PKD, keeps those of them that are paired). **Backbone stages** (``on='backbone'``, the
  default of a recipe without ``on`` that would read the neck when the student or the
  teacher has none) are paired, picked and named (``stage<i>``) the same way;
* **connectors**: a ``ConvConnector(Cs, Ct)`` where channels differ and the loss needs equal
  channels, a ``ResizeConnector()`` where sizes differ and the loss needs equal sizes (both on
  the student side, conv first); losses that adapt channels themselves (MGD, FGD) get
  ``student_channels`` / ``teacher_channels`` instead, losses that resize themselves (PKD,
  PCKA) or take any shape (CKA on features) get none;
* **losses** ``loss_<name>_fpn<i>`` (i the student level), ``loss_<name>_stage<i>``,
  ``loss_<name>_head``,
  ``loss_<name>_logits``, ``loss_<name>_cls``, ``loss_<name>_roi``, with the method's
  published setting (:data:`.recipes.RECIPES`), and what else it reads mapped: labels (the
  place's), GT boxes (``data_samples``, on detectors), task-loss gradients
  (``gradient=True``); per pair the stride and name where the loss takes them; wrapped in
  ``SignificanceWeightedLoss`` for ``selfreg``;
* **RoI class scores** (``roi_cls_logits``, two-stage detectors): no probe (both heads give
  num_classes + 1 scores per RoI, checked); the student's RoI head is recorded and the
  teacher's replayed on the student's RoIs (``teacher_replays``, :data:`.recipes.ROI_REPLAY`).

Recipes add to the explicit dicts (and ``teacher_replays``), never replace: a recorder or
replay the config already defines alike is shared; any other name clash is an error. The
pairing table goes to the build log (``print_log``, logger ``'current'``) and to
``Distiller.recipe_table``, the wiring as config text to ``Distiller.recipe_explicit_config``.
"""
import copy
import inspect
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log
from torch import Tensor, nn

from mmkd.registry import MODELS
from .decode_heads import aux_logits_recorder, seg_feat_recorder, seg_logits_recorder
from .model_config import get_num_classes
from .probe import padded_size, probe, shape_of
from .recipes import PLACES, ROI_REPLAY, TARGETS, Place, Recipe, parse_recipe

#: The places whose recorded levels are paired by stride, and what their levels are called.
LEVEL_PLACES = {'neck': 'neck levels', 'backbone': 'backbone stages'}

#: The Distiller's arguments an expansion returns (and ``teacher_replays``).
WIRING = ('student_recorders', 'teacher_recorders', 'connectors', 'distill_losses',
          'loss_forward_mappings')
#: Two levels pair when their strides differ by less than this factor (log2 distance 0.25):
#: one stride's rounding (a 7-cell level of an 800 px side) still pairs, the next octave not.
STRIDE_TOLERANCE_LOG2 = 0.25

# ---------------------------------------------------------------------- stride pairing
def level_stride(input_size: Sequence[int], level_size: Sequence[int]) -> float:
    """Input size / level size, the geometric mean of both sides' ratios."""
    return math.sqrt(input_size[0] / level_size[0] * input_size[1] / level_size[1])


def pair_levels(student_sizes: Sequence[Sequence[int]], teacher_sizes: Sequence[Sequence[int]],
                student_input: Sequence[int], teacher_input: Sequence[int]
                ) -> Tuple[List[Tuple[int, int]], List[int], List[int]]:
    """Pair student and teacher levels of equal stride.

    Args:
        student_sizes / teacher_sizes: (H, W) of each level.
        student_input / teacher_input: (H, W) of each side's input image.

    Returns:
        ``(pairs, unpaired student levels, unpaired teacher levels)``; ``pairs`` lists
        ``(student level, teacher level)`` in student order. Each student level takes the
        free teacher level of the nearest stride, if within a factor of 2^0.25.

    Example:
        >>> pair_levels([(16, 16), (8, 8), (4, 4)], [(32, 32), (16, 16), (8, 8)],
        ...             (128, 128), (128, 128))
        ([(0, 1), (1, 2)], [2], [0])
    """
    s_strides = [math.log2(level_stride(student_input, s)) for s in student_sizes]
    t_strides = [math.log2(level_stride(teacher_input, t)) for t in teacher_sizes]
    pairs, taken = [], set()
    for i, s in enumerate(s_strides):
        free = [(abs(s - t), j) for j, t in enumerate(t_strides) if j not in taken]
        if free:
            distance, j = min(free)
            if distance < STRIDE_TOLERANCE_LOG2:
                pairs.append((i, j))
                taken.add(j)
    paired_s = {i for i, _ in pairs}
    return (pairs, [i for i in range(len(s_strides)) if i not in paired_s],
            [j for j in range(len(t_strides)) if j not in taken])


def labels_index(head: nn.Module) -> int:
    """Where the labels are in ``head.get_targets``' outputs: after the anchors for the
    ATSS-style heads (``ATSSHead`` and its subclasses such as TOOD, ``GFLHead`` and its
    subclasses such as LD), first for the others (``AnchorHead``, ``FCOSHead``, ...)."""
    from mmdet.models.dense_heads import ATSSHead, GFLHead
    return 1 if isinstance(head, (ATSSHead, GFLHead)) else 0


def nominal_stride(stride: float) -> Optional[int]:
    """The power of two within the pairing tolerance (a 13x21 level of an 800x1344 input is
    stride 64, not 62.7), else the nearest int if within 5%, else None.

    Example:
        >>> nominal_stride(62.7), nominal_stride(8.0), nominal_stride(12.0), nominal_stride(2.8)
        (64, 8, 12, None)
    """
    octave = round(math.log2(stride))
    if abs(math.log2(stride) - octave) < STRIDE_TOLERANCE_LOG2:
        return 2 ** octave
    return round(stride) if abs(stride - round(stride)) < 0.05 * stride else None


def format_stride(stride: float) -> str:
    """The nominal stride (:func:`nominal_stride`), else the measured value.

    Example:
        >>> format_stride(62.7), format_stride(2.8)
        ('64', '2.8')
    """
    nominal = nominal_stride(stride)
    return f'{stride:.1f}' if nominal is None else str(nominal)


def is_detector(model: nn.Module) -> bool:
    """Whether ``model`` is an mmdet detector (its samples have GT boxes)."""
    from mmdet.models.detectors import BaseDetector
    return isinstance(model, BaseDetector)


# ---------------------------------------------------------------------- expansion
@dataclass
class Expansion:
    """The explicit dicts and the report of :func:`expand_recipes`."""
    student_recorders: dict
    teacher_recorders: dict
    connectors: dict
    distill_losses: dict
    loss_forward_mappings: dict
    teacher_replays: dict = field(default_factory=dict)
    rows: List[Tuple[str, ...]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    input_note: str = ''

    def explicit_config(self) -> str:
        """The expansion as config text (``model = dict(student_recorders=..., ...)``, and
        ``teacher_replays`` where there are any): what to write instead of the recipes for full
        control over the wiring.

        Example:
            >>> text = Expansion({}, {}, {}, dict(loss_a=dict(type='PKDLoss')),
            ...                  dict(loss_a={})).explicit_config()
            >>> print(text)
            model = dict(
                student_recorders=dict(),
                teacher_recorders=dict(),
                connectors=dict(),
                distill_losses=dict(
                    loss_a=dict(type='PKDLoss')),
                loss_forward_mappings=dict(
                    loss_a=dict()))
        """
        parts = []
        for key in WIRING + (('teacher_replays', ) if self.teacher_replays else ()):
            entries = getattr(self, key)
            inner = ''.join(f'\n        {name}={_py(value)},' for name, value in entries.items())
            parts.append(f'    {key}=dict({inner.rstrip(",")})')
        return 'model = dict(\n' + ',\n'.join(parts) + ')'

    def table(self) -> str:
        """The pairing table, one line per loss, then what was dropped and why."""
        header = ('recipe', 'student', 'teacher', 'stride', 'student shape', 'teacher shape',
                  'connector', 'loss', 'weight')
        rows = [header] + self.rows
        widths = [max(len(str(row[c])) for row in rows) for c in range(len(header))]
        lines = ['  '.join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
                 for row in rows]
        lines.insert(1, '  '.join('-' * w for w in widths))
        lines = [f'Recipes expanded (probe input {self.input_note}):'] + lines
        lines += [f'  {note}' for note in self.notes]
        return '\n'.join(lines)


def expand_recipes(recipes: Sequence[dict], student: nn.Module, teacher: nn.Module,
                   explicit: Dict[str, Optional[dict]], input_size: Tuple[int, int],
                   input_origin: str = 'input_size') -> Expansion:
    """Expand ``recipes`` into the Distiller's explicit dicts (see the module docstring).

    Args:
        recipes (list[dict]): The recipes.
        student, teacher (nn.Module): The built models (probed once each).
        explicit (dict): The config's own ``student_recorders``, ``teacher_recorders``,
            ``connectors``, ``distill_losses``, ``loss_forward_mappings`` and
            ``teacher_replays`` (may be None); recipes add to copies of them.
        input_size (tuple): (H, W) of the training images, before each side's padding.
        input_origin (str): Where ``input_size`` comes from, for the log.

    Returns:
        Expansion: the five dicts and the teacher replays, the table rows and notes
        (``.table()``).
    """
    if not isinstance(recipes, (list, tuple)):
        raise TypeError(f"recipes must be a list of dicts such as dict(type='PKD', on='neck'), "
                        f'got {type(recipes).__name__}.')
    parsed = [parse_recipe(i, r) for i, r in enumerate(recipes)]
    out = Expansion(*(dict(copy.deepcopy(explicit.get(k)) or {})
                      for k in WIRING + ('teacher_replays', )))
    models = dict(student=student, teacher=teacher)
    inputs = {side: padded_size(input_size, model) for side, model in models.items()}
    out.input_note = (f'{input_size[0]}x{input_size[1]} from {input_origin}; padded: student '
                      f'{inputs["student"][0]}x{inputs["student"][1]}, teacher '
                      f'{inputs["teacher"][0]}x{inputs["teacher"][1]}')
    for recipe in parsed:
        _choose_default_place(recipe, models, out)
    if any(r.on == 'backbone' for r in parsed):
        _match_backbone_branches(models, out)
    #: ``{place: {side: recorder config}}`` of the probed places, in recipe order
    recorders: Dict[str, Dict[str, dict]] = {}
    for recipe in parsed:
        found = {side: _place_recorder(model, side, PLACES[recipe.on], recipe)
                 for side, model in models.items()}
        _note_sources(recipe.on, {side: read for side, (_, read) in found.items()}, out)
        if PLACES[recipe.on].probe:
            for side, (cfg, _) in found.items():
                recorders.setdefault(recipe.on, {})[side] = cfg
    for on, cfgs in recorders.items():
        name = PLACES[on].recorder
        _add_recorder(out.student_recorders, 'student_recorders', name, cfgs['student'])
        _add_recorder(out.teacher_recorders, 'teacher_recorders', name, cfgs['teacher'])
    if 'dense_cls_logits' in recorders:
        recipe = next(r for r in parsed if r.on == 'dense_cls_logits')
        _check_dense_targets(student, recipe)
        _add_recorder(out.student_recorders, 'student_recorders', *TARGETS)
    run_head = any(PLACES[on].head for on in recorders)
    probed = {side: probe(model, {PLACES[on].recorder: cfgs[side]
                                  for on, cfgs in recorders.items()}, inputs[side],
                          side, run_head) if recorders else {} for side, model in models.items()}
    for recipe in parsed:
        if recipe.on == 'roi_cls_logits':
            _expand_roi_logits(recipe, out, student, teacher)
            continue
        records = {side: probed[side][PLACES[recipe.on].recorder] for side in models}
        if recipe.on in LEVEL_PLACES:
            _expand_levels(recipe, records, inputs, out, student)
        elif recipe.on == 'dense_cls_logits':
            _expand_dense_logits(recipe, records, inputs, out, student)
        else:
            _expand_single(recipe, records, inputs, out, student)
    return out


def _py(value) -> str:
    """Config text of a value: ``dict(a=1)`` for dicts with identifier keys, else repr."""
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            return 'dict(' + ', '.join(f'{k}={_py(v)}' for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{k!r}: {_py(v)}' for k, v in value.items()) + '}'
    if isinstance(value, list):
        return '[' + ', '.join(_py(v) for v in value) + ']'
    if isinstance(value, tuple):
        return '(' + ', '.join(_py(v) for v in value) + (',)' if len(value) == 1 else ')')
    return repr(value)


def log_expansion(expansion: Expansion) -> None:
    print_log(expansion.table(), logger='current')


def _has_module(model: nn.Module, name: str) -> bool:
    try:
        return model.get_submodule(name) is not None
    except AttributeError:
        return False


def _choose_default_place(recipe: Recipe, models: Dict[str, nn.Module], out: Expansion) -> None:
    """A recipe without ``on`` that would read the neck reads the backbone's stages when the
    student or the teacher has no neck (noted in the table)."""
    if recipe.on_given or recipe.on != 'neck':
        return
    without = [f'{side} ({type(model).__name__})' for side, model in models.items()
               if not _has_module(model, 'neck')]
    if not without:
        return
    recipe.on, recipe.setting = 'backbone', recipe.method.setting('backbone')
    out.notes.append(f'{recipe.label}: the {" and the ".join(without)} '
                     f'{"have" if len(without) > 1 else "has"} no neck, so the recipe (no on=) '
                     "reads the backbone's stages, paired by stride as neck levels are "
                     "(on='backbone')")


def _branches(model: nn.Module) -> int:
    """How many copies of the batch a multi-branch backbone (TridentNet's) returns in
    training but not in eval (1 for every other backbone)."""
    backbone = getattr(model, 'backbone', None)
    branches = getattr(backbone, 'num_branch', 1)
    return branches if getattr(backbone, 'test_branch_idx', -1) != -1 else 1


def _match_backbone_branches(models: Dict[str, nn.Module], out: Expansion) -> None:
    """A TridentNet student trains every branch of its backbone (the batch once per dilation,
    along N) and a TridentNet teacher in eval runs one: the frozen teacher's backbone is set to
    run them all (``test_branch_idx=-1``), so its stage outputs are the student's branches in
    the same order; a student with branches and a teacher without them cannot be paired."""
    student, teacher = _branches(models['student']), _branches(models['teacher'])
    if student == 1:
        return
    if teacher != student:
        raise ValueError(
            f'The student ({type(models["student"]).__name__}) trains {student} branches of '
            'its backbone (its stage outputs hold the batch once per branch), which the '
            f'teacher ({type(models["teacher"]).__name__}) does not have: its backbone '
            "stages cannot be paired. Use a teacher with the same branches, or on='neck' / a "
            'head place where the student has one.')
    for module in models['teacher'].backbone.modules():
        if hasattr(module, 'test_branch_idx'):
            module.test_branch_idx = -1
    out.notes.append(f'TridentNet: the student\'s backbone trains {student} branches (the '
                     f'batch {student} times along N): the teacher\'s backbone runs all of '
                     'them too (test_branch_idx=-1), in the same order')


def _place_recorder(model: nn.Module, side: str, place: Place,
                    recipe: Recipe) -> Tuple[dict, Optional[str]]:
    """``(config of model's recorder at the recipe's place, what it reads where that is not
    the place's usual module, else None)``: ``seg_logits`` is resolved per model
    (:func:`.decode_heads.seg_logits_recorder`); a ValueError naming the fix when the model
    has no such place."""
    resolve = dict(seg_logits=seg_logits_recorder, aux_logits=aux_logits_recorder,
                   seg_feat=seg_feat_recorder).get(recipe.on)
    if resolve is not None:
        try:
            return resolve(model, side)
        except ValueError as err:
            _no_place(recipe, str(err))
    if not _has_module(model, place.module):
        top = [n for n, _ in model.named_children()]
        what = {'neck': 'no neck', 'backbone': 'no backbone', 'decode_head.bottleneck': 'no '
                'decode_head.bottleneck (the features of a PSP / UPer / ASPP decode head)',
                'bbox_head': 'no bbox_head (a dense detection head)', 'roi_head': 'no roi_head '
                '(a two-stage detector\'s RoI head)'}[place.module]
        _no_place(recipe, f'the {side} ({type(model).__name__}) has {what}; its top-level '
                  f'modules: {top}.')
    return copy.deepcopy(place.cfg), None


def _note_sources(on: str, reads: Dict[str, Optional[str]], out: Expansion) -> None:
    """Note in the table what each model is read at, where not the place's usual module."""
    if reads['student'] == reads['teacher']:
        reads = {"the student's and the teacher's": reads['student']}
    else:
        reads = {f"the {side}'s": read for side, read in reads.items()}
    for whose, read in reads.items():
        note = f"on={on!r}, {whose} {PLACES[on].recorder}: {read}"
        if read and note not in out.notes:
            out.notes.append(note)


def _no_place(recipe: Recipe, problem: str) -> None:
    """Raise the ValueError of a recipe whose place a model lacks, with the places to use."""
    fix = ("Read its backbone's stages with on='backbone' (paired by stride as neck levels "
           "are), or record" if recipe.on == 'neck' else 'Or record')
    others = [p for p in recipe.method.places if p != recipe.on]
    raise ValueError(
        f'recipes[{recipe.index}] ({recipe.label}): {problem} '
        + (f'Recipe {recipe.type} also reads {others}. ' if others else '')
        + f'{fix} another module with the explicit form (student_recorders, '
        'teacher_recorders, distill_losses, loss_forward_mappings).') from None


def _add_recorder(recorders: dict, key: str, name: str, cfg: dict) -> None:
    """Add a recorder (or a teacher replay) the recipes need; one defined alike is shared."""
    if name in recorders:
        if _plain(recorders[name]) != _plain(cfg):
            raise ValueError(f'Recipes define {key}[{name!r}] = {cfg}, but the config defines '
                             f'{key}[{name!r}] = {_plain(recorders[name])}: rename that one in '
                             'the explicit part of the config.')
        return
    recorders[name] = copy.deepcopy(cfg)


def _plain(value):
    """Dicts and lists of a config (mmengine's ConfigDict, tuples) as plain ones."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _add(out: Expansion, recipe: Recipe, key: str, name: str, value: dict) -> None:
    target = getattr(out, key)
    if name in target:
        raise ValueError(f'recipes[{recipe.index}] ({recipe.label}) defines {key}[{name!r}], '
                         'which the config (or an earlier recipe) already defines: give the '
                         f"recipe another name=..., e.g. name='{recipe.name}2'.")
    target[name] = value


def _shape_text(shape) -> str:
    return 'x'.join(str(v) for v in shape)


def _wire(recipe: Recipe, out: Expansion, suffix: str, s_spec: dict, t_spec: dict,
          s_shape, t_shape, student: nn.Module,
          stride: Optional[float] = None) -> Tuple[str, str]:
    """Add the connectors and the loss of one pair (shapes None: class scores, compared as
    they are); return (connector text, loss name)."""
    setting, loss = recipe.setting, copy.deepcopy(recipe.loss)
    base = f'{recipe.name}_{suffix}'
    raw_S = copy.deepcopy(s_spec)  # the student's tensor before any connector
    connectors = []
    (cs, *hw_s), (ct, *hw_t) = s_shape or (None, ), t_shape or (None, )
    if cs != ct:
        if setting.channels == 'connector':
            connectors.append((f'{base}_conv', dict(type='ConvConnector', in_channels=cs,
                                                    out_channels=ct), f'ConvConnector({cs}->{ct})'))
        elif setting.channels == 'equal':
            raise ValueError(f'recipes[{recipe.index}] ({recipe.label}) compares class scores, '
                             f'but the student has {cs} channels and the teacher {ct} there: '
                             'use a teacher trained on the same classes, or a feature recipe '
                             "(on='neck').")
    if setting.channels == 'loss':
        loss.update(student_channels=cs, teacher_channels=ct)
    if hw_s != hw_t and setting.size == 'connector':
        connectors.append((f'{base}_resize', dict(type='ResizeConnector'), 'ResizeConnector'))
    for name, cfg, _ in connectors:
        _add(out, recipe, 'connectors', name, cfg)
    if connectors:
        names = [name for name, _, _ in connectors]
        s_spec['connector'] = names[0] if len(names) == 1 else names
    detector = is_detector(student)
    term = setting.box_term
    if term and detector and loss.get(term, {}) is not None:
        # the box term sees preds_S after the connectors: the teacher's channels if converted
        loss[term] = dict(student_channels=ct if connectors else cs, teacher_channels=ct,
                          **(loss.get(term) or {}))
    if 'stride' in setting.pair_args:
        loss['stride'] = nominal_stride(stride) or stride
    if 'name' in setting.pair_args:
        loss['name'] = suffix
    if 'num_classes' in setting.pair_args:
        loss['num_classes'] = get_num_classes(student)
    loss_name = f'loss_{base}'
    mapping = dict(preds_S=s_spec, preds_T=t_spec)
    if 'data_samples' in setting.inputs or ('boxes' in setting.inputs and detector):
        mapping['data_samples'] = dict(from_data='data_samples')
    if 'gradients' in setting.inputs:
        mapping.update(grads_S=dict(raw_S, gradient=True), grads_T=dict(t_spec, gradient=True))
        if connectors:
            mapping['feats_S'] = raw_S
    if 'labels' in setting.inputs:
        mapping['labels'] = _labels_spec(recipe, student)
    if recipe.selfreg:
        loss = dict(type='SignificanceWeightedLoss', name=loss_name, **recipe.selfreg,
                    **({'num_classes': loss['num_classes']} if 'num_classes' in loss else {}),
                    loss=loss)
        mapping['data_samples'] = dict(from_data='data_samples')
        if PLACES[recipe.on].class_maps:  # the student's own class logits regulate it
            mapping['student_logits'] = raw_S
    _add(out, recipe, 'distill_losses', loss_name, loss)
    _add(out, recipe, 'loss_forward_mappings', loss_name, mapping)
    text = ' + '.join(t for _, _, t in connectors) or '-'
    if hw_s != hw_t and setting.size == 'loss':
        text = (text + ' (loss resizes)') if connectors else '- (loss resizes)'
    return text, loss_name


def _labels_spec(recipe: Recipe, student: nn.Module) -> dict:
    """The spec of the place's labels (the dense heads' index: :func:`labels_index`)."""
    spec = copy.deepcopy(PLACES[recipe.on].labels)
    if recipe.on == 'dense_cls_logits':
        spec['data_idx'] = labels_index(student.bbox_head)
    return spec


def _weight(recipe: Recipe) -> str:
    weight = recipe.loss_weight
    return '-' if weight is None else f'{weight:g}'


def _levels_of(record, side: str, recipe: Recipe) -> Tuple[List[Tensor], list]:
    """The (N, C, H, W) maps of a neck's or backbone's output and the ``data_idx`` of each:
    its index, or ``[index, 0]`` for a level that is a ``(map, class token)`` pair (mmseg's
    ViT with ``output_cls_token``, as DPT builds it)."""
    levels = list(record) if isinstance(record, (list, tuple)) else [record]
    maps, paths = [], []
    for i, level in enumerate(levels):
        if isinstance(level, (list, tuple)) and level and shape_of(level[0]) is not None:
            maps.append(level[0])
            paths.append([i, 0])
        else:
            maps.append(level)
            paths.append(i)
    if not maps or not all(shape_of(t) is not None for t in maps):
        raise ValueError(f'recipes[{recipe.index}] ({recipe.label}): the {side} '
                         f'{PLACES[recipe.on].module} does not return (N, C, H, W) maps (a '
                         'tensor or a list of them); use the explicit form to record another '
                         'module.')
    return maps, paths


def _expand_levels(recipe: Recipe, records: dict, inputs: dict, out: Expansion,
                   student: nn.Module) -> None:
    """Neck levels or backbone stages, paired by stride (one code path for both)."""
    place, noun = PLACES[recipe.on], LEVEL_PLACES[recipe.on]
    s_levels, s_paths = _levels_of(records['student'], 'student', recipe)
    t_levels, t_paths = _levels_of(records['teacher'], 'teacher', recipe)
    s_shapes = [shape_of(t) for t in s_levels]
    t_shapes = [shape_of(t) for t in t_levels]
    pairs, lone_s, lone_t = pair_levels([s[1:] for s in s_shapes], [t[1:] for t in t_shapes],
                                        inputs['student'], inputs['teacher'])
    s_strides = [level_stride(inputs['student'], s[1:]) for s in s_shapes]
    t_strides = [level_stride(inputs['teacher'], t[1:]) for t in t_shapes]
    if not pairs:
        raise ValueError(
            f'recipes[{recipe.index}] ({recipe.label}): no student and teacher {noun} '
            'have the same stride (input size / level size): student strides '
            f'{[format_stride(s) for s in s_strides]}, teacher strides '
            f'{[format_stride(t) for t in t_strides]}. Check input_size, or pair levels of '
            'different strides in the explicit form with a ResizeConnector.')
    label = recipe.label
    n = place.suffix  # the levels' names: fpn0, fpn1 ... / stage0, stage1 ...
    if recipe.levels_given:
        paired = [i for i, _ in pairs]
        wrong = [i for i in recipe.levels if i not in paired]
        if wrong:
            raise ValueError(
                f'recipes[{recipe.index}] ({label}): levels {wrong} are not paired student '
                f'{noun}; the paired ones are {paired} (student strides '
                f'{[format_stride(s) for s in s_strides]}, teacher strides '
                f'{[format_stride(t) for t in t_strides]}).')
    for i in lone_s:
        out.notes.append(f'{label}: student level {n}{i} (stride {format_stride(s_strides[i])},'
                         f' {_shape_text(s_shapes[i])}) has no teacher level of its stride: '
                         'dropped')
    for j in lone_t:
        out.notes.append(f'{label}: teacher level {n}{j} (stride {format_stride(t_strides[j])},'
                         f' {_shape_text(t_shapes[j])}) has no student level of its stride: '
                         'dropped')
    recorder = place.recorder
    for i, j in pairs:
        if recipe.levels is not None and i not in recipe.levels:
            why = 'levels' if recipe.levels_given else f"{recipe.type}'s default levels"
            out.notes.append(f'{label}: student level {n}{i} (stride '
                             f'{format_stride(s_strides[i])}) is not in {why} '
                             f'{tuple(recipe.levels)}: left out')
            continue
        s_spec = dict(from_student=True, recorder=recorder, data_idx=s_paths[i])
        t_spec = dict(from_student=False, recorder=recorder, data_idx=t_paths[j])
        connector, loss_name = _wire(recipe, out, f'{n}{i}', s_spec, t_spec,
                                     s_shapes[i], t_shapes[j], student, s_strides[i])
        out.rows.append((label, f'{n}{i}', f'{n}{j}', format_stride(s_strides[i]),
                         _shape_text(s_shapes[i]), _shape_text(t_shapes[j]), connector,
                         f'{loss_name} ({recipe.loss["type"]})', _weight(recipe)))


def _expand_single(recipe: Recipe, records: dict, inputs: dict, out: Expansion,
                   student: nn.Module) -> None:
    place = PLACES[recipe.on]
    shapes, where = {}, ({} if place.data_idx is None else dict(data_idx=place.data_idx))
    for side in ('student', 'teacher'):
        record = records[side]
        if where and isinstance(record, (list, tuple)) and len(record) > place.data_idx:
            record = record[place.data_idx]  # a module's inputs: the first
        shapes[side] = shape_of(record)
        if shapes[side] is None:
            raise ValueError(f'recipes[{recipe.index}] ({recipe.label}): the {side}\'s '
                             f'{place.module} does not {"take" if where else "return"} one '
                             '(N, C, H, W) map.')
    s_spec = dict(from_student=True, recorder=place.recorder, **where)
    t_spec = dict(from_student=False, recorder=place.recorder, **where)
    strides = [level_stride(inputs[side], shapes[side][1:]) for side in ('student', 'teacher')]
    connector, loss_name = _wire(recipe, out, place.suffix, s_spec, t_spec, shapes['student'],
                                 shapes['teacher'], student, strides[0])
    stride = ' / '.join(format_stride(s) for s in strides)
    out.rows.append((recipe.label, place.recorder, place.recorder, stride,
                     _shape_text(shapes['student']), _shape_text(shapes['teacher']), connector,
                     f'{loss_name} ({recipe.loss["type"]})', _weight(recipe)))


def _expand_dense_logits(recipe: Recipe, records: dict, inputs: dict, out: Expansion,
                         student: nn.Module) -> None:
    place = PLACES[recipe.on]
    maps = {}
    for side in ('student', 'teacher'):
        record = records[side]
        maps[side] = (list(record[0]) if isinstance(record, (list, tuple)) and record
                      and isinstance(record[0], (list, tuple)) else None)
        if not maps[side] or not all(shape_of(t) is not None for t in maps[side]):
            raise ValueError(f'recipes[{recipe.index}] ({recipe.label}): the {side}\'s '
                             'bbox_head.forward does not return per-level class maps first '
                             '(a dense head such as RetinaHead, FCOSHead, GFLHead).')
    s_shapes = [shape_of(t) for t in maps['student']]
    t_shapes = [shape_of(t) for t in maps['teacher']]
    if s_shapes != t_shapes:
        raise ValueError(
            f'recipes[{recipe.index}] ({recipe.label}) compares the dense heads\' class maps '
            f'location by location, so they must have the same levels, anchors and classes; '
            f'got student {[_shape_text(s) for s in s_shapes]} and teacher '
            f'{[_shape_text(t) for t in t_shapes]}. Use a feature recipe (on=\'neck\') for '
            'this pair.')
    recipe.loss.setdefault('num_classes', get_num_classes(student))
    s_spec = dict(from_student=True, recorder=place.recorder, data_idx=0)
    t_spec = dict(from_student=False, recorder=place.recorder, data_idx=0)
    connector, loss_name = _wire(recipe, out, place.suffix, s_spec, t_spec, s_shapes[0],
                                 t_shapes[0], student)
    strides = ','.join(format_stride(level_stride(inputs['student'], s[1:])) for s in s_shapes)
    out.rows.append((recipe.label, f'cls ({len(s_shapes)} levels)', f'cls ({len(t_shapes)})',
                     strides, _shape_text(s_shapes[0]) + (', ...' if len(s_shapes) > 1 else ''),
                     _shape_text(t_shapes[0]) + (', ...' if len(t_shapes) > 1 else ''),
                     connector, f'{loss_name} ({recipe.loss["type"]})', _weight(recipe)))


def _check_dense_targets(student: nn.Module, recipe: Recipe) -> None:
    """Dense-head logit recipes select locations by the student's assigner labels, which
    heads with ``get_targets`` give (AnchorHead, FCOSHead, ATSSHead, GFLHead ...); YOLOX's and
    RTMDet's heads assign per image inside ``loss_by_feat``."""
    head = student.bbox_head
    if not callable(getattr(head, 'get_targets', None)):
        raise ValueError(
            f'recipes[{recipe.index}] ({recipe.label}) selects the locations to distil by the '
            f"student head's assigner labels (bbox_head.get_targets), which "
            f'{type(head).__name__} does not have (it assigns per image inside its loss): use '
            "a feature recipe (on='neck'), or the explicit form on bbox_head.forward.")


def _check_single_roi_head(model: nn.Module, side: str, recipe: Recipe) -> None:
    """RoI logit recipes replay one RoI head (``roi_head._bbox_forward`` with one
    ``bbox_head``): a cascade's stages (Cascade R-CNN, HTC) or a sparse head (QueryInst) are
    not one."""
    roi_head = model.roi_head
    bbox_head = getattr(roi_head, 'bbox_head', None)
    if isinstance(bbox_head, nn.ModuleList) or not isinstance(bbox_head, nn.Module) or \
            getattr(roi_head, 'num_stages', 1) != 1:
        raise ValueError(
            f'recipes[{recipe.index}] ({recipe.label}) replays one RoI head on the student\'s '
            f'RoIs, but the {side}\'s {type(roi_head).__name__} runs '
            f"{getattr(roi_head, 'num_stages', 'several')} stages: use a feature recipe "
            "(on='neck'), or the explicit form on one stage (e.g. roi_head.bbox_head.2).")


def _expand_roi_logits(recipe: Recipe, out: Expansion, student: nn.Module,
                       teacher: nn.Module) -> None:
    for side, model in (('student', student), ('teacher', teacher)):
        _check_single_roi_head(model, side, recipe)
    classes = {side: get_num_classes(model) for side, model in (('student', student),
                                                                ('teacher', teacher))}
    if classes['student'] != classes['teacher']:
        raise ValueError(f'recipes[{recipe.index}] ({recipe.label}) compares class scores, but '
                         f'the student\'s RoI head has {classes["student"]} classes and the '
                         f'teacher\'s {classes["teacher"]}: use a teacher trained on the same '
                         "classes, or a feature recipe (on='neck').")
    replay = copy.deepcopy(ROI_REPLAY)
    if not getattr(teacher, 'with_neck', True):  # a C4 / Trident teacher: its RoI head reads
        replay['teacher_recorders'] = dict(backbone=PLACES['backbone'].cfg)  # the backbone
        replay['teacher_replays']['roi']['args'][0]['recorder'] = 'backbone'
        # TridentNet: the student's RoIs index its branches' images (the batch once per
        # branch), so the teacher's backbone runs every branch too
        _match_backbone_branches(dict(student=student, teacher=teacher), out)
        out.notes.append(f'{recipe.label}: the teacher has no neck: its RoI head is replayed '
                         'on its backbone\'s output')
    for side in ('student', 'teacher'):
        key = f'{side}_recorders'
        for name, cfg in replay[key].items():
            _add_recorder(getattr(out, key), key, name, cfg)
    for name, cfg in replay['teacher_replays'].items():
        _add_recorder(out.teacher_replays, 'teacher_replays', name, cfg)
    _, loss_name = _wire(recipe, out, PLACES[recipe.on].suffix,
                         copy.deepcopy(ROI_REPLAY['preds_S']),
                         copy.deepcopy(ROI_REPLAY['preds_T']), None, None, student)
    out.rows.append((recipe.label, 'roi_out', 'roi (replayed)', '-',
                     f'RoIs x {classes["student"] + 1}', f'RoIs x {classes["teacher"] + 1}', '-',
                     f'{loss_name} ({recipe.loss["type"]})', _weight(recipe)))
