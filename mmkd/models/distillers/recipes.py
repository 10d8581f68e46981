"""Recipes: "PKD on the necks" in one line; the known recipe types and their settings.

A recipe is a dict in the Distiller's ``recipes`` list::

    recipes=[dict(type='PKD', on='neck'),                    # the published COCO setting
             dict(type='CWD', on='seg_logits', tau=2.0)]     # a loss argument overridden

with ``type`` (a method of :data:`RECIPES`, case-insensitive), ``on`` (one of
:data:`PLACES`; optional where the method has one place), and optionally ``loss_weight``,
``levels`` (student neck levels, e.g. ``(0, 1, 2)``), ``name`` (the part of the names that
says the method, ``'pkd'`` by default) and any argument of the method's loss (``tau``,
``patch_size`` ...; checked against its signature).

Each method has its published setting per place (:class:`Setting`: the loss and its weight,
the default levels, and whether the loss needs equal channels / sizes or adapts them itself),
taken from the shipped COCO / Cityscapes configs it cites, whose first comments cite the
papers (a test checks that the two agree). :mod:`.expansion` turns checked recipes into the
explicit wiring when the model is built.
"""
import copy
import inspect
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from mmkd.registry import MODELS

#: Keys every recipe may have; the rest are arguments of the method's loss.
RECIPE_KEYS = ('type', 'on', 'loss_weight', 'levels', 'name')


@dataclass(frozen=True)
class Place:
    """Where a recipe reads: the recorder both sides get and what it records."""
    recorder: str
    cfg: dict
    suffix: str
    module: str  # the submodule that must exist on both models
    data_idx: Optional[int] = None
    head: bool = False  # the head must run (teacher 'tensor' forward, probe '_forward')


#: The places a recipe can read (``on=``).
PLACES = {
    'neck': Place('fpn', dict(type='ModuleOutputsRecorder', source='neck'), 'fpn', 'neck'),
    'seg_logits': Place('logits', dict(type='ModuleOutputsRecorder',
                                       source='decode_head.conv_seg'),
                        'logits', 'decode_head.conv_seg', head=True),
    'dense_cls_logits': Place('cls', dict(type='MethodOutputsRecorder', source='bbox_head.forward'),
                              'cls', 'bbox_head', data_idx=0, head=True),
}
#: The student's assigner labels, which dense-head logit distillation selects locations by.
TARGETS = ('targets', dict(type='MethodOutputsRecorder', source='bbox_head.get_targets'))


@dataclass(frozen=True)
class Setting:
    """A method's published setting at one place.

    Args:
        loss (dict): The loss config (type and arguments) before the recipe's overrides.
        channels (str): When channels differ: ``'connector'`` (insert a ConvConnector),
            ``'loss'`` (pass ``student_channels`` / ``teacher_channels``), ``'any'`` (the loss
            takes any), ``'equal'`` (an error: class scores of different classes).
        size (str): When sizes differ: ``'connector'`` (insert a ResizeConnector), ``'loss'``
            (the loss resizes), ``'any'``.
        levels (tuple, optional): Default student neck levels; None: all paired levels.
        source (str): Where the setting comes from.
    """
    loss: dict
    channels: str = 'connector'
    size: str = 'connector'
    levels: Optional[Tuple[int, ...]] = None
    source: str = ''
    data_samples: bool = False


@dataclass(frozen=True)
class Method:
    key: str
    settings: Dict[str, Setting] = field(default_factory=dict)


_COCO = 'configs/distill/{}/{}_fpn_retina-x101_retina-r50_8xb2-2x_coco.py'
_CITYSCAPES = 'configs/distill/{}/{}_logits_pspnet-r101_pspnet-r18_4xb2-80k_cityscapes-512x1024.py'

