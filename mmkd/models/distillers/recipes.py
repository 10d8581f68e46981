"""Recipes: "PKD on the necks" in one line; the known recipe types and their settings.

A recipe is a dict in the Distiller's ``recipes`` list::

    recipes=[dict(type='PKD', on='neck'),                    # the published COCO setting
             dict(type='CWD', on='seg_logits', tau=2.0)]     # a loss argument overridden

with ``type`` (a method of :data:`RECIPES`, case-insensitive), ``on`` (one of
:data:`PLACES`; optional where the method has one place besides ``'backbone'``: without it, a
method that reads the neck reads the backbone when the student or the teacher has no neck),
and optionally ``loss_weight``, ``levels`` (student neck levels, or backbone stages with
``on='backbone'``, e.g. ``(0, 1, 2)``), ``name`` (the part of the names that
says the method, ``'pkd'`` by default), ``selfreg`` (self-regulated distillation around the
loss: a mode of ``SignificanceWeightedLoss``, ``'significance'``, ``'regulated'`` or
``'hybrid'``, or a dict of its arguments with the mode, see :data:`SELFREG`) and any argument
of the method's loss (``tau``, ``patch_size`` ...; checked against its signature).

Each method has its published setting per place (:class:`Setting`: the loss and its weight,
the default levels, whether the loss needs equal channels / sizes or adapts them itself, and
what else it reads: labels, GT boxes, task-loss gradients), taken from the shipped COCO /
Cityscapes configs it cites, whose first comments cite the papers (a test checks that the two
agree); a method that reads the neck reads the backbone's stages (``on='backbone'``, for the
models without a neck) with the same setting (:data:`SAME_SETTING`). :mod:`.expansion` turns
checked recipes into the explicit wiring when the model is built.
"""
import copy
import inspect
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmkd.registry import MODELS

#: Keys every recipe may have; the rest are arguments of the method's loss.
RECIPE_KEYS = ('type', 'on', 'loss_weight', 'levels', 'name', 'selfreg')


@dataclass(frozen=True)
class Place:
    """Where a recipe reads: the recorder both sides get and what it records.

    Args:
        labels (dict, optional): The spec of the labels a loss that takes ``labels`` gets here.
        class_maps (bool): The student's tensor here is its class logits, per pixel or per
            dense-head location: self-regulation (``selfreg``) decides on it.
        probe (bool): Shapes come from probing both models; False where the tensors are class
            scores of equal classes, checked without a forward (the RoI head's).
    """
    recorder: str
    cfg: dict
    suffix: str
    module: str  # the submodule that must exist on both models
    data_idx: Optional[int] = None
    head: bool = False  # the head must run (teacher 'tensor' forward, probe '_forward')
    labels: Optional[dict] = None
    class_maps: bool = False
    probe: bool = True


