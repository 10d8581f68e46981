r"""Cross heads (CrossKD): the teacher's dense head run on the student's head features.

CrossKD: Cross-Head Knowledge Distillation for Object Detection (Wang et al., CVPR 2024),
https://arxiv.org/abs/2306.11369; published code: https://github.com/jbwang1997/CrossKD
(``mmdet/models/detectors/crosskd_{retinanet,gfl,atss,fcos}.py``).

``cross_heads=dict(crosskd=dict(head='bbox_head', reused_teacher_head_idx=3))`` in the
Distiller: at every step, per FPN level and per branch (``cls_convs``, ``reg_convs``), the
student's head feature after its :math:`i`-th conv and norm, before the activation
(:math:`i` = ``reused_teacher_head_idx``; :math:`i = 0`: the head's input), is normalised per
channel to the teacher's feature at the same place,

.. math::

    \hat{F}^{S}_{c} = \frac{F^{S}_{c} - \mu(F^{S}_{c})}{\sigma(F^{S}_{c}) + \epsilon}
    \, \sigma(F^{T}_{c}) + \mu(F^{T}_{c})

(mean and standard deviation over N, H, W of channel :math:`c`, unbiased as ``torch.std``;
:math:`\epsilon = 10^{-6}`; the teacher's statistics detached), activated by the teacher conv's
own activation (ReLU in these heads; none for :math:`i = 0`), and run through the teacher's
convs :math:`i+1 \ldots` and its prediction layers: the teacher head's own ``forward`` runs,
with its first :math:`i` convs replaced by the given features, so the predictions are exactly
the teacher head's (scales, strides, centerness branch included). The teacher's weights are
frozen (``requires_grad=False``) and the head runs with gradient, so the student's features
receive the gradient of every loss on the cross-head predictions and the teacher none.

The recorders this needs are added by themselves (``<name>_cls`` and ``<name>_reg`` on both
models: ``ModuleOutputsRecorder(clone=True)`` on the conv's norm, or on the conv without one,
because mmcv's ``ConvModule`` applies its ReLU in place). A loss reads the predictions on the
student side: ``dict(from_student=True, recorder='crosskd', data_idx='cls_score')``; the output
is a dict of

- ``cls_score``, ``bbox_pred`` (and ``centerness`` for FCOS / ATSS): per level, as the head's
  ``forward`` returns them;
- ``priors``: per level, the teacher head's anchors or points for every image, (N*H*W*A, 4)
  (or (N*H*W, 2) points), in the rows' order of ``permute(0, 2, 3, 1).reshape(-1, ...)``;
- ``bbox_coder``: the teacher head's box coder, to decode ``bbox_pred`` at the priors.

Heads: mmdet dense heads with ``cls_convs`` / ``reg_convs`` of ``ConvModule`` (``RetinaHead``,
``GFLHead``, ``ATSSHead``, ``FCOSHead`` ...). Student and teacher need the same channels at the
cross point and the same anchors (checked at build).

Deviations from the published code: a level whose channel holds one value (N*H*W = 1) gets the
biased standard deviation (0, so the teacher's mean) where ``torch.std`` gives NaN; the
activation is the teacher conv's own (``F.relu`` there).
"""
from typing import Dict, Iterator, List, Optional

import torch
from torch import Tensor, nn

from mmkd.utils import get_submodule_or_raise
from .stages import STAGES, DistillStage, StageStep

BRANCHES = ('cls', 'reg')
EPS = 1e-6


def align_to_teacher(feat_S: Tensor, feat_T: Tensor, eps: float = EPS) -> Tensor:
    """Normalise each channel of ``feat_S`` over (N, H, W), then give it the mean and standard
    deviation of the same channel of ``feat_T`` (detached).

    Args:
        feat_S (Tensor): Student feature, (N, C, H, W).
        feat_T (Tensor): Teacher feature at the same place, (N, C, H, W).
        eps (float): Added to the student's standard deviation. Defaults to 1e-6.

    Returns:
        Tensor: (N, C, H, W), with the teacher's per-channel mean and (up to eps) std.

    Example:
        >>> s, t = torch.randn(2, 3, 4, 4), 5 + 2 * torch.randn(2, 3, 4, 4)
        >>> out = align_to_teacher(s, t)
        >>> torch.allclose(out.mean(dim=(0, 2, 3)), t.mean(dim=(0, 2, 3)), atol=1e-5)
        True
    """
    if feat_S.dim() != 4 or feat_S.shape != feat_T.shape:
        raise ValueError(f'align_to_teacher needs (N, C, H, W) maps of one shape, got student '
                         f'{tuple(feat_S.shape)} and teacher {tuple(feat_T.shape)}.')
    dims = (0, 2, 3)
    correction = 1 if feat_S.numel() // feat_S.shape[1] > 1 else 0
    feat_T = feat_T.detach()
    mean_S = feat_S.mean(dim=dims, keepdim=True)
    std_S = feat_S.std(dim=dims, keepdim=True, correction=correction)
    mean_T = feat_T.mean(dim=dims, keepdim=True)
    std_T = feat_T.std(dim=dims, keepdim=True, correction=correction)
    return (feat_S - mean_S) / (std_S + eps) * std_T + mean_T


