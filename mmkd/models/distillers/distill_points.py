r"""Distillation points (KD-DETR): the same queries run through the teacher's and the student's
DETR decoder, so that their predictions correspond one to one.

KD-DETR: Knowledge Distillation for Detection Transformer with Consistent Distillation Points
Sampling (Wang et al., CVPR 2024), https://arxiv.org/abs/2211.08071; published code (DAB-DETR):
``models/DAB_DETR/kd_transformer.py`` and ``kd_engine.py`` of
https://github.com/wennyuhey/KD-DETR.

**Why KD-DETR** (of the DETR-family methods the project considered: KD-DETR, D3ETR,
DETRDistill and CrossKD's Deformable-DETR variant): a DETR's queries carry no fixed meaning,
so the student's query :math:`i` and the teacher's query :math:`i` predict unrelated objects;
DETRDistill and D3ETR restore a correspondence by Hungarian matching of the two prediction
sets, which changes from step to step, needs the matching cost tuned, and leaves the unmatched
(background) predictions undistilled. KD-DETR removes the problem instead: it feeds one set of
*distillation points* to both decoders, each on its own encoder memory, so both answer the
same query by construction, and any number of points (foreground and background) can be
distilled. In mmdet 3.3 this needs only the detectors' public stages
(``forward_decoder``, ``bbox_head.forward``), the same code for DINO and two-stage Deformable
DETR, and no change to either model; CrossKD's DETR variant would run the teacher's decoder
layers on the student's hidden states, which requires equal widths and layer counts.

``distill_points=dict(kddetr=dict(teacher_points=300, random_points=300))`` in the Distiller:
at every step, after the student's own forward (its detection path is untouched: the points
run in decoder passes of their own, so they and the detection queries never attend to each
other), for every image of the batch

- **specific sampling** (the paper's): the reference boxes the teacher's decoder started from
  for its ``teacher_points`` highest-scoring queries (score: the maximum sigmoid class score of
  its last decoder layer; DINO's boxes are its encoder's top proposals);
- **general sampling**: ``random_points`` random boxes, each coordinate (cx, cy, w, h,
  normalised to the image) :math:`\sigma(u)`, :math:`u \sim \mathcal{N}(0, 1)`, drawn anew at
  every step and shared by the images of the batch (published: a fresh
  ``nn.Embedding(n, 4)``, initialised :math:`\mathcal{N}(0, 1)`, through DAB-DETR's sigmoid);

are decoded by each model, the two sets kept from attending to each other (the published code
runs one decoder call per set; DINO here runs one call with a self-attention mask between the
sets, as between its denoising groups, Deformable DETR one call per set), with no gradient for
the teacher and with gradient for the student (to its decoder, head, encoder and backbone).
Each model builds its decoder input from a box the way its own detector builds it from a
proposal: DINO's decoder derives the positional query from the box, and its content query is a
learned per-slot embedding with no meaning for another box, so the points' content queries are
zeros, for both models alike (DAB-DETR's content queries, which the published code used, are
zeros too); two-stage Deformable DETR derives content and positional query from the box's sine
embedding with its own ``pos_trans_fc`` (its ``pre_decoder``). The output of each side, read
by loss specs with ``recorder='kddetr'`` (``from_student=True`` for the student's, ``False``
for the teacher's):

- ``cls_scores``: (L, N, K, C) class logits of every decoder layer;
- ``bbox_preds``: (L, N, K, 4) boxes (normalised cx, cy, w, h) of every decoder layer;
- ``points``: (N, K, 4) the points themselves (the same tensor on both sides), the
  teacher-sampled first; K = ``teacher_points + random_points``.

The recorders this needs are added by themselves: ``<name>_decoder``
(``MethodArgumentsRecorder(source='forward_decoder')``, both models: the encoder memory,
masks, level shapes and valid ratios of this step) and, with ``teacher_points``,
``<name>_head`` on the teacher (``MethodOutputsRecorder(source='bbox_head.forward')``: its
scores, to choose its best queries).

Models: mmdet's ``DINO`` and ``DeformableDETR(as_two_stage=True)`` (with box refinement or
not), teacher and student alike, with equal class counts (checked by the losses). A
single-stage Deformable DETR's queries are learned embeddings whose reference points come from
the embedding itself, so it has no way to take a given box: it is refused at build.

Deviations from the published code: the published specific points are the teacher's learned
anchors (DAB-DETR), and their targets are the teacher's own predictions on them (its content
queries are zeros, so the teacher's detection pass *is* its pass on the points); here the
teacher decodes the chosen points again, since DINO's detection queries carry learned content
that the student cannot be given. The published random points are drawn once per step for the
whole batch, as here.
"""
import contextlib
from typing import Dict, List, Optional

import torch
from mmdet.models.detectors import DINO, DeformableDETR
from mmdet.models.layers.transformer import inverse_sigmoid
from torch import Tensor, nn

from .loss_inputs import PerSide
from .stages import STAGES, DistillStage, StageStep
from .teachers import DEFAULT_TEACHER