_NECK = dict(type='ModuleOutputsRecorder', source='neck')
_BACKBONE = dict(type='ModuleOutputsRecorder', source='backbone')
_BBOX_FORWARD = dict(type='MethodOutputsRecorder', source='bbox_head.forward')
_ROI_FORWARD = 'roi_head._bbox_forward'
#: The places a recipe can read (``on=``). ``seg_logits``' recorder is resolved per model
#: (:func:`.decode_heads.seg_logits_recorder`: cascade and mask-classification heads); the
#: config here is a plain decode head's.
PLACES = {
    'neck': Place('fpn', _NECK, 'fpn', 'neck'),
    # the stage outputs of a model without a neck, paired by stride as the neck's levels
    'backbone': Place('backbone', _BACKBONE, 'stage', 'backbone'),
    'seg_head': Place('head', dict(type='ModuleOutputsRecorder',
                                   source='decode_head.bottleneck'),
                      'head', 'decode_head.bottleneck', head=True),
    'seg_logits': Place('logits', dict(type='ModuleOutputsRecorder',
                                       source='decode_head.conv_seg'),
                        'logits', 'decode_head.conv_seg', head=True,
                        labels=dict(from_data='gt_sem_seg'), class_maps=True),
    # the labels' index in get_targets' outputs depends on the head (expansion.labels_index)
    # the auxiliary head's logits (mmseg's auxiliary_head, e.g. the FCN head on a dilated
    # ResNet's c3; resolved per model: decode_heads.aux_logits_recorder)
    'aux_logits': Place('aux_logits', dict(type='ModuleOutputsRecorder',
                                           source='auxiliary_head.conv_seg'),
                        'aux', 'auxiliary_head', head=True,
                        labels=dict(from_data='gt_sem_seg'), class_maps=True),
    # the feature the decode head classifies: the input of the classifier seg_logits reads
    # (decode_heads.seg_feat_recorder)
    'seg_feat': Place('feat', dict(type='ModuleInputsRecorder', source='decode_head.conv_seg'),
                      'feat', 'decode_head', data_idx=0, head=True,
                      labels=dict(from_data='gt_sem_seg')),
    'dense_cls_logits': Place('cls', _BBOX_FORWARD, 'cls', 'bbox_head', data_idx=0, head=True,
                              labels=dict(from_student=True, recorder='targets'),
                              class_maps=True),
    'roi_cls_logits': Place('roi_out', dict(type='MethodOutputsRecorder', source=_ROI_FORWARD),
                            'roi', 'roi_head', labels=dict(
                                from_student=True, recorder='targets',
                                data_idx=['bbox_targets', 0]), probe=False),
}
#: The student's assigner labels, which dense-head logit distillation selects locations by.
TARGETS = ('targets', dict(type='MethodOutputsRecorder', source='bbox_head.get_targets'))
#: The RoI head's class scores, both on the RoIs the student sampled: the student records its
#: RoI head's inputs (the RoIs, data_idx 1), outputs and targets (the sampled RoIs' labels,
#: background = num_classes); the teacher's ``roi_head._bbox_forward`` is replayed under
#: no_grad on its own FPN features and those RoIs (``teacher_replays``), and read as ``roi``.
ROI_REPLAY = dict(
    student_recorders=dict(
        roi_in=dict(type='MethodInputsRecorder', source=_ROI_FORWARD),
        roi_out=dict(type='MethodOutputsRecorder', source=_ROI_FORWARD),
        targets=dict(type='MethodOutputsRecorder', source='roi_head.bbox_head.loss_and_target')),
    teacher_recorders=dict(fpn=_NECK),
    teacher_replays=dict(roi=dict(method=_ROI_FORWARD, args=[
        dict(from_student=False, recorder='fpn'),
        dict(from_student=True, recorder='roi_in', data_idx=1)])),
    preds_S=dict(from_student=True, recorder='roi_out', data_idx='cls_score'),
    preds_T=dict(from_student=False, recorder='roi', data_idx='cls_score'))


@dataclass(frozen=True)
class Setting:
    """A method's published setting at one place.

    Args:
        loss (dict): The loss config (type and arguments) before the recipe's overrides
            (not yet wrapped by ``selfreg``).
        channels (str): When channels differ: ``'connector'`` (insert a ConvConnector),
            ``'loss'`` (pass ``student_channels`` / ``teacher_channels``), ``'any'`` (the loss
            takes any), ``'equal'`` (an error: class scores of different classes).
        size (str): When sizes differ: ``'connector'`` (insert a ResizeConnector), ``'loss'``
            (the loss resizes), ``'any'``.
        levels (tuple, optional): Default student neck levels; None: all paired levels.
        source (str): Where the setting comes from.
        inputs (tuple): What the loss reads besides ``preds_S`` / ``preds_T`` (:data:`INPUTS`).
        pair_args (tuple): Loss arguments set per pair: ``'stride'`` (the student level's
            stride in pixels), ``'name'`` (the pair's name, e.g. ``'fpn0'``, for the loss's
            log keys), ``'num_classes'`` (the student's class count).
        box_term (str, optional): A loss argument that, on detectors only, gets
            ``dict(student_channels=..., teacher_channels=...)`` (GKD's FGD-style ``bmfi``
            term on the GT boxes); a recipe's own value is completed, ``None`` switches it off.
    """
    loss: dict
    channels: str = 'connector'
    size: str = 'connector'
    levels: Optional[Tuple[int, ...]] = None
    source: str = ''
    inputs: Tuple[str, ...] = ()
    pair_args: Tuple[str, ...] = ()
    box_term: Optional[str] = None


