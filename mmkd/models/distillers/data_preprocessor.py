"""Normalises one batch for the student and, when the teacher was trained differently, for it."""
from typing import Optional

from mmengine.model import BaseDataPreprocessor


class DistillDataPreprocessor(BaseDataPreprocessor):
    """Runs the student's data preprocessor, and the teacher's too if it differs.

    A teacher trained with other mean/std or padding needs its own preprocessing of the same
    raw batch. It receives copies of the data samples so that the preprocessors' metainfo
    (``batch_input_shape``, padded ground truth) never leaks between the two models. When the
    two preprocessors are configured alike (``teacher=None``), the student's output is reused.

    Returns (training): ``dict(inputs, data_samples[, teacher_inputs, teacher_data_samples])``.
    Outside training only the student's data is produced.
    """

    def __init__(self, student: BaseDataPreprocessor, teacher: Optional[BaseDataPreprocessor]):
        super().__init__()
        self.student = student
        self.teacher = teacher

    def forward(self, data: dict, training: bool = False) -> dict:
        teacher_data = None
        if training and self.teacher is not None:
            teacher_data = self.teacher(self._copy_batch(data), training)
        out = dict(self.student(data, training))
        if teacher_data is not None:
            out['teacher_inputs'] = teacher_data['inputs']
            out['teacher_data_samples'] = teacher_data.get('data_samples')
        return out

    @staticmethod
    def _copy_batch(data: dict) -> dict:
        data = dict(data)
        samples = data.get('data_samples')
        if isinstance(samples, (list, tuple)):
            data['data_samples'] = [s.clone() if hasattr(s, 'clone') else s for s in samples]
        return data
