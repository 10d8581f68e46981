from .checkpoint import load_checkpoint_file, load_teacher_weights, strip_prefix
from .names import closest_names, get_submodule_or_raise

__all__ = ['load_checkpoint_file', 'load_teacher_weights', 'strip_prefix', 'closest_names',
           'get_submodule_or_raise']