#: What a setting's loss may read besides the two tensors: ``'data_samples'`` (the batch's
#: data samples), ``'boxes'`` (the data samples on detectors only: GT boxes; segmentors have
#: none), ``'gradients'`` (``grads_S`` / ``grads_T``: each model's task-loss gradient at the
#: recorded tensor, ``gradient=True`` specs; ``feats_S`` is the student's tensor before its
#: connectors, if any) and ``'labels'`` (the place's labels, :attr:`Place.labels`).
INPUTS = ('data_samples', 'boxes', 'gradients', 'labels')


#: Places read with another place's setting: a backbone's stages are paired by stride and
#: distilled as a neck's levels are, so every method that reads the neck reads the backbone.
SAME_SETTING = {'backbone': 'neck'}


@dataclass(frozen=True)
class Method:
    """A recipe type: its key in the names and its published setting per place.

    Args:
        key (str): The default ``name`` of its losses (``loss_<key>_...``).
        settings (dict): ``{place: Setting}`` of the places it has a published setting for;
            it also reads the places of :data:`SAME_SETTING` with theirs (:attr:`places`).
    """
    key: str
    settings: Dict[str, Setting] = field(default_factory=dict)

    @property
    def places(self) -> List[str]:
        """Every place the method reads: its settings' and those read with one of them."""
        return sorted(set(self.settings) | {place for place, same in SAME_SETTING.items()
                                            if same in self.settings})

    def setting(self, on: str) -> Setting:
        """The setting at place ``on`` (one of :attr:`places`)."""
        return self.settings[on] if on in self.settings else self.settings[SAME_SETTING[on]]


def _dense(loss: dict) -> dict:
    """``loss`` per dense-head location: at the student's positives and the teacher's
    confident locations, at most 2000 a batch (``num_classes`` is the student's)."""
    return dict(type='DenseHeadLogitLoss', loss_weight=1.0, select=('positive', 'confident'),
                score_thr=0.5, max_locations=2000, loss=loss)


_COCO = 'configs/distill/{}/{}_fpn_retina-x101_retina-r50_8xb2-2x_coco.py'
_CITYSCAPES = 'configs/distill/{}/{}_logits_pspnet-r101_pspnet-r18_4xb2-80k_cityscapes-512x1024.py'
_DENSE = 'configs/distill/{}/{}_logits_retina-x101_retina-r50_8xb2-2x_coco.py'
_ROI = 'configs/distill/{}/{}_logits_frcnn-r101_frcnn-r50_8xb2-2x_coco.py'

