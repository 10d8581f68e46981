from .loops import DistillValLoop
from .preflight import check_annotation_files

__all__ = ['DistillValLoop', 'check_annotation_files']
