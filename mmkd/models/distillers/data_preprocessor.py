"""Normalises one batch for the student and, for each teacher trained differently, for it."""
from typing import Dict

from mmengine.model import BaseDataPreprocessor
from torch import nn


class DistillDataPreprocessor(BaseDataPreprocessor):
    """Runs the student's data preprocessor, and each teacher's own where it differs.

    A teacher trained with other mean/std or padding needs its own preprocessing of the same
    raw batch. It receives copies of the data samples so that the preprocessors' metainfo
    (``batch_input_shape``, padded ground truth) never leaks between the models. A teacher whose
    preprocessor is configured like the student's is left out of ``teachers`` and reads the
    student's output.

    Args:
        student (BaseDataPreprocessor): The student's preprocessor.
        teachers (dict): ``{teacher name: its preprocessor}`` for the teachers that preprocess
            differently (empty when none does).

    Returns (training): ``dict(inputs, data_samples[, teacher_inputs, teacher_data_samples])``,
    the last two ``{teacher name: ...}`` of the teachers in ``teachers``. Outside training only
    the student's data is produced.
    """

    def __init__(self, student: BaseDataPreprocessor, teachers: Dict[str, BaseDataPreprocessor]):
        super().__init__()
        self.student = student
        self.teachers = nn.ModuleDict(teachers)

    def forward(self, data: dict, training: bool = False) -> dict:
        teacher_data = {}
        if training:
            teacher_data = {name: preprocessor(self._copy_batch(data), training)
                            for name, preprocessor in self.teachers.items()}
        out = dict(self.student(data, training))
        if teacher_data:
            out['teacher_inputs'] = {name: d['inputs'] for name, d in teacher_data.items()}
            out['teacher_data_samples'] = {name: d.get('data_samples')
                                           for name, d in teacher_data.items()}
        return out

    @staticmethod
    def _copy_batch(data: dict) -> dict:
        data = dict(data)
        samples = data.get('data_samples')
        if isinstance(samples, (list, tuple)):
            data['data_samples'] = [s.clone() if hasattr(s, 'clone') else s for s in samples]
        return data
