from .loops import DistillValLoop
from .optim_constructor import DistillOptimWrapperConstructor
from .optim_wrappers import CPUAmpOptimWrapper
from .preflight import check_annotation_files

__all__ = [
    'DistillValLoop', 'CPUAmpOptimWrapper', 'DistillOptimWrapperConstructor',
    'check_annotation_files'
]
