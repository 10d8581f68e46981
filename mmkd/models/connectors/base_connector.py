"""Connectors map a student tensor into the teacher's shape before a loss compares them."""
from typing import Optional

from mmengine.model import BaseModule
from torch import Tensor


class BaseConnector(BaseModule):
    """``forward(feature, target)``: ``target`` is the tensor ``feature`` is compared with.

    Most connectors ignore ``target``; shape-following ones (:class:`ResizeConnector`) read
    its size. Connectors are trained with the student and are dropped by
    ``tools/export_student.py``.
    """

    def forward(self, feature: Tensor, target: Optional[Tensor] = None) -> Tensor:
        raise NotImplementedError
