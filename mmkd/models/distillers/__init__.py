from .data_preprocessor import DistillDataPreprocessor
from .distiller import Distiller
from .model_config import drop_pretrained_init, get_num_classes, resolve_model_cfg

__all__ = ['Distiller', 'DistillDataPreprocessor', 'resolve_model_cfg', 'drop_pretrained_init',
           'get_num_classes']