#: Known recipe types and their published settings (COCO for necks and dense heads,
#: Cityscapes for segmentation logits); the sources are the shipped configs, whose first
#: comments cite the papers.
RECIPES: Dict[str, Method] = {
    'PKD': Method('pkd', {'neck': Setting(
        dict(type='PKDLoss', loss_weight=10.0), size='loss', levels=(0, 1, 2, 3),
        source=_COCO.format('pkd', 'pkd') + ': weight 10 (one-stage; paper 6..10), levels 0-3')}),
    'CWD': Method('cwd', {
        'neck': Setting(dict(type='CWDLoss', loss_weight=10.0, tau=1.0),
                        source=_COCO.format('cwd', 'cwd') + ': weight 10, tau 1, all levels'),
        'seg_logits': Setting(dict(type='CWDLoss', loss_weight=5.0, tau=1.0), channels='equal',
                              source=_CITYSCAPES.format('cwd', 'cwd') + ': weight 5, tau 1')}),
    'FitNet': Method('fitnet', {'neck': Setting(
        dict(type='MSEFeatureLoss', loss_weight=1.0),
        source=_COCO.format('fitnet', 'fitnet') + ': weight 1, all levels')}),
    'MGD': Method('mgd', {'neck': Setting(
        dict(type='MGDLoss', loss_weight=2e-5, lambda_mgd=0.65), channels='loss',
        source=_COCO.format('mgd', 'mgd') + ': weight 2e-5, mask ratio 0.65, all levels '
        '(the paper also clips gradients at 35: optim_wrapper.clip_grad)')}),
    'FGD': Method('fgd', {'neck': Setting(
        dict(type='FGDLoss'), channels='loss', data_samples=True,
        source=_COCO.format('fgd', 'fgd') + ": the loss defaults (the paper's RetinaNet "
        'weights), all levels (the paper also clips gradients at 35)')}),
    'PCKA': Method('pcka', {'neck': Setting(
        dict(type='PCKALoss', loss_weight=10.0, patch_size=16, centered=False), size='loss',
        levels=(0, 1, 2, 3),
        source=_COCO.format('pcka', 'pcka') + ': weight 10, 16-cell patches, intra only, '
        'uncentered, levels 0-3')}),
    'CKA': Method('cka', {
        'neck': Setting(dict(type='CKALoss', loss_weight=10.0, centered=False),
                        channels='any', size='any',
                        source=_COCO.format('cka', 'cka') + ': weight 10, uncentered'),
        'seg_logits': Setting(
            dict(type='CKALoss', loss_weight=10.0, feature_weight=0.0, intra_weight=1.0,
                 inter_weight=1.0, centered=False), channels='equal',
            source=_CITYSCAPES.format('cka', 'cka') + ': intra = inter = 10, uncentered')}),
    'SSIM': Method('ssim', {'neck': Setting(
        dict(type='SSIMLoss', loss_weight=2.0),
        source=_COCO.format('ssim', 'ssim') + ': weight 2 (paper 2..4), all levels')}),
    'AT': Method('at', {'neck': Setting(
        dict(type='ATLoss', loss_weight=500.0, p=2), channels='any',
        source=_COCO.format('at', 'at') + ': weight 500 = beta / 2, p 2')}),
    'KD': Method('kd', {
        'dense_cls_logits': Setting(
            dict(type='DenseHeadLogitLoss', loss_weight=1.0, select=('positive', 'confident'),
                 score_thr=0.5, max_locations=2000,
                 loss=dict(type='KDLoss', mode='sigmoid', tau=1.0)),
            channels='equal', size='any',
            source='configs/distill/kd/kd_logits_retina-x101_retina-r50_8xb2-2x_coco.py: '
            'sigmoid KD, tau 1, weight 1 at positive and confident locations'),
        'seg_logits': Setting(
            dict(type='KDLoss', mode='softmax', tau=1.0, loss_weight=1.0), channels='equal',
            source=_CITYSCAPES.format('kd', 'kd') + ': softmax KD per pixel, tau 1, weight 1')}),
}
#: Other spellings of the recipe types.
ALIASES = {'MSE': 'FitNet'}
#: Arguments of the dense-head KD recipe that go to its inner logit loss.
INNER_LOSS_KEYS = ('tau', 'mode')


def known_recipes() -> List[str]:
    return sorted(RECIPES) + sorted(ALIASES)


