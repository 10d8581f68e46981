"""Record a submodule's outputs or inputs through forward hooks."""
from typing import Any, Optional

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from mmkd.registry import MODELS
from mmkd.utils import get_submodule_or_raise
from .base_recorder import BaseRecorder


@MODELS.register_module()
class ModuleOutputsRecorder(BaseRecorder):
    """Records the outputs of the submodule named ``source`` (e.g. ``'neck'``: the FPN levels).

    Args:
        source (str): Dotted module name as in ``model.named_modules()``.
        clone (bool): Give the model a copy of the outputs and keep the originals, so that an
            in-place operation after the module (mmcv's ``ConvModule`` applies an in-place
            ReLU to its norm's / conv's output) cannot change what was recorded; gradients
            reach the module through both. Defaults to False.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU())
        >>> recorder = ModuleOutputsRecorder('0')
        >>> recorder.attach(model)
        >>> recorder.recording = True
        >>> _ = model(torch.rand(1, 3, 5, 5))
        >>> recorder.get_record_data().shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(self, source: str, clone: bool = False):
        super().__init__(source)
        if not isinstance(clone, bool):
            raise TypeError(f'{type(self).__name__}: clone must be True or False, got {clone!r}.')
        self.clone = clone
        self._handle: Optional[RemovableHandle] = None
        #: Set by the distiller when a loss needs the gradient of the frozen teacher's task loss
        #: w.r.t. these outputs: they are replaced by detached leaves that require grad, so the
        #: backward pass stops here instead of running through the frozen backbone.
        self.outputs_as_grad_leaves = False

    def _attach(self, model: nn.Module) -> None:
        module = get_submodule_or_raise(model, self.source, self.owner)
        self._handle = module.register_forward_hook(self._hook)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module: nn.Module, inputs: tuple, outputs: Any) -> Any:
        if not self.recording:
            return None
        if self.outputs_as_grad_leaves:
            outputs = _as_grad_leaves(outputs)
        self._record(outputs)
        if self.clone:
            return _cloned(outputs)
        return outputs if self.outputs_as_grad_leaves else None  # a return value replaces


def _as_grad_leaves(outputs: Any) -> Any:
    if isinstance(outputs, Tensor):
        return outputs.detach().requires_grad_(True)
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_as_grad_leaves(o) for o in outputs)
    return outputs


def _cloned(outputs: Any) -> Any:
    if isinstance(outputs, Tensor):
        return outputs.clone()
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_cloned(o) for o in outputs)
    return outputs


@MODELS.register_module()
class ModuleInputsRecorder(ModuleOutputsRecorder):
    """Records the positional inputs of the submodule named ``source`` (a tuple per call)."""

    def __init__(self, source: str):
        super().__init__(source)

    def _hook(self, module: nn.Module, inputs: tuple, outputs: Any) -> None:
        if self.recording:
            self._record(inputs)
