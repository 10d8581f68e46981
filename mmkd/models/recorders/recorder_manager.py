"""A named set of recorders on one model, switched on only around a distillation forward."""
import contextlib
from typing import Dict, Iterator, Optional

from torch import nn

from mmkd.registry import build_component
from .base_recorder import BaseRecorder


class RecorderManager:
    """Builds recorders from configs, attaches them to one model and reads their data.

    Args:
        recorders (dict, optional): ``{name: recorder config}``, e.g.
            ``dict(fpn=dict(type='ModuleOutputsRecorder', source='neck'))``.
    """

    def __init__(self, recorders: Optional[Dict[str, dict]] = None):
        self.recorders: Dict[str, BaseRecorder] = {}
        for name, cfg in (recorders or {}).items():
            recorder = build_component(cfg) if isinstance(cfg, dict) else cfg
            if not isinstance(recorder, BaseRecorder):
                raise TypeError(f'Recorder {name!r} built a {type(recorder).__name__}, not a '
                                'recorder. Use ModuleOutputsRecorder, ModuleInputsRecorder or '
                                'MethodOutputsRecorder.')
            self.recorders[name] = recorder

    def attach(self, model: nn.Module, owner: str) -> None:
        for recorder in self.recorders.values():
            recorder.attach(model, owner)

    def detach(self) -> None:
        for recorder in self.recorders.values():
            recorder.detach()

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Record inside the block only; buffers start empty and keep the data afterwards."""
        self.reset()
        for recorder in self.recorders.values():
            recorder.recording = True
        try:
            yield
        finally:
            for recorder in self.recorders.values():
                recorder.recording = False

    def reset(self) -> None:
        for recorder in self.recorders.values():
            recorder.reset()

    def get_record_data(self, name: str, record_idx: int = 0, data_idx: Optional[int] = None):
        return self[name].get_record_data(record_idx, data_idx)

    def __getitem__(self, name: str) -> BaseRecorder:
        if name not in self.recorders:
            raise KeyError(f'No recorder named {name!r}; defined: {sorted(self.recorders)}.')
        return self.recorders[name]

    def __contains__(self, name: str) -> bool:
        return name in self.recorders

    def __iter__(self):
        return iter(self.recorders.values())
