"""Record what a method of one submodule returns (e.g. a head's ``forward`` or ``loss_by_feat``),
or what it was called with."""
import functools
import inspect
from typing import Optional

from torch import nn

from mmkd.registry import MODELS
from mmkd.utils import closest_names, get_submodule_or_raise
from .base_recorder import BaseRecorder


@MODELS.register_module()
class MethodOutputsRecorder(BaseRecorder):
    """Records the return value of ``<module>.<method>`` on one model instance.

    Unlike MMRazor's method recorder, which patches the class (so a teacher and a student of
    the same class record into each other's buffers, and the patch can never be undone), this
    wraps the bound method of one instance only and restores it in :meth:`detach`.

    Args:
        source (str): ``'<dotted module name>.<method name>'``, e.g. ``'bbox_head.forward'`` or
            ``'decode_head.cls_seg'``. A bare method name means a method of the model itself.
    """

    def __init__(self, source: str):
        super().__init__(source)
        module_name, _, method_name = source.rpartition('.')
        self.module_name, self.method_name = module_name, method_name
        self._module: Optional[nn.Module] = None

    def _attach(self, model: nn.Module) -> None:
        module = get_submodule_or_raise(model, self.module_name, self.owner)
        original = getattr(module, self.method_name, None)
        if not callable(original):
            methods = [m for m in dir(module) if not m.startswith('_')
                       and callable(getattr(type(module), m, None))]
            raise KeyError(f'{self.owner} module {self.module_name or "<root>"!r} '
                           f'({type(module).__name__}) has no method {self.method_name!r}. '
                           f'Closest: {closest_names(self.method_name, methods)}.')

        @functools.wraps(original)
        def recorded(*args, **kwargs):
            outputs = original(*args, **kwargs)
            if self.recording:
                self._record(self._data(args, kwargs, outputs))
            return outputs

        # An instance attribute shadows the class method for this module only.
        setattr(module, self.method_name, recorded)
        self._module = module

    def detach(self) -> None:
        if self._module is not None:
            delattr(self._module, self.method_name)
            self._module = None

    def _data(self, args: tuple, kwargs: dict, outputs):
        return outputs


@MODELS.register_module()
class MethodInputsRecorder(MethodOutputsRecorder):
    """Records the positional arguments of ``<module>.<method>`` on one model instance.

    E.g. ``MethodInputsRecorder(source='roi_head._bbox_forward')`` records the student's
    ``(features, rois)``: the RoIs it sampled, on which the teacher's RoI head can be replayed
    (the distiller's ``teacher_replays``).
    """

    def _data(self, args: tuple, kwargs: dict, outputs):
        return args


@MODELS.register_module()
class MethodArgumentsRecorder(MethodOutputsRecorder):
    """Records the arguments of ``<module>.<method>`` by parameter name, positional and keyword
    alike (a dict; ``**kwargs`` merged in), on one model instance.

    mmdet's DETRs call their transformer stages with keywords (``forward_decoder(**inputs)``),
    which :class:`MethodInputsRecorder` does not see. E.g.
    ``MethodArgumentsRecorder(source='forward_decoder')`` on a DINO records ``memory``,
    ``memory_mask``, ``spatial_shapes``, ``level_start_index``, ``valid_ratios`` ...: the
    encoder context on which the Distiller's ``distill_points`` run the decoder again.

    Example:
        >>> import torch
        >>> class Model(torch.nn.Module):
        ...     def stage(self, x, scale=1.0, **extra):
        ...         return x * scale
        >>> model = Model()
        >>> recorder = MethodArgumentsRecorder('stage')
        >>> recorder.attach(model)
        >>> recorder.recording = True
        >>> _ = model.stage(torch.ones(2), scale=3.0, mask=None)
        >>> sorted(recorder.get_record_data())
        ['mask', 'scale', 'x']
    """

    def _attach(self, model: nn.Module) -> None:
        super()._attach(model)
        # the installed wrapper's __wrapped__: the bound method's own signature, without self
        self._signature = inspect.signature(getattr(self._module, self.method_name))

    def _data(self, args: tuple, kwargs: dict, outputs):
        named = {}
        for name, value in self._signature.bind(*args, **kwargs).arguments.items():
            if self._signature.parameters[name].kind == inspect.Parameter.VAR_KEYWORD:
                named.update(value)
            else:
                named[name] = value
        return named
