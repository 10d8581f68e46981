"""Run a built model once on a dummy batch to learn the shapes of what recipes would record.

Recipes (:mod:`.recipes`) pair student and teacher tensors by stride and choose connectors
from their channels and sizes, which only a forward pass tells for any mmdet / mmseg model
(a Swin backbone's levels, a DINO neck's extra level, a SegFormer's stride-4 logits). The
probe runs that pass once, when the distiller is built:

* at the **training input size**: the ``input_size`` given to the distiller, else the one the
  student's config trains at (see :func:`training_input_size`), else
  :data:`DEFAULT_INPUT_SIZE` with a note in the log; each side then pads it as its own data
  preprocessor does (``pad_size_divisor`` / ``size_divisor``), as it will in training;
* on one all-zero image in eval mode under ``no_grad``, with the model's weights swapped for
  ``meta`` stand-ins (shapes without arithmetic: a COCO-size X101 costs milliseconds and no
  memory); a model whose forward needs real data (an op without a meta kernel, a branch on
  a value) is probed with real tensors on its device instead;
* with the same recorders the distiller uses (:mod:`mmkd.models.recorders`), attached for the
  pass and detached after it. Every module's train / eval flag and torch's random state are
  restored, so a distiller built from recipes is initialised exactly as the same wiring
  written out (BN statistics are not touched in eval mode).
"""
import contextlib
import math
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmkd.registry import build_component
from .teacher_runner import forward_to_head, reads_auxiliary_heads

try:  # swaps a module's tensors for the duration of a call (torch.func.functional_call's core)
    from torch.nn.utils.stateless import _reparametrize_module
except ImportError:  # pragma: no cover - a torch without it probes with real tensors
    _reparametrize_module = None

#: (H, W) of the dummy image when neither ``input_size`` nor the student's config gives one.
DEFAULT_INPUT_SIZE = (256, 256)
#: Transforms whose ``scale`` / ``scales`` set the image size (mmcv / mmdet / mmseg names).
RESIZE_TRANSFORMS = ('Resize', 'RandomResize', 'RandomChoiceResize', 'FixShapeResize')
CROP_TRANSFORMS = ('RandomCrop', 'RandomCenterCropPad')


def as_size(value, what: str = 'input_size') -> Tuple[int, int]:
    """An int or an (H, W) pair as ``(H, W)``; a TypeError / ValueError otherwise."""
    if isinstance(value, bool):
        raise TypeError(f'{what} must be an int or (H, W), got {value!r}.')
    if isinstance(value, int):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise TypeError(f'{what} must be an int or (H, W) of ints, got {value!r}.')
    if min(value) < 1:
        raise ValueError(f'{what} must be positive, got {value!r}.')
    return int(value[0]), int(value[1])


def training_input_size(source_cfg, model_cfg,
                        role: str = 'student') -> Optional[Tuple[Tuple[int, int], str]]:
    """``((H, W), where it comes from)`` of the images a config trains on, or None.

    Read, in order: the model's ``data_preprocessor.size`` (mmseg's fixed padded size, e.g. the
    crop size), then the training pipeline of ``source_cfg`` (``train_dataloader.dataset``,
    through dataset wrappers, or ``train_pipeline``): the largest ``scale`` of its resize
    transforms (``(w, h)`` as mmcv writes it; with ``keep_ratio`` this is the largest image
    the pipeline makes), cut to the ``crop_size`` of a crop that follows.
    """
    preprocessor = (model_cfg or {}).get('data_preprocessor') or {}
    if preprocessor.get('size'):
        return (as_size(tuple(preprocessor['size']), 'data_preprocessor.size'),
                f"the {role}'s data_preprocessor.size")
    if source_cfg is None:
        return None
    pipeline = None
    dataset = (source_cfg.get('train_dataloader') or {}).get('dataset')
    for _ in range(4):  # ConcatDataset / RepeatDataset / ... wrap the dataset that has it
        if not isinstance(dataset, dict):
            break
        if dataset.get('pipeline'):
            pipeline = dataset['pipeline']
            break
        inner = dataset.get('dataset', dataset.get('datasets'))
        dataset = inner[0] if isinstance(inner, (list, tuple)) and inner else inner
    pipeline = pipeline or source_cfg.get('train_pipeline')
    size = None
    for transform in _flatten(pipeline or []):
        kind = str(transform.get('type', '')).split('.')[-1]
        if kind in RESIZE_TRANSFORMS:
            scales = transform.get('scale', transform.get('scales'))
            wh = _largest_scale(scales)
            if wh is not None:
                size = (wh[1], wh[0])
        elif kind in CROP_TRANSFORMS and transform.get('crop_size') and size is not None:
            crop = as_size(tuple(transform['crop_size']), 'crop_size')
            size = (min(size[0], crop[0]), min(size[1], crop[1]))
    if size is None:
        return None
    return size, f"the {role}'s training pipeline"


def _flatten(pipeline):
    for transform in pipeline:
        if not isinstance(transform, dict):
            continue
        yield transform
        for key in ('transforms', 'transform'):  # RandomChoice / RandomApply / TestTimeAug
            inner = transform.get(key)
            if isinstance(inner, dict):
                yield from _flatten([inner])
            elif isinstance(inner, (list, tuple)):
                for item in inner:
                    yield from _flatten(item if isinstance(item, (list, tuple)) else [item])


