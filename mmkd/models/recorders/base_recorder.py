"""Recorders capture intermediate results of a model during its forward pass."""
from typing import Any, Callable, List, Optional

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
        #: Called with this recorder after each record (the teacher's early stop counts
        #: records with it, see ``mmkd/models/distillers/teacher_runner.py``); it may raise.
        self.on_record: Optional[Callable[['BaseRecorder'], None]] = None

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

    def _record(self, data: Any) -> None:
        """Keep one call's data, then tell :attr:`on_record`."""
        self.data_buffer.append(data)
        if self.on_record is not None:
            self.on_record(self)

    def get_record_data(self, record_idx: int = 0, data_idx=None) -> Any:
        """The ``record_idx``-th recorded call, or a part of it.

        ``data_idx`` selects inside the call's output: an int for a list / tuple (e.g. an FPN
        level), a str for a dict (e.g. ``'cls_score'``), or a list of those as a path (e.g.
        ``['bbox_targets', 0]``).
        """
        if not self.data_buffer:
            raise RuntimeError(
                f'{type(self).__name__}(source={self.source!r}) on the {self.owner} recorded '
                'nothing in this forward pass: the source did not run. For the teacher, a '
                "recorder on a head needs `teacher_forward_mode='tensor'` (the default 'auto' "
                'stops the teacher at the neck when only backbone/neck are recorded), and '
                'with teacher_early_stop=True the teacher stops after the last record a loss '
                'or replay reads, so a recorder read by none may record nothing.')
        if record_idx >= len(self.data_buffer):
            raise IndexError(f'{type(self).__name__}(source={self.source!r}) on the {self.owner} '
                             f'recorded {len(self.data_buffer)} call(s); record_idx={record_idx} '
                             'is out of range.')
        return select(self.data_buffer[record_idx], data_idx, f'{type(self).__name__}'
                      f'(source={self.source!r})')

    def __repr__(self) -> str:
        return f'{type(self).__name__}(source={self.source!r})'


def select(data: Any, data_idx, what: str = 'recorded data') -> Any:
    """``data[i][j]...`` for ``data_idx`` = None (all), an int / str, or a list of them."""
    path = [] if data_idx is None else (list(data_idx) if isinstance(data_idx, (list, tuple))
                                        else [data_idx])
    for key in path:
        if isinstance(key, str):
            if not isinstance(data, dict) or key not in data:
                keys = sorted(data) if isinstance(data, dict) else None
                raise KeyError(f'{what}: data_idx {key!r} needs a dict with that key; got '
                               f'{type(data).__name__}' + (f' with keys {keys}.' if keys else '.'))
        elif not isinstance(data, (list, tuple)):
            raise TypeError(f'{what} is a {type(data).__name__}, which cannot be indexed with '
                            f'data_idx={key!r}; remove data_idx.')
        elif key >= len(data):
            raise IndexError(f'{what} has {len(data)} outputs; data_idx={key} is out of range.')
        data = data[key]
    return data
