"""Record the per-pixel class logits of an mmseg decode head that has no ``conv_seg`` map."""
import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .method_outputs_recorder import MethodOutputsRecorder

#: What a decode head's ``forward`` returns, per ``form`` of :class:`DecodeHeadLogitsRecorder`.
FORMS = ('map', 'last_stage', 'query_masks')


@MODELS.register_module()
class DecodeHeadLogitsRecorder(MethodOutputsRecorder):
    """Records what a decode head's ``forward`` returns as per-pixel class logits
    ``(N, num_classes, H, W)``, formed as the head forms its prediction at inference, with
    the gradient kept (the student's head trains through it).

    ``form`` says what the forward returns:

    - ``'map'``: the map itself (Segmenter's ``SegmenterMaskTransformerHead``: one mask per
      class, which mmseg's ``predict`` resizes and uses as the logits);
    - ``'last_stage'``: a list of stage maps in training and the last one in eval (K-Net's
      ``IterativeDecodeHead``, whose ``predict`` uses the last stage): the last one;
    - ``'query_masks'``: class scores ``(..., Q, C + 1)`` and mask logits ``(..., Q, h, w)``
      per decoder layer (mmseg's ``MaskFormerHead`` / ``Mask2FormerHead``, a tensor or a list
      over layers): as their ``predict`` does, the last layer's
      ``einsum('bqc,bqhw->bchw', softmax(classes)[..., :-1], sigmoid(masks))``, at the masks'
      resolution (``predict`` first upsamples the mask logits to the padded image: the
      recorded map stays at 1/4 of the input, where it is paired by stride), recorded as
      ``log(max(scores, eps))`` in float32. The log, because the losses that read class
      logits (KD, CWD, DKD, TopKD, CKA) apply a softmax to them: the softmax of the logs is
      the scores normalised (over classes for KD, over pixels for CWD), so they compare the
      distribution of the scores the prediction is the argmax of; the clamp, because a
      score can be 0 (log -inf) where every query gives a class a zero probability.

    Args:
        source (str): The decode head's forward, ``'decode_head.forward'``.
        form (str): ``'map'``, ``'last_stage'`` or ``'query_masks'`` (see above).
        eps (float): The smallest score before the log (``'query_masks'`` only).
            Defaults to 1e-6.

    Example:
        >>> import torch
        >>> class Head(torch.nn.Module):  # 2 layers, 3 queries, 4 classes + background
        ...     def forward(self, x):
        ...         return [torch.zeros(1, 3, 5)] * 2, [torch.zeros(1, 3, 8, 8)] * 2
        >>> model = torch.nn.Module()
        >>> model.decode_head = Head()
        >>> recorder = DecodeHeadLogitsRecorder('decode_head.forward', form='query_masks')
        >>> recorder.attach(model)
        >>> recorder.recording = True
        >>> _ = model.decode_head(None)
        >>> logits = recorder.get_record_data()
        >>> logits.shape, round(float(logits.exp()[0, 0, 0, 0]), 4)  # 3 x 1/5 x 1/2
        (torch.Size([1, 4, 8, 8]), 0.3)
    """

    def __init__(self, source: str, form: str = 'map', eps: float = 1e-6):
        super().__init__(source)
        if form not in FORMS:
            raise ValueError(f'{type(self).__name__}: form must be one of {list(FORMS)}, got '
                             f'{form!r}.')
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps <= 0:
            raise ValueError(f'{type(self).__name__}: eps must be a positive number, got '
                             f'{eps!r}.')
        self.form = form
        self.eps = float(eps)

    def _data(self, args: tuple, kwargs: dict, outputs):
        return head_logits(outputs, self.form, self.eps, f'{self.owner} {self.source}')


def head_logits(outputs, form: str, eps: float = 1e-6, what: str = 'decode head') -> Tensor:
    """Per-pixel class logits from a decode head's ``forward`` outputs (see
    :class:`DecodeHeadLogitsRecorder` for the forms)."""
    if form == 'last_stage' and isinstance(outputs, (list, tuple)):
        outputs = outputs[-1]
    if form in ('map', 'last_stage'):
        if not isinstance(outputs, Tensor) or outputs.dim() != 4:
            raise TypeError(f'{what} returned {_kind(outputs)}, not the (N, C, H, W) class map '
                            f'form={form!r} reads.')
        return outputs
    if not (isinstance(outputs, (list, tuple)) and len(outputs) == 2):
        raise TypeError(f'{what} returned {_kind(outputs)}, not the (class scores, mask '
                        "logits) per decoder layer that form='query_masks' reads.")
    classes, masks = outputs[0][-1], outputs[1][-1]  # the last decoder layer
    if not (isinstance(classes, Tensor) and classes.dim() == 3 and isinstance(masks, Tensor)
            and masks.dim() == 4 and classes.shape[:2] == masks.shape[:2]):
        raise TypeError(f"{what}: form='query_masks' needs the last layer's class scores "
                        '(N, Q, C + 1) and mask logits (N, Q, h, w), got '
                        f'{_kind(classes)} and {_kind(masks)}.')
    scores = torch.einsum('bqc,bqhw->bchw', F.softmax(classes, dim=-1)[..., :-1],
                          masks.sigmoid())
    return scores.float().clamp(min=eps).log()


def _kind(value) -> str:
    if isinstance(value, Tensor):
        return f'a tensor of shape {tuple(value.shape)}'
    return f'a {type(value).__name__}'
