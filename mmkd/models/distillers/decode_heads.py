"""Where an mmseg segmentor's per-pixel class logits are, for every kind of decode head.

The ``seg_logits`` recipes (:mod:`.recipes`) read them, resolved per model (a student and a
teacher may have different heads, so the two sides' recorders may differ):

- a head with a classifier ``conv_seg`` (mmseg's ``BaseDecodeHead``: PSP, ASPP, UPer,
  SegFormer, PIDNet ...): its output, ``ModuleOutputsRecorder(source='decode_head.conv_seg')``;
- cascade decode heads (``CascadeEncoderDecoder``, ``decode_head`` an ``nn.ModuleList``:
  OCRNet, PointRend): the classifier of the last head that has one
  (``decode_head.1.conv_seg`` on OCRNet); PointRend's last head, ``PointHead``, classifies
  sampled points (``fc_seg``, no per-pixel map), so its coarse head's ``decode_head.0.conv_seg``
  is read;
- mask-classification heads, whose forward does not end in a per-pixel classifier: mmseg's
  ``MaskFormerHead`` / ``Mask2FormerHead``, K-Net's ``IterativeDecodeHead`` and Segmenter's
  ``SegmenterMaskTransformerHead``: the head's forward, turned into per-pixel class logits
  as the head forms its prediction at inference
  (:class:`mmkd.models.recorders.DecodeHeadLogitsRecorder`).
"""
import inspect
from typing import List, Optional, Tuple

from torch import nn

#: The recorder of a plain decode head's class logits (the shipped configs' ``logits``).
CONV_SEG = dict(type='ModuleOutputsRecorder', source='decode_head.conv_seg')


def decode_heads(model: nn.Module) -> Optional[List[nn.Module]]:
    """The model's decode heads in order (one, or a cascade's), None without ``decode_head``."""
    head = getattr(model, 'decode_head', None)
    if head is None:
        return None
    return list(head) if isinstance(head, nn.ModuleList) else [head]


def logits_form(head: nn.Module) -> Optional[str]:
    """How ``head`` gives per-pixel class logits: ``'conv_seg'`` (its classifier's output), a
    ``form`` of ``DecodeHeadLogitsRecorder`` (``'query_masks'``, ``'last_stage'``, ``'map'``)
    or None (no per-pixel map: PointRend's ``PointHead``, or a head mmkd does not know)."""
    if isinstance(getattr(head, 'conv_seg', None), nn.Module):
        return 'conv_seg'
    from mmseg.models.decode_heads import (IterativeDecodeHead, Mask2FormerHead,
                                           MaskFormerHead, SegmenterMaskTransformerHead)
    if isinstance(head, (MaskFormerHead, Mask2FormerHead)):
        return 'query_masks'
    if isinstance(head, IterativeDecodeHead):
        return 'last_stage'
    if isinstance(head, SegmenterMaskTransformerHead):
        return 'map'
    return None


def heads_to_run(heads: List[nn.Module]) -> int:
    """How many of a segmentor's decode heads reach the last per-pixel class map: all but
    the trailing heads that have none (PointRend's ``PointHead`` classifies sampled points)."""
    count = len(heads)
    while count > 1 and logits_form(heads[count - 1]) is None:
        count -= 1
    return count