class _Given(nn.Module):
    """Stands for a head's first convs: returns the next given feature (one per level)."""

    def __init__(self, feats: List[Tensor]):
        super().__init__()
        self.feats: Iterator[Tensor] = iter(feats)

    def forward(self, x: Tensor) -> Tensor:
        return next(self.feats)


def run_head_from(head: nn.Module, cls_feats: List[Tensor], reg_feats: List[Tensor],
                  start: int) -> tuple:
    """``head.forward`` with the features after its first ``start`` convs given per level.

    ``cls_convs`` / ``reg_convs`` are swapped, for this call only, for a module returning the
    given (activated) feature followed by the convs ``start, start + 1, ...``; everything else
    (prediction convs, scales, strides, centerness) is the head's own code.

    Args:
        head (nn.Module): A dense head with ``cls_convs`` and ``reg_convs``.
        cls_feats (list[Tensor]): Per level, the input of ``cls_convs[start]``.
        reg_feats (list[Tensor]): Per level, the input of ``reg_convs[start]``.
        start (int): How many convs the given features stand for.

    Returns:
        tuple: What ``head.forward`` returns.
    """
    saved = {branch: getattr(head, f'{branch}_convs') for branch in BRANCHES}
    try:
        for branch, feats in zip(BRANCHES, (cls_feats, reg_feats)):
            convs = saved[branch]
            setattr(head, f'{branch}_convs', nn.ModuleList([_Given(feats), *convs[start:]]))
        return head.forward(list(cls_feats))
    finally:
        for branch, convs in saved.items():
            setattr(head, f'{branch}_convs', convs)


def pre_activation_source(head_name: str, head: nn.Module, branch: str, idx: int,
                          owner: str) -> dict:
    """The recorder config of a head's ``branch`` feature after conv ``idx`` (1-based) before
    its activation, or of the head's input for ``idx = 0``."""
    convs = getattr(head, f'{branch}_convs', None)
    if not isinstance(convs, nn.ModuleList) or not len(convs):
        raise ValueError(f'cross_heads: the {owner} head {head_name!r} ({type(head).__name__}) '
                         f'has no {branch}_convs: CrossKD needs a dense head with stacked '
                         'cls_convs / reg_convs (RetinaHead, GFLHead, ATSSHead, FCOSHead ...).')
    if not 0 <= idx <= len(convs):
        raise ValueError(f'cross_heads: reused_teacher_head_idx={idx} is outside [0, '
                         f'{len(convs)}], the {owner} head\'s {branch}_convs count.')
    if idx == 0:
        return dict(type='ModuleInputsRecorder', source=f'{head_name}.{branch}_convs.0')
    conv = convs[idx - 1]
    order = tuple(getattr(conv, 'order', ()))
    if order[:2] != ('conv', 'norm') or not hasattr(conv, 'activate'):
        raise ValueError(f'cross_heads: {owner} {head_name}.{branch}_convs.{idx - 1} is a '
                         f'{type(conv).__name__} with order {order}: CrossKD needs mmcv '
                         "ConvModules of order ('conv', 'norm', 'act').")
    part = conv.norm_name if conv.with_norm else 'conv'
    return dict(type='ModuleOutputsRecorder',
                source=f'{head_name}.{branch}_convs.{idx - 1}.{part}', clone=True)


def _channels(head: nn.Module, branch: str, idx: int) -> Optional[int]:
    if idx == 0:
        return getattr(head, 'in_channels', None)
    return getattr(getattr(head, f'{branch}_convs')[idx - 1], 'out_channels', None)


