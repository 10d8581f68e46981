"""How the distiller combines its distillation losses ('paths') into the training loss."""
from typing import Dict, Optional, Sequence, Tuple

from torch import Tensor, nn


class BaseWeighting(nn.Module):
    """Combines the losses of several distillation paths.

    The distiller calls :meth:`bind` once, with the path names (the keys of
    ``distill_losses``) and the student, then every step :meth:`forward` with each path's
    loss (``loss_weight`` already applied by the loss) and the student's task loss.

    Subclasses return the weighted terms, which join the training loss, and each path's
    effective weight, which the distiller logs every iteration
    (``train/distill_weight.<path>`` in mmengine's log and visualizer backends).
    """

    def bind(self, paths: Sequence[str], student: nn.Module) -> None:
        self.paths = list(paths)

    def forward(self, losses: Dict[str, Tensor],
                task_loss: Optional[Tensor] = None
                ) -> Tuple[Dict[str, Tensor], Dict[str, float]]:
        raise NotImplementedError
