"""A distillation config's teacher and student, and their layers' outputs, for the scripts in
``tools/analysis/`` (CKA maps, feature maps, loss balance).

:func:`load_analysis_config` applies a command line's overrides, :func:`build_distiller`
builds the Distiller as the Runner would initialise it (teacher from ``teacher_ckpt``, student
from its ``init_cfg``, seeded), :func:`load_student_weights` puts a distilled (or exported)
student in it. Layers are named as on the tools' command lines: a module name
(``backbone.layer3``) or a module and an output index (``neck.0``: the first FPN level); a
module with several outputs and no index (``neck``) stands for all of them
(:func:`resolve_layers`, :func:`record_features`).
"""
import copy
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import MMLogger, print_log
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed
from torch import Tensor, nn

from mmkd.engine.runtime import load_config, set_data_root
from mmkd.models.recorders import RecorderManager
from mmkd.registry import MODELS
from mmkd.utils import get_submodule_or_raise, load_checkpoint_file

#: A resolved layer: (display name, module name, output index or None).
Layer = Tuple[str, str, Optional[int]]
#: Modules ``extract_feat`` runs through: layers in them need no head forward.
FEATURE_MODULES = ('backbone', 'neck', 'data_preprocessor')


# ---------------------------------------------------------------------- config and models
def quiet_logs() -> None:
    """Keep mmengine's INFO messages (e.g. the init_weights report of every parameter) off
    the terminal: a fresh current logger at WARNING level."""
    MMLogger.get_instance('mmkd_analysis', log_level='WARNING')


def load_analysis_config(config: str, cfg_options=None, teacher_ckpt=None, data_root=None):
    """The distillation config with the command line's overrides applied."""
    cfg = load_config(config, cfg_options)
    if teacher_ckpt:
        cfg.model.teacher_ckpt = teacher_ckpt
    if data_root:
        set_data_root(cfg, data_root)
    return cfg


def build_distiller(cfg, device: str = 'cpu') -> nn.Module:
    """The config's Distiller in eval mode, student initialised as the Runner would.

    The teacher holds ``teacher_ckpt``; the student gets its config's ``init_cfg`` via
    ``init_weights()``, seeded with ``cfg.randomness.seed`` (0 when unset).
    """
    if cfg.model.get('type') not in ('Distiller', 'mmkd.Distiller'):
        raise ValueError(f"{cfg.filename}: model type is {cfg.model.get('type')!r}, not a "
                         'Distiller; these tools compare the teacher and student of a '
                         'distillation config.')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    set_random_seed((cfg.get('randomness') or {}).get('seed') or 0)
    distiller = MODELS.build(copy.deepcopy(cfg.model))
    distiller.init_weights()  # skips the teacher, which holds its checkpoint
    return distiller.to(device).eval()


def load_student_weights(distiller: nn.Module, checkpoint: str) -> None:
    """Load a distillation checkpoint (``student.*`` keys; the teacher is refilled from
    ``teacher_ckpt`` by the Distiller) or a plain student checkpoint into ``distiller``."""
    state = load_checkpoint_file(checkpoint)
    state = state.get('state_dict', state)
    if not any(key.startswith('student.') for key in state):  # an exported student
        target, state, owner = distiller.student, state, 'the student'
    else:
        target, owner = distiller, 'the distiller'
    result = target.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith('teachers.')]
    if missing:
        raise ValueError(f'{checkpoint!r} does not fit {owner} of this config: {len(missing)} '
                         f'weights are missing from it, e.g. {missing[:5]}. Is it a checkpoint '
                         'of this distillation config (or of its exported student)?')
    if result.unexpected_keys:
        print_log(f'{checkpoint!r} has {len(result.unexpected_keys)} keys {owner} does not use, '
                  f'e.g. {result.unexpected_keys[:5]}', logger='current', level=30)
    distiller.eval()


def resolve_layers(model: nn.Module, names: Sequence[str], owner: str) -> List[Layer]:
    """``names`` as (name, module, output index); a wrong name raises a KeyError that lists
    the closest valid module names."""
    layers = []
    for name in names:
        module_name, index = name, None
        try:
            get_submodule_or_raise(model, name, owner)
        except KeyError:
            head, _, tail = name.rpartition('.')
            if not (tail.isdigit() and _has_module(model, head)):
                raise
            module_name, index = head, int(tail)  # 'neck.0': output 0 of the neck
        layers.append((name, module_name, index))
    return layers


def _has_module(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


@torch.no_grad()
def record_features(model: nn.Module, layers: Sequence[Layer], batch: dict) -> Dict[str, Tensor]:
    """Run ``model`` on one dataloader batch and return ``{layer name: output tensor}``.

    The model's own data preprocessor prepares the batch. Only backbone / neck layers stop
    the forward at ``extract_feat``; others run the ``'tensor'`` forward (up to the head). A
    layer with several outputs and no index is split into ``name.0``, ``name.1`` ...
    """
    manager = RecorderManager({module: dict(type='ModuleOutputsRecorder', source=module)
                               for module in dict.fromkeys(m for _, m, _ in layers)})
    manager.attach(model, 'model')
    try:
        data = model.data_preprocessor(batch, False)
        with manager.recording():
            if hasattr(model, 'extract_feat') and all(
                    m.split('.')[0] in FEATURE_MODULES for _, m, _ in layers):
                model.extract_feat(data['inputs'])
            else:
                model(data['inputs'], data['data_samples'], mode='tensor')
        features = OrderedDict()
        for name, module, index in layers:
            output = manager.get_record_data(module, 0)
            if isinstance(output, (list, tuple)):
                if index is not None:
                    if index >= len(output):
                        raise IndexError(f'{name!r}: {module!r} gives {len(output)} outputs, '
                                         f'so the index must be < {len(output)}.')
                    features[name] = output[index]
                else:
                    features.update((f'{name}.{i}', o) for i, o in enumerate(output))
            elif index is None:
                features[name] = output
            else:
                raise TypeError(f'{name!r}: {module!r} gives one {type(output).__name__}, '
                                f'not several outputs; use {module!r}.')
        for name, value in features.items():
            if not isinstance(value, Tensor):
                raise TypeError(f'Layer {name!r} gives a {type(value).__name__}, not a tensor: '
                                'name a module (or output) that returns a feature map.')
        return features
    finally:
        manager.detach()


# ---------------------------------------------------------------------- figures
def save_figure(fig, out: str, suptitle: str = '') -> None:
    """Title, write (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt
    if suptitle:
        fig.suptitle(suptitle)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