#: What the points' decoder passes take from the recorded ``forward_decoder`` call.
CONTEXT_KEYS = ('memory', 'memory_mask', 'spatial_shapes', 'level_start_index', 'valid_ratios')
KEYS = {'teacher_points', 'random_points'}


def random_points(num: int, num_images: int, device=None,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """``num`` random boxes (cx, cy, w, h), each coordinate sigmoid(N(0, 1)), the same for the
    ``num_images`` images: (num_images, num, 4).

    Example:
        >>> boxes = random_points(5, 2, generator=torch.Generator().manual_seed(0))
        >>> boxes.shape, bool((boxes > 0).all() and (boxes < 1).all()), bool(
        ...     torch.equal(boxes[0], boxes[1]))
        (torch.Size([2, 5, 4]), True, True)
    """
    boxes = torch.randn(num, 4, device=device, generator=generator).sigmoid()
    return boxes[None].expand(num_images, -1, -1)


def top_teacher_points(references: Tensor, logits: Tensor, num: int) -> Tensor:
    """Per image, the reference boxes of the ``num`` queries with the highest maximum class
    score: (N, Q, 4) boxes, (N, Q, C) logits -> (N, num, 4), best first.

    Example:
        >>> refs = torch.arange(12.).reshape(1, 3, 4)
        >>> logits = torch.tensor([[[0.0, 1.0], [5.0, -1.0], [2.0, 0.0]]])
        >>> top_teacher_points(refs, logits, 2)  # query 1 (score 5), then query 2 (score 2)
        tensor([[[ 4.,  5.,  6.,  7.],
                 [ 8.,  9., 10., 11.]]])
    """
    if references.shape[:2] != logits.shape[:2] or references.shape[-1] != 4:
        raise ValueError(f'distill_points: the teacher decoder started from references of shape '
                         f'{tuple(references.shape)} and scored {tuple(logits.shape)}: expected '
                         '(N, Q, 4) boxes for the same N, Q (a two-stage DETR).')
    order = logits.max(dim=-1).values.topk(num, dim=1).indices
    return references.gather(1, order[..., None].expand(-1, -1, 4))


def decoder_kind(model: nn.Module, owner: str) -> str:
    """``'dino'`` or ``'two_stage'`` (two-stage Deformable DETR); a ValueError otherwise."""
    if isinstance(model, DINO):
        return 'dino'
    if isinstance(model, DeformableDETR) and model.as_two_stage:
        return 'two_stage'
    raise ValueError(f'distill_points need DETRs that build their decoder queries from boxes: '
                     f"mmdet's DINO or DeformableDETR(as_two_stage=True); the {owner} is a "
                     f'{type(model).__name__}' + (' with as_two_stage=False (its reference points '
                                                  'come from learned query embeddings)' if
                                                  isinstance(model, DeformableDETR) else '') + '.')


def group_mask(sizes: List[int], device=None) -> Tensor:
    """A self-attention mask (True: may not attend, mmdet's convention) that keeps each group
    of consecutive queries to itself.

    Example:
        >>> group_mask([1, 2]).int()
        tensor([[0, 1, 1],
                [1, 0, 0],
                [1, 0, 0]], dtype=torch.int32)
    """
    group = torch.repeat_interleave(torch.arange(len(sizes), device=device),
                                    torch.tensor(sizes, device=device))
    return group[:, None] != group[None, :]


def decode_points(model: nn.Module, context: Dict[str, Tensor], points: Tensor,
                  groups: Optional[List[int]] = None) -> tuple:
    """``model``'s decoder and head on distillation ``points`` (N, K, 4), normalised cx, cy, w,
    h, over this step's encoder ``context`` (:data:`CONTEXT_KEYS` of its ``forward_decoder``
    call): ``(cls_scores (L, N, K, C), bbox_preds (L, N, K, 4))``. The queries are built from
    the points as the module docstring says; the model's own ``forward_decoder`` and
    ``bbox_head.forward`` run. ``groups`` (sizes of consecutive groups of points, summing to K)
    keeps each group from attending to the others: one decoder pass with a self-attention
    mask for DINO (as its denoising groups), one pass per group for Deformable DETR, whose
    ``forward_decoder`` takes no mask."""
    groups = list(groups or [points.shape[1]])
    if sum(groups) != points.shape[1]:
        raise ValueError(f'decode_points: groups {groups} do not add up to the '
                         f'{points.shape[1]} points.')
    inputs = {key: context[key] for key in CONTEXT_KEYS}
    if decoder_kind(model, 'model') == 'dino':
        query = points.new_zeros(*points.shape[:2], model.embed_dims)
        mask = group_mask(groups, points.device) if len(groups) > 1 else None
        inputs.update(query=query, reference_points=points, dn_mask=mask)
        decoded = model.forward_decoder(**inputs)
        return model.bbox_head.forward(decoded['hidden_states'], decoded['references'])
    outputs = []
    for part in points.split(groups, dim=1):
        # two-stage Deformable DETR's pre_decoder, from the points instead of its proposals
        embed = model.pos_trans_norm(model.pos_trans_fc(
            model.get_proposal_pos_embed(inverse_sigmoid(part))))
        query_pos, query = torch.split(embed, model.embed_dims, dim=2)
        decoded = model.forward_decoder(**inputs, query=query, query_pos=query_pos,
                                        reference_points=part)
        outputs.append(model.bbox_head.forward(decoded['hidden_states'], decoded['references']))
    return tuple(torch.cat(parts, dim=2) for parts in zip(*outputs))


@STAGES.register_module()
class DistillPoints(DistillStage):
    """Checks the distillation points at build, adds their recorders, runs both decoders on
    them and keeps their predictions per step (a :class:`~.stages.DistillStage` read on both
    sides: each output is a :class:`.PerSide`).

    Args:
        cfgs (dict, optional): ``{name: dict(teacher_points=300, random_points=300)}``.
        student (nn.Module): The student model.
        teacher (nn.Module, optional): The teacher model (frozen).
    """

    argument = 'distill_points'
    sides = ('student', DEFAULT_TEACHER)

    def __init__(self, cfgs: Optional[Dict[str, dict]], student: nn.Module,
                 teacher: Optional[nn.Module]):
        super().__init__(cfgs, student, teacher)
        self.counts: Dict[str, Dict[str, int]] = {}
        self.models = {'student': student, 'teacher': teacher}
        for name, cfg in self.cfgs.items():
            if not isinstance(cfg, dict) or set(cfg) - KEYS:
                raise KeyError(f'distill_points[{name!r}] takes {sorted(KEYS)} (the published '
                               f'300 and 300), got {cfg!r}.')
            counts = {key: cfg.get(key, 0) for key in sorted(KEYS)}
            for key, value in counts.items():
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise TypeError(f'distill_points[{name!r}].{key} must be an int >= 0, got '
                                    f'{value!r}.')
            if not sum(counts.values()):
                raise ValueError(f'distill_points[{name!r}] has no points: set teacher_points '
                                 'and / or random_points.')
            for side, model in self.models.items():
                decoder_kind(model, side)
            if counts['teacher_points'] > teacher.num_queries:
                raise ValueError(f"distill_points[{name!r}].teacher_points="
                                 f"{counts['teacher_points']}, but the teacher has only "
                                 f'{teacher.num_queries} queries.')
            self.counts[name] = counts

    def recorders(self, side: str) -> Dict[str, dict]:
        """The recorder configs to add on ``side`` (``'student'`` or ``'teacher'``)."""
        added = {}
        for name, counts in self.counts.items():
            added[f'{name}_decoder'] = dict(type='MethodArgumentsRecorder',
                                            source='forward_decoder')
            if side == 'teacher' and counts['teacher_points']:
                added[f'{name}_head'] = dict(type='MethodOutputsRecorder',
                                             source='bbox_head.forward')
        return added

    def reads(self) -> List[dict]:
        """Specs of every teacher record the points read (for the teacher's early stop)."""
        return [dict(from_student=False, recorder=recorder)
                for name in self.counts for recorder in self.recorders('teacher')
                if recorder.startswith(f'{name}_')]

    def run(self, step: StageStep) -> None:
        """Both decoders on this step's points (on ``step.recorders``); the teacher's pass
        runs under ``no_grad`` in its precision (``step.teacher_precision()``)."""
        recorders = step.recorders
        for name, counts in self.counts.items():
            contexts = {side: _one_record(recorders[side], f'{name}_decoder', side)
                        for side in self.models}
            memory = contexts['student']['memory']
            groups = []
            if counts['teacher_points']:
                head = _one_record(recorders['teacher'], f'{name}_head', 'teacher')
                groups.append(top_teacher_points(contexts['teacher']['reference_points'],
                                                 head[0][-1], counts['teacher_points']))
            if counts['random_points']:
                groups.append(random_points(counts['random_points'], memory.shape[0],
                                            memory.device))
            points = torch.cat(groups, dim=1).detach().float()
            sizes = [group.shape[1] for group in groups]
            outputs = PerSide()
            for side, model in self.models.items():
                with contextlib.ExitStack() as stack:
                    if side == 'teacher':
                        stack.enter_context(torch.no_grad())
                        stack.enter_context(step.teacher_precision())
                    cls_scores, bbox_preds = decode_points(model, contexts[side], points, sizes)
                outputs[side] = dict(cls_scores=cls_scores, bbox_preds=bbox_preds, points=points)
            self.outputs[name] = outputs


def _one_record(manager, recorder: str, side: str):
    records = manager[recorder].data_buffer
    if len(records) != 1:
        raise RuntimeError(f'distill_points: the {side} recorder {recorder!r} took '
                           f'{len(records)} records in this step; the {side} must run its '
                           'decoder (and head) once per step.')
    return records[0]