#: Known recipe types and their published settings (COCO for necks and detection heads,
#: Cityscapes for segmentation heads and logits); the sources are the shipped configs, whose
#: first comments cite the papers.
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
        dict(type='FGDLoss'), channels='loss', inputs=('data_samples', ),
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
            _dense(dict(type='KDLoss', mode='sigmoid', tau=1.0)), channels='equal', size='any',
            inputs=('labels', ), source=_DENSE.format('kd', 'kd') + ': sigmoid KD, tau 1, '
            'weight 1 at positive and confident locations'),
        'seg_logits': Setting(
            dict(type='KDLoss', mode='softmax', tau=1.0, loss_weight=1.0), channels='equal',
            source=_CITYSCAPES.format('kd', 'kd') + ': softmax KD per pixel, tau 1, weight 1'),
        'roi_cls_logits': Setting(
            dict(type='KDLoss', mode='softmax', tau=1.0, loss_weight=1.0),
            source=_ROI.format('kd', 'kd') + ': softmax KD on the RoI class scores, tau 1, '
            'weight 1')}),
    'DKD': Method('dkd', {
        place: Setting(dict(type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0, warmup_iters=1000),
                       channels='equal', inputs=('labels', ),
                       source=source + ': alpha 1, beta 8, tau 4 (the paper\'s defaults), '
                       'warm-up 1000 iterations, the ground-truth class as target')
        for place, source in (('seg_logits', _CITYSCAPES.format('dkd', 'dkd')),
                              ('roi_cls_logits', _ROI.format('dkd', 'dkd')))}),
    'TopKD': Method('topkd', {
        'dense_cls_logits': Setting(
            _dense(dict(type='TopKDLoss', mode='sigmoid', centre=True, k=5)), channels='equal',
            size='any', inputs=('labels', ), source=_DENSE.format('topkd', 'topkd') + ': '
            'sigmoid mode with centred logits (our extension: raw logits at the prior bias '
            'give almost no gradient, TopKDLoss docstring), K 5, the suggested defaults, at '
            'positive locations'),
        **{place: Setting(dict(type='TopKDLoss', mode='softmax', k=5), channels='equal',
                          inputs=('labels', ), source=source + ': softmax, K 5, the suggested '
                          'defaults, the ground-truth class added to the scaled set')
           for place, source in (('seg_logits', _CITYSCAPES.format('topkd', 'topkd')),
                                 ('roi_cls_logits', _ROI.format('topkd', 'topkd')))}}),
    'GKD': Method('gkd', {'neck': Setting(
        dict(type='GKDLoss', loss_weight=1.0, double_backward=False),
        inputs=('gradients', 'boxes'), box_term='bmfi', source=_COCO.format('gkd', 'gkd') + ': weight 1, BMFI weight 1 on '
        'detectors, stop-gradient student map, all levels (the weights are not public)')}),
    'SoKD': Method('sokd', {
        'neck': Setting(
            dict(type='SoKDLoss', loss=dict(type='MSEFeatureLoss'), num_areas=10,
                 loss_weight=1.0), channels='loss', inputs=('boxes', ),
            pair_args=('stride', 'name'), source=_COCO.format('sokd', 'sokd_mse')
            + ': around MSE, 10 areas, every weight 1 (ours: not public), all levels'),
        'seg_head': Setting(
            dict(type='SoKDLoss', loss=dict(type='MSEFeatureLoss'), num_areas=16,
                 min_box_size=8, loss_weight=1.0), channels='loss', pair_args=('stride', 'name'),
            source='configs/distill/sokd/sokd_mse_head_pspnet-r101_pspnet-r18_4xb2-80k_'
            'cityscapes-512x1024.py: around MSE, 16 areas of at least 8x8 cells, every weight '
            '1 (ours: not public)')}),
}
_DIST = 'configs/distill/dist/dist_logits_deeplabv3-r101_deeplabv3-r18_8xb2-40k_cityscapes-512x1024.py'
_CIRKD = 'configs/distill/cirkd/cirkd_feat-logits_deeplabv3-r101_deeplabv3-r18_8xb2-40k_cityscapes-512x1024.py'
_AFDCD = 'configs/distill/afdcd/afdcd_stage-logits_deeplabv3-r101_deeplabv3-r18_8xb2-40k_cityscapes-512x1024.py'
_MASKD = 'configs/distill/maskd/maskd_logits_deeplabv3-r101_deeplabv3-r18_8xb2-40k_cityscapes-512x1024.py'
RECIPES.update({
    'DIST': Method('dist', {
        'seg_logits': Setting(dict(type='DISTLoss', loss_weight=1.0, beta=1.0, gamma=1.0,
                                   tau=1.0), channels='equal',
                              source=_DIST + ': inter = intra = 1, tau 1, weight 1, no plain KD'),
        'aux_logits': Setting(dict(type='DISTLoss', loss_weight=0.4, beta=1.0, gamma=1.0,
                                   tau=1.0), channels='equal',
                              source=_DIST + ": the auxiliary head's logits at 0.4"),
        'dense_cls_logits': Setting(
            dict(_dense(dict(type='DISTLoss', mode='sigmoid', tau=1.0)), pass_labels=False),
            channels='equal', size='any', inputs=('labels', ),
            source=_DENSE.format('dist', 'dist') + ': DIST on the per-class sigmoid of the '
            'class logits (the published code\'s use_sigmoid, as the heads are trained) at '
            'positive and confident locations, background ones included (no labels passed), '
            'weight 1 (ours: the paper distils classification and segmentation logits)'),
        'roi_cls_logits': Setting(
            dict(type='DISTLoss', loss_weight=1.0, tau=1.0),
            source=_ROI.format('dist', 'dist') + ': DIST on the RoI class scores (background '
            'included), weight 1, tau 1 (the classification setting)')}),
    'CIRKD': Method('cirkd', {'seg_feat': Setting(
        dict(type='CIRKDLoss', loss_weight=1.0, minibatch_weight=1.0, pixel_weight=0.1,
             region_weight=0.1), channels='loss', inputs=('labels', ),
        pair_args=('num_classes', ),
        source=_CIRKD + ': mini-batch relations 1, pixel and region memory 0.1 each (tau 0.1, '
        'queues 20000 / 2000 per class); with KD on the logits (T 1, weight 1) as a second '
        'recipe')}),
    'AfDCD': Method('afdcd', {'backbone': Setting(
        dict(type='AfDCDLoss', loss_weight=1.0), channels='loss', levels=(3, ),
        source=_AFDCD + ': the last backbone stage (c4), feature 2e-6 and contrast 0.005; '
        'with KD on the logits (T 1, weight 1) as a second recipe')}),
    'MasKD': Method('maskd', {
        'seg_logits': Setting(dict(type='MasKDLoss', loss_weight=0.5), channels='equal',
                              source=_MASKD + ': weight 0.5 with the receptive tokens of '
                              'tools/maskd_tokens.py (tokens=...)'),
        'aux_logits': Setting(dict(type='MasKDLoss', loss_weight=0.2), channels='equal',
                              source=_MASKD + ": the auxiliary head's logits at 0.4 x 0.5")}),
})
#: Other spellings of the recipe types.
ALIASES = {'MSE': 'FitNet', 'Af-DCD': 'AfDCD'}
#: Self-regulated distillation (``selfreg=``): ``SignificanceWeightedLoss`` around the recipe's
#: loss, with these arguments unless the recipe's ``selfreg`` dict gives others.
SELFREG = dict(min_weight=0.1, conf_thr=0.5, handled_ratio=0.9)
SELFREG_SOURCE = ('configs/distill/selfreg/selfreg-hybrid_kd-logits_retina-x101_retina-r50_'
                  '8xb2-2x_coco.py: significance floored at 0.1; an image counts as handled at a '
                  'ground-truth-class score >= 0.5 (on >= 90% of the labelled pixels for '
                  'segmentation; the thresholds are ours, not public)')