@STAGES.register_module()
class CrossHeads(DistillStage):
    """Checks the cross heads at build, adds their recorders, runs them and keeps their outputs
    per step (a :class:`~.stages.DistillStage` read on the student's side).

    Args:
        cfgs (dict, optional): ``{name: dict(head='bbox_head', reused_teacher_head_idx=3)}``.
        student (nn.Module): The student model.
        teacher (nn.Module, optional): The teacher model (frozen).
    """

    KEYS = {'head', 'reused_teacher_head_idx'}
    argument = 'cross_heads'
    sides = ('student', )

    def __init__(self, cfgs: Optional[Dict[str, dict]], student: nn.Module,
                 teacher: Optional[nn.Module]):
        super().__init__(cfgs, student, teacher)
        self.heads: Dict[str, nn.Module] = {}
        self.idx: Dict[str, int] = {}
        self.sources: Dict[str, Dict[str, Dict[str, dict]]] = {'student': {}, 'teacher': {}}
        for name, cfg in self.cfgs.items():
            unknown = set(cfg) - self.KEYS
            if unknown or 'reused_teacher_head_idx' not in cfg:
                raise KeyError(f'cross_heads[{name!r}] takes reused_teacher_head_idx (the '
                               "published 3; FCOS 2) and optionally head (default 'bbox_head'); "
                               f'got {sorted(cfg)}.')
            head_name = cfg.get('head', 'bbox_head')
            idx = cfg['reused_teacher_head_idx']
            if isinstance(idx, bool) or not isinstance(idx, int):
                raise TypeError(f'cross_heads[{name!r}]: reused_teacher_head_idx must be an int, '
                                f'got {idx!r}.')
            heads = {'student': get_submodule_or_raise(student, head_name, 'student'),
                     'teacher': get_submodule_or_raise(teacher, head_name, 'teacher')}
            for branch in BRANCHES:
                for side, head in heads.items():
                    self.sources[side].setdefault(name, {})[branch] = pre_activation_source(
                        head_name, head, branch, idx, side)
                channels = {side: _channels(head, branch, idx) for side, head in heads.items()}
                if channels['student'] != channels['teacher']:
                    raise ValueError(
                        f'cross_heads[{name!r}]: the student\'s {branch} feature after conv '
                        f"{idx} has {channels['student']} channels and the teacher's "
                        f"{channels['teacher']}: the teacher's head can only take the student's "
                        'feature with equal channels (set the student head\'s feat_channels, '
                        'or pick another reused_teacher_head_idx).')
            self._check_priors(name, heads)
            self.heads[name] = heads['teacher']
            self.idx[name] = idx

    @staticmethod
    def _check_priors(name: str, heads: Dict[str, nn.Module]) -> None:
        generators = {side: getattr(head, 'prior_generator', None) for side, head in heads.items()}
        described = {side: (type(g).__name__, getattr(g, 'strides', None),
                            getattr(g, 'num_base_priors', None)) for side, g in generators.items()}
        if described['student'] != described['teacher']:
            raise ValueError(f"cross_heads[{name!r}]: student and teacher heads need the same "
                             f"anchors / points to compare predictions: student "
                             f"{described['student']}, teacher {described['teacher']}.")

    def recorders(self, side: str) -> Dict[str, dict]:
        """``{'<name>_cls': recorder cfg, '<name>_reg': ...}`` to add on ``side``."""
        return {f'{name}_{branch}': dict(cfg) for name, branches in self.sources[side].items()
                for branch, cfg in branches.items()}

    def reads(self) -> List[dict]:
        """Specs of every teacher record the cross heads read (for the teacher's early stop)."""
        specs = []
        for name, head in self.heads.items():
            levels = getattr(getattr(head, 'prior_generator', None), 'num_levels', None)
            for branch in BRANCHES:
                specs.append(dict(from_student=False, recorder=f'{name}_{branch}',
                                  record_idx=-1 if levels is None else levels - 1))
        return specs

    def run(self, step: StageStep) -> None:
        """Every cross head on this step's records (``step.recorders``), with gradient towards
        the student's features."""
        for name, head in self.heads.items():
            feats = {branch: self._aligned(step.recorders, f'{name}_{branch}', self.idx[name],
                                           head, branch) for branch in BRANCHES}
            outputs = run_head_from(head, feats['cls'], feats['reg'], self.idx[name])
            keys = ('cls_score', 'bbox_pred', 'centerness')[:len(outputs)]
            result = dict(zip(keys, outputs))
            cls_scores = result['cls_score']
            sizes = [score.shape[-2:] for score in cls_scores]
            num_images = cls_scores[0].shape[0]
            priors = head.prior_generator.grid_priors(sizes, dtype=cls_scores[0].dtype,
                                                      device=cls_scores[0].device)
            result['priors'] = [p.repeat(num_images, 1) for p in priors]
            result['bbox_coder'] = head.bbox_coder
            self.outputs[name] = result

    @staticmethod
    def _aligned(recorders: dict, recorder: str, idx: int, head: nn.Module,
                 branch: str) -> List[Tensor]:
        records = {side: recorders[side][recorder].data_buffer for side in recorders}
        if len(records['student']) != len(records['teacher']) or not records['student']:
            raise RuntimeError(f'cross head recorder {recorder!r} took {len(records["student"])} '
                               f'student and {len(records["teacher"])} teacher records: both '
                               'heads must run once per FPN level.')
        feats = []
        for feat_S, feat_T in zip(records['student'], records['teacher']):
            if idx == 0:  # ModuleInputsRecorder: the inputs tuple
                feat_S, feat_T = feat_S[0], feat_T[0]
            feat = align_to_teacher(feat_S.float(), feat_T.float())
            if idx > 0:
                feat = getattr(head, f'{branch}_convs')[idx - 1].activate(feat)
            feats.append(feat)
        return feats

