# mmdet's NumClassCheckHook, registered again to check a Distiller's student: loaded with the
# Distiller, before any Runner builds its hooks (mmkd/engine/student_hooks.py)
from mmkd.engine import student_hooks  # noqa: F401
from .data_preprocessor import DistillDataPreprocessor
from .distiller import Distiller
from .model_config import drop_pretrained_init, get_num_classes, resolve_model_cfg
from .stages import DistillStage, StageStep

__all__ = ['Distiller', 'DistillDataPreprocessor', 'resolve_model_cfg', 'drop_pretrained_init',
           'get_num_classes', 'DistillStage', 'StageStep']
