"""mmkd: knowledge distillation for mmdet detectors and mmseg segmentors."""
from .utils.checkpoint import register_checkpoint_io
from .version import __version__

# Reading full checkpoints on torch >= 2.6 and writing them atomically (see the module).
register_checkpoint_io()

__all__ = ['__version__']