def _largest_scale(scales) -> Optional[Tuple[int, int]]:
    """The largest (w, h) of an mmcv ``scale``: an int, a (w, h) pair or a list of pairs."""
    if isinstance(scales, (int, float)) and not isinstance(scales, bool):
        return int(scales), int(scales)
    if not isinstance(scales, (list, tuple)) or not scales:
        return None
    if all(isinstance(s, (int, float)) for s in scales) and len(scales) == 2:
        return int(scales[0]), int(scales[1])
    pairs = [_largest_scale(s) for s in scales]
    pairs = [p for p in pairs if p is not None]
    if not pairs:
        return None
    return max(p[0] for p in pairs), max(p[1] for p in pairs)


def choose_input_size(input_size, sides) -> Tuple[Tuple[int, int], str]:
    """``((H, W), where it comes from)`` of the probe's image, before padding.

    Args:
        input_size (int | tuple, optional): The distiller's ``input_size``; wins when given.
        sides (list): ``(role, source Config or None, model config)`` of the student, then
            the teacher: the first whose training size :func:`training_input_size` finds.
    """
    if input_size is not None:
        return as_size(input_size), 'input_size'
    for role, source_cfg, model_cfg in sides:
        found = training_input_size(source_cfg, model_cfg, role)
        if found is not None:
            return found
    return DEFAULT_INPUT_SIZE, ('a default: no size found in the student\'s or the teacher\'s '
                                'config; set the Distiller\'s input_size=(H, W) to the training '
                                'size')


def padded_size(size: Tuple[int, int], model: nn.Module) -> Tuple[int, int]:
    """``size`` padded as ``model``'s data preprocessor pads: to its fixed ``size`` (mmseg),
    then to a multiple of its size divisor, if it has them.

    Example:
        >>> from types import SimpleNamespace
        >>> model = SimpleNamespace(data_preprocessor=SimpleNamespace(
        ...     size=(512, 512), size_divisor=None))
        >>> padded_size((100, 700), model)
        (512, 700)
    """
    preprocessor = getattr(model, 'data_preprocessor', None)
    fixed = getattr(preprocessor, 'size', None)
    if fixed:
        size = (max(size[0], fixed[0]), max(size[1], fixed[1]))
    divisor = (getattr(preprocessor, 'pad_size_divisor', None)
               or getattr(preprocessor, 'size_divisor', None) or 1)
    return tuple(int(math.ceil(s / divisor) * divisor) for s in size)


def probe(model: nn.Module, recorders: Dict[str, dict], input_size: Tuple[int, int],
          owner: str, run_head: bool) -> Dict[str, object]:
    """What each recorder records in one forward of ``model`` on a zero image.

    Args:
        model (nn.Module): A built mmdet detector or mmseg segmentor.
        recorders (dict): ``{name: recorder config}`` (as in ``student_recorders``).
        input_size (tuple): (H, W) of the image, already padded.
        owner (str): ``'student'`` or ``'teacher'``, for errors.
        run_head (bool): Run up to the head's raw outputs (``_forward``, or
            :func:`.teacher_runner.forward_to_head` for the mmseg heads it cannot run, with
            dummy data samples of the image's size) instead of backbone and neck only
            (``extract_feat``).

    Returns:
        dict: ``{name: the recorder's first record}`` (tensors of batch size 1).
    """
    built = {name: build_component(cfg) for name, cfg in recorders.items()}
    # a recorder on an auxiliary head: run them too (the 'tensor' forward does not)
    auxiliary = reads_auxiliary_heads(recorders.values())
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device('cpu')
    training = {module: module.training for module in model.modules()}

    def forward(on_meta: bool) -> None:
        image = torch.zeros((1, 3) + tuple(input_size),
                            device='meta' if on_meta else device)
        for recorder in built.values():
            recorder.reset()
        with torch.random.fork_rng(devices=[]), torch.no_grad(), meta_weights(model, on_meta):
            if run_head:
                forward_to_head(model, image, auxiliary=auxiliary)
            else:
                model.extract_feat(image)

    try:
        for recorder in built.values():
            recorder.attach(model, owner)
            recorder.recording = True
        model.eval()
        try:
            forward(on_meta=True)
        except Exception:  # an op without a meta kernel, or data-dependent code: compute
            if device.type == 'meta':
                raise
            forward(on_meta=False)
        return {name: recorder.get_record_data() for name, recorder in built.items()}
    finally:
        for recorder in built.values():
            recorder.detach()
        for module, mode in training.items():
            module.training = mode


@contextlib.contextmanager
def meta_weights(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, ``model``'s parameters and buffers are stand-ins on the ``meta``
    device (shapes without data or arithmetic), so a forward pass at a large training size
    costs neither time nor memory; the real tensors are back afterwards."""
    if not enabled or _reparametrize_module is None:
        if enabled:
            raise NotImplementedError('this torch has no stateless reparametrisation')
        yield
        return
    stand_ins = {name: torch.empty_like(tensor, device='meta') for name, tensor in
                 list(model.named_parameters()) + list(model.named_buffers())
                 if tensor.device.type != 'meta'}
    with _reparametrize_module(model, stand_ins):
        yield


def shape_of(value) -> Optional[Sequence[int]]:
    """(C, H, W) of a (1, C, H, W) tensor, None for anything else."""
    if isinstance(value, Tensor) and value.dim() == 4:
        return tuple(value.shape[1:])
    return None