SELFREG_MODES = ('significance', 'regulated', 'hybrid')


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
                       'loss_forward_mappings explicitly (docs/en/user_guides/'
                       'distill_your_own_model.md, "The explicit form").')
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
    #: ``SignificanceWeightedLoss`` arguments (mode included) to wrap the loss in, or None.
    selfreg: Optional[dict] = None
    #: Whether the recipe gave ``on``; without it a neck recipe reads the backbone of models
    #: without a neck (:func:`.expansion.expand_recipes`).
    on_given: bool = True

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
    places, own = method.places, sorted(method.settings)
    on = recipe.pop('on', None)
    on_given = on is not None
    if not on_given and len(own) == 1:  # 'neck': the backbone on models without (expansion)
        on = own[0]
    if on is None:
        raise ValueError(f"{where}: recipe {name} needs on=: one of {places}.")
    if on not in places:
        other = [m for m, meth in RECIPES.items() if on in meth.places]
        raise ValueError(f'{where}: recipe {name} cannot read on={on!r}; it reads {places}. '
                         + (f'Recipes on {on!r}: {other}.' if on in PLACES else
                            f'Places: {sorted(PLACES)}.'))
    setting = method.setting(on)
    levels = recipe.pop('levels', None)
    levels_given = levels is not None
    if levels_given:
        if on not in ('neck', 'backbone'):
            raise ValueError(f"{where}: levels select neck levels or backbone stages; recipe "
                             f'{name} on={on!r} has none. Remove levels.')
        if isinstance(levels, int) and not isinstance(levels, bool):
            levels = (levels, )
        if (not isinstance(levels, (list, tuple)) or not levels
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                           for i in levels)):
            raise TypeError(f'{where}: levels must be student neck level indices (backbone '
                            f"stage indices with on='backbone'), e.g. (0, 1, 2), got "
                            f'{levels!r}.')
        levels = tuple(levels)
    else:
        levels = setting.levels
    short = recipe.pop('name', method.key)
    if not isinstance(short, str) or not short.isidentifier():
        raise ValueError(f'{where}: name must be a word such as {method.key!r} (it goes into '
                         f'the loss names, loss_<name>_...), got {short!r}.')
    selfreg = _parse_selfreg(where, name, on, recipe.pop('selfreg', None))
    loss = copy.deepcopy(setting.loss)
    allowed = _loss_arguments(loss['type'], setting.pair_args)
    # DenseHeadLogitLoss runs an inner logit loss: the arguments only that one has go to it
    inner_keys = ([k for k in _loss_arguments(loss['loss']['type']) if k not in allowed]
                  if loss['type'] == 'DenseHeadLogitLoss' else [])
    for key in [k for k in recipe if k in inner_keys]:
        loss['loss'][key] = recipe.pop(key)
    unknown = sorted(set(recipe) - set(allowed))
    if unknown:
        raise TypeError(f'{where}: recipe {name} got unknown keys {unknown}. Recipe keys: '
                        f'{list(RECIPE_KEYS)}; arguments of {loss["type"]}: {allowed}'
                        + (f' (and {inner_keys} of its inner loss)' if inner_keys else '')
                        + '.')
    loss.update(recipe)
    missing = [n for n in _required_arguments(loss['type'], setting.pair_args) if n not in loss]
    if missing:
        raise TypeError(f'{where}: recipe {name} needs {missing} (arguments of {loss["type"]} '
                        'without a default), e.g. '
                        + ', '.join(f'{n}=...' for n in missing) + '.'
                        + (" tokens= is the file tools/maskd_tokens.py writes." if 'tokens'
                           in missing else ''))
    return Recipe(index, name, method, on, setting, loss, levels, levels_given, short, selfreg,
                  on_given)


