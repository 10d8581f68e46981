"""Validation that can also report the (frozen) teacher's metrics next to the student's."""
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import ValLoop
from mmengine.runner.loops import _parse_losses
from torch.utils.data import DataLoader

from mmkd.registry import LOOPS


@LOOPS.register_module()
class DistillValLoop(ValLoop):
    """mmengine's ``ValLoop`` (which evaluates the student) plus optional teacher metrics.

    The teacher is frozen, so its metrics are computed once, at the first validation, and
    reported again each time under ``teacher/<metric>`` (with several teachers, each
    under ``teacher.<name>/<metric>``). They are added after the student's
    metrics, so ``save_best='auto'`` (the first metric) and any student metric name keep
    selecting checkpoints by the student.

    Args:
        evaluate_teacher (bool): Also evaluate the teacher. Defaults to False.
    """

    def __init__(self, runner, dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Dict, List], fp16: bool = False,
                 evaluate_teacher: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self.evaluate_teacher = evaluate_teacher
        self._teacher_metrics: Optional[dict] = None

    def run(self) -> dict:
        """mmengine's ``ValLoop.run`` with the teacher's metrics appended."""
        if self.evaluate_teacher and self._teacher_metrics is None:
            self._teacher_metrics = self._evaluate_teacher()
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        self.runner.model.eval()
        self.val_loss.clear()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        if self.val_loss:
            metrics.update(_parse_losses(self.val_loss, 'val'))
        if self._teacher_metrics is not None:
            metrics.update(self._teacher_metrics)
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    @torch.no_grad()
    def _evaluate_teacher(self) -> dict:
        """``{'teacher/<metric>': value}``; with several teachers ``teacher.<name>/<metric>``."""
        model = self.runner.model.module if is_model_wrapper(self.runner.model) else self.runner.model
        metrics = {}
        for name, teacher in model.teachers.items():
            for data_batch in self.dataloader:
                outputs = teacher.val_step(data_batch)
                self.evaluator.process(data_samples=outputs, data_batch=data_batch)
            group = 'teacher' if len(model.teachers) == 1 else f'teacher.{name}'
            metrics.update({f'{group}/{k}': v for k, v in
                            self.evaluator.evaluate(len(self.dataloader.dataset)).items()})
        return metrics
