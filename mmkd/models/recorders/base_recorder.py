"""Recorders capture intermediate results of a model during its forward pass."""
from typing import Any, List, Optional

from torch import nn


class BaseRecorder:
    """Records one source of a model every time it runs, while recording is enabled.

    A recorder is bound to one model (teacher or student) by :meth:`attach`, which resolves
    ``source`` at build time (so a wrong name fails before training) and keeps every handle so
    :meth:`detach` can remove what it installed. Each call of the source appends one entry to
    :attr:`data_buffer`; :meth:`get_record_data` picks a call (``record_idx``) and an element of
    that call's output (``data_idx``, e.g. an FPN level).

    Args:
        source (str): What to record; its meaning depends on the subclass.
    """

    def __init__(self, source: str):
        if not isinstance(source, str):
            raise TypeError(f'{type(self).__name__}: `source` must be a str, got {source!r}')
        self.source = source
        self.data_buffer: List[Any] = []
        self.recording = False
        self.owner = 'model'

    def attach(self, model: nn.Module, owner: str = 'model') -> None:
        """Start watching ``model`` (``owner`` names it in errors, e.g. ``'student'``)."""
        self.owner = owner
        self._attach(model)

    def _attach(self, model: nn.Module) -> None:
        raise NotImplementedError

    def detach(self) -> None:
        """Remove everything :meth:`attach` installed."""
        raise NotImplementedError

    def reset(self) -> None:
        self.data_buffer.clear()

    def get_record_data(self, record_idx: int = 0, data_idx: Optional[int] = None) -> Any:
        """The ``record_idx``-th recorded call, or element ``data_idx`` of it."""
        if not self.data_buffer:
            raise RuntimeError(
                f'{type(self).__name__}(source={self.source!r}) on the {self.owner} recorded '
                'nothing in this forward pass: the source did not run. For the teacher, a '
                "recorder on a head needs `teacher_forward_mode='tensor'` (the default 'auto' "
                'stops the teacher at the neck when only backbone/neck are recorded).')
        if record_idx >= len(self.data_buffer):
            raise IndexError(f'{type(self).__name__}(source={self.source!r}) on the {self.owner} '
                             f'recorded {len(self.data_buffer)} call(s); record_idx={record_idx} '
                             'is out of range.')
        data = self.data_buffer[record_idx]
        if data_idx is None:
            return data
        if not isinstance(data, (list, tuple)):
            raise TypeError(f'{type(self).__name__}(source={self.source!r}) recorded a '
                            f'{type(data).__name__}, which cannot be indexed with '
                            f'data_idx={data_idx}; remove data_idx.')
        if data_idx >= len(data):
            raise IndexError(f'{type(self).__name__}(source={self.source!r}) recorded '
                             f'{len(data)} outputs; data_idx={data_idx} is out of range.')
        return data[data_idx]

    def __repr__(self) -> str:
        return f'{type(self).__name__}(source={self.source!r})'