def lookup_recipe(recipe_type) -> Tuple[str, Method]:
    """``(canonical type, Method)`` for a type written in any case; a KeyError listing the
    known types otherwise."""
    names = {name.lower(): name for name in RECIPES}
    names.update({alias.lower(): target for alias, target in ALIASES.items()})
    name = names.get(str(recipe_type).lower())
    if name is None:
        raise KeyError(f'Unknown recipe type {recipe_type!r}. Known recipe types: '
                       f'{known_recipes()}; for any other loss write distill_losses and '
                       'loss_forward_mappings explicitly (README, "Distill your own model").')
    return name, RECIPES[name]


@dataclass
class Recipe:
    """One checked recipe."""
    index: int
    type: str
    method: Method
    on: str
    setting: Setting
    loss: dict  # the loss config, overrides applied (channels filled in later)
    levels: Optional[Tuple[int, ...]]
    levels_given: bool
    name: str

    @property
    def label(self) -> str:
        return f'{self.type} on {self.on}'

    @property
    def loss_weight(self) -> Optional[float]:
        """The loss's weight: the recipe's or its setting's, else the loss's default (None
        for a loss without one)."""
        if 'loss_weight' in self.loss:
            return self.loss['loss_weight']
        default = inspect.signature(MODELS.get(self.loss['type']).__init__).parameters.get(
            'loss_weight')
        return None if default is None else default.default


def parse_recipe(index: int, recipe) -> Recipe:
    """Check one recipe dict (type, place, keys) before any model is probed."""
    where = f'recipes[{index}]'
    if not isinstance(recipe, dict) or 'type' not in recipe:
        raise TypeError(f"{where} must be a dict with a type, e.g. dict(type='PKD', on='neck'), "
                        f'got {recipe!r}.')
    recipe = dict(recipe)
    name, method = lookup_recipe(recipe.pop('type'))
    places = sorted(method.settings)
    on = recipe.pop('on', places[0] if len(places) == 1 else None)
    if on is None:
        raise ValueError(f"{where}: recipe {name} needs on=: one of {places}.")
    if on not in method.settings:
        other = [m for m, meth in RECIPES.items() if on in meth.settings]
        raise ValueError(f'{where}: recipe {name} cannot read on={on!r}; it reads {places}. '
                         + (f'Recipes on {on!r}: {other}.' if on in PLACES else
                            f'Places: {sorted(PLACES)}.'))
    setting = method.settings[on]
    levels = recipe.pop('levels', None)
    levels_given = levels is not None
    if levels_given:
        if on != 'neck':
            raise ValueError(f"{where}: levels select neck levels; recipe {name} on={on!r} has "
                             'none. Remove levels.')
        if isinstance(levels, int) and not isinstance(levels, bool):
            levels = (levels, )
        if (not isinstance(levels, (list, tuple)) or not levels
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                           for i in levels)):
            raise TypeError(f'{where}: levels must be student neck level indices, e.g. '
                            f'(0, 1, 2), got {levels!r}.')
        levels = tuple(levels)
    else:
        levels = setting.levels
    short = recipe.pop('name', method.key)
    if not isinstance(short, str) or not short.isidentifier():
        raise ValueError(f'{where}: name must be a word such as {method.key!r} (it goes into '
                         f'the loss names, loss_<name>_...), got {short!r}.')
    loss = copy.deepcopy(setting.loss)
    inner_keys = INNER_LOSS_KEYS if loss['type'] == 'DenseHeadLogitLoss' else ()
    for key in [k for k in recipe if k in inner_keys]:
        loss['loss'][key] = recipe.pop(key)
    allowed = _loss_arguments(loss['type'])
    unknown = sorted(set(recipe) - set(allowed))
    if unknown:
        raise TypeError(f'{where}: recipe {name} got unknown keys {unknown}. Recipe keys: '
                        f'{list(RECIPE_KEYS)}; arguments of {loss["type"]}: {allowed}'
                        + (f' (and {list(inner_keys)} of its inner loss)' if inner_keys else '')
                        + '.')
    loss.update(recipe)
    return Recipe(index, name, method, on, setting, loss, levels, levels_given, short)


def _loss_arguments(loss_type: str) -> List[str]:
    cls = MODELS.get(loss_type)
    params = inspect.signature(cls.__init__).parameters
    skip = {'self', 'student_channels', 'teacher_channels', 'num_classes', 'init_cfg'}
    return [n for n, p in params.items() if n not in skip
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
