"""Record a submodule's outputs or inputs through forward hooks."""
from typing import Any, Optional

from torch import nn
from torch.utils.hooks import RemovableHandle

from mmkd.registry import MODELS
from mmkd.utils import get_submodule_or_raise
from .base_recorder import BaseRecorder


@MODELS.register_module()
class ModuleOutputsRecorder(BaseRecorder):
    """Records the outputs of the submodule named ``source`` (e.g. ``'neck'``: the FPN levels).

    Args:
        source (str): Dotted module name as in ``model.named_modules()``.

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

    def __init__(self, source: str):
        super().__init__(source)
        self._handle: Optional[RemovableHandle] = None

    def _attach(self, model: nn.Module) -> None:
        module = get_submodule_or_raise(model, self.source, self.owner)
        self._handle = module.register_forward_hook(self._hook)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module: nn.Module, inputs: tuple, outputs: Any) -> None:
        if self.recording:
            self.data_buffer.append(outputs)


@MODELS.register_module()
class ModuleInputsRecorder(ModuleOutputsRecorder):
    """Records the positional inputs of the submodule named ``source`` (a tuple per call)."""

    def _hook(self, module: nn.Module, inputs: tuple, outputs: Any) -> None:
        if self.recording:
            self.data_buffer.append(inputs)
