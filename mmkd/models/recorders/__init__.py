from .base_recorder import BaseRecorder
from .decode_head_logits_recorder import DecodeHeadLogitsRecorder
from .method_outputs_recorder import (MethodArgumentsRecorder, MethodInputsRecorder,
                                      MethodOutputsRecorder)
from .module_recorders import ModuleInputsRecorder, ModuleOutputsRecorder
from .recorder_manager import RecorderManager

__all__ = ['BaseRecorder', 'ModuleOutputsRecorder', 'ModuleInputsRecorder',
           'MethodOutputsRecorder', 'MethodInputsRecorder', 'MethodArgumentsRecorder',
           'DecodeHeadLogitsRecorder', 'RecorderManager']