def takes_data_samples(head: nn.Module) -> bool:
    """Whether ``head.forward`` needs the batch's data samples (mmseg's ``MaskFormerHead`` /
    ``Mask2FormerHead``: mmdet's heads under them take ``batch_data_samples``)."""
    try:
        return 'batch_data_samples' in inspect.signature(head.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin forward
        return False


def seg_logits_recorder(model: nn.Module, side: str) -> Tuple[dict, Optional[str]]:
    """``(recorder config, what it reads)`` of ``model``'s per-pixel class logits (see the
    module docstring; what it reads is None for a plain ``decode_head.conv_seg``); a
    ValueError naming the head type and what to do when it has none.

    Args:
        model (nn.Module): A built mmseg segmentor.
        side (str): ``'student'`` or ``'teacher'``, for the note and errors.
    """
    heads = decode_heads(model)
    if heads is None:
        top = [n for n, _ in model.named_children()]
        raise ValueError(f'the {side} ({type(model).__name__}) has no decode_head (an mmseg '
                         f'segmentor\'s decode head); its top-level modules: {top}.')
    last = heads_to_run(heads) - 1
    head, form = heads[last], logits_form(heads[last])
    cascade = len(heads) > 1
    prefix = f'decode_head.{last}' if cascade else 'decode_head'
    name = type(head).__name__
    if form is None:
        raise ValueError(
            f"the {side}'s decode head ({name}) gives no per-pixel class map that mmkd can "
            'read: it has no conv_seg (the classifier of mmseg\'s BaseDecodeHead) and is none '
            'of the mask-classification heads (MaskFormerHead, Mask2FormerHead, '
            'IterativeDecodeHead, SegmenterMaskTransformerHead). Distill its features '
            "instead (on='backbone', or on='neck' where it has one), or record the module or "
            'method that returns its logits with the explicit form (student_recorders, '
            'teacher_recorders, distill_losses, loss_forward_mappings).')
    notes = []
    if cascade:
        notes.append(f'{name}, the last of the {len(heads)} cascade decode heads that '
                     'classifies every pixel')
        if last < len(heads) - 1:
            skipped = ', '.join(type(h).__name__ for h in heads[last + 1:])
            notes.append(f'{skipped} after it classifies sampled points only')
    if form == 'conv_seg':
        cfg = (CONV_SEG if not cascade else
               dict(type='ModuleOutputsRecorder', source=f'{prefix}.conv_seg'))
        where = f'{prefix}.conv_seg'
    else:
        cfg = dict(type='DecodeHeadLogitsRecorder', source=f'{prefix}.forward', form=form)
        where = f'{prefix}.forward'
        notes.append({
            'query_masks': f"{name} classifies queries: the last layer's softmax(class scores)"
                           '[..., :-1] x sigmoid(mask logits) summed over the queries, as its '
                           'predict forms them (at the masks\' resolution), read as their log',
            'last_stage': f"{name}'s last stage, which its predict uses",
            'map': f"{name}'s per-class masks, which its predict uses as the logits"}[form])
    return dict(cfg), (f"{where} ({'; '.join(notes)})" if notes else None)


def auxiliary_heads(model: nn.Module) -> List[nn.Module]:
    """The segmentor's auxiliary heads in order (mmseg's ``auxiliary_head``: one head or an
    ``nn.ModuleList``); empty without."""
    head = getattr(model, 'auxiliary_head', None)
    if head is None:
        return []
    return list(head) if isinstance(head, nn.ModuleList) else [head]


def aux_logits_recorder(model: nn.Module, side: str) -> Tuple[dict, Optional[str]]:
    """``(recorder config, what it reads)`` of the class logits of ``model``'s auxiliary head
    (its ``conv_seg``; of several, the first: mmseg trains each on the same labels), a
    ValueError naming the fix without one."""
    heads = auxiliary_heads(model)
    with_conv = [i for i, h in enumerate(heads) if isinstance(getattr(h, 'conv_seg', None),
                                                             nn.Module)]
    if not with_conv:
        what = ('no auxiliary_head' if not heads else 'auxiliary heads without a conv_seg '
                f'classifier ({", ".join(type(h).__name__ for h in heads)})')
        raise ValueError(f'the {side} ({type(model).__name__}) has {what}: auxiliary logits '
                         "need an mmseg auxiliary head on both models. Distill the decode "
                         "head's logits only (on='seg_logits').")
    if len(heads) == 1:
        return dict(type='ModuleOutputsRecorder', source='auxiliary_head.conv_seg'), None
    source = f'auxiliary_head.{with_conv[0]}.conv_seg'
    return (dict(type='ModuleOutputsRecorder', source=source),
            f'{source} (the first of {len(heads)} auxiliary heads)')


def seg_feat_recorder(model: nn.Module, side: str) -> Tuple[dict, Optional[str]]:
    """``(recorder config, what it reads)`` of the feature ``model``'s decode head classifies:
    the input of the ``conv_seg`` that :func:`seg_logits_recorder` reads (after the head's
    dropout in training), a ValueError naming the fix where the head has no per-pixel
    classifier (mask-classification heads)."""
    cfg, read = seg_logits_recorder(model, side)
    if cfg['type'] != 'ModuleOutputsRecorder':
        raise ValueError(f"the {side}'s decode head ({read}) has no per-pixel classifier "
                         '(conv_seg) whose input feature could be read. Distill its logits '
                         "(on='seg_logits') or its backbone (on='backbone').")
    where = cfg['source']
    return (dict(type='ModuleInputsRecorder', source=where),
            None if where == CONV_SEG['source'] else f'the input of {where}')
