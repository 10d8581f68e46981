from .loops import DistillValLoop
from .optim_wrappers import CPUAmpOptimWrapper
from .preflight import check_annotation_files

__all__ = ['DistillValLoop', 'CPUAmpOptimWrapper', 'check_annotation_files']