def _parse_selfreg(where: str, name: str, on: str, value) -> Optional[dict]:
    """The ``SignificanceWeightedLoss`` arguments a recipe's ``selfreg`` asks for, or None."""
    if value is None:
        return None
    given = dict(mode=value) if isinstance(value, str) else value
    if not isinstance(given, dict) or given.get('mode') not in SELFREG_MODES:
        raise ValueError(f"{where}: selfreg is a mode of SignificanceWeightedLoss, one of "
                         f"{list(SELFREG_MODES)}, or a dict of its arguments with the mode, e.g. "
                         f"dict(mode='hybrid', conf_thr=0.6); got {value!r}.")
    allowed = _loss_arguments('SignificanceWeightedLoss', ('loss', 'name'))  # loss, name: ours
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise TypeError(f'{where}: selfreg got unknown keys {unknown}; it takes arguments of '
                        f'SignificanceWeightedLoss: {allowed}.')
    if given['mode'] != 'significance' and not PLACES[on].class_maps:
        maps = [p for p, place in PLACES.items() if place.class_maps]
        raise ValueError(f"{where}: selfreg mode {given['mode']!r} lets the student skip the "
                         'images it already handles, judged on its own class logits, which '
                         f'recipe {name} on={on!r} does not read: use it on {maps}, or '
                         "selfreg='significance'.")
    return {**SELFREG, **given}


def _loss_arguments(loss_type: str, filled: Sequence[str] = ()) -> List[str]:
    """The arguments of ``loss_type`` a recipe may set (not those the expansion fills)."""
    cls = MODELS.get(loss_type)
    params = inspect.signature(cls.__init__).parameters
    skip = {'self', 'student_channels', 'teacher_channels', 'num_classes', 'init_cfg', *filled}
    return [n for n, p in params.items() if n not in skip
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _required_arguments(loss_type: str, filled: Sequence[str] = ()) -> List[str]:
    """The arguments of ``loss_type`` a recipe must give: those without a default that the
    expansion does not fill."""
    params = inspect.signature(MODELS.get(loss_type).__init__).parameters
    return [n for n in _loss_arguments(loss_type, filled) if params[n].default is params[n].empty]
