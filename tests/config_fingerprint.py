"""What a distillation config resolves to, written down compactly: its built Distiller's
wiring (recorders, connectors, losses with every argument, mappings, the losses' order), the
state dict's keys and shapes, the rest of its ``model`` and the rest of the config (data,
schedule, runtime). tests/test_configs/test_config_identity.py compares the shipped configs
with the fingerprints stored before configs/distill was rewritten on recipes and shared bases.

Written from a checkout's configs (paths inside the repository are stored relative to it)::

    python tests/config_fingerprint.py CONFIGS_DIR OUT.json
"""
import glob
import hashlib
import inspect
import json
import os.path as osp
import sys

from mmengine.config import Config

from mmkd.registry import MODELS
from mmkd.testing import build_random_distiller

FIXTURE = osp.join(osp.dirname(osp.abspath(__file__)), 'test_configs', 'config_fingerprints.json')
#: Top-level variables the config files use to write their ``model`` (levels, a loss written
#: once for every level, a recorder written once for both sides): not settings of their own.
HELPERS = ('levels', 'distill_loss', 'fpn', 'logits', 'head', 'strides', 'patch_sizes')
WIRING = ('student_recorders', 'teacher_recorders', 'connectors', 'distill_losses',
          'loss_forward_mappings')


def with_defaults(cfg):
    """``cfg`` with the default of every argument it leaves out filled in, for every nested
    dict whose ``type`` is in the model registry: a loss written with its defaults and one
    relying on them compare equal."""
    if isinstance(cfg, (list, tuple)):
        return [with_defaults(v) for v in cfg]
    if not isinstance(cfg, dict):
        return cfg
    cfg = {k: with_defaults(v) for k, v in cfg.items()}
    cls = MODELS.get(cfg['type']) if isinstance(cfg.get('type'), str) else None
    if inspect.isclass(cls):
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name != 'self' and param.default is not param.empty:
                cfg.setdefault(name, with_defaults(param.default))
    return cfg


def _plain(value, root: str):
    """JSON values, paths under ``root`` written as ``<repo>/relative/path``."""
    if isinstance(value, dict):
        return {str(k): _plain(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, root) for v in value]
    if isinstance(value, str) and value.startswith(root + osp.sep):
        return '<repo>/' + osp.relpath(osp.normpath(value), root)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def wiring_of(cfg, model) -> dict:
    """The five wiring dicts the Distiller was built with: the config's own, or with its
    recipes expanded (the expansion adds to the config's dicts; there it also gives the
    ``teacher_replays``, where the recipes or the config have any)."""
    if model.recipe_explicit_config:
        written_out = {}
        exec(model.recipe_explicit_config, written_out)
        return written_out['model']
    return {key: cfg.model.get(key) or {} for key in WIRING}


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(cfg, model, root: str) -> dict:
    """The fingerprint of config ``cfg`` and its built Distiller ``model``: the wiring and the
    distillation parts' state in full, the student's state and each other top-level setting of
    the config (data, schedule, runtime) as digests."""
    wiring = wiring_of(cfg, model)
    state = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    rest = {k: v for k, v in cfg.to_dict().items() if k not in ('model', ) + HELPERS}
    settings = {k: v for k, v in cfg.model.to_dict().items() if k not in WIRING + ('recipes', )}
    if wiring.get('teacher_replays'):  # the replays the built model runs, recipes' included
        settings['teacher_replays'] = wiring['teacher_replays']
    return _plain(dict(
        wiring={key: with_defaults(dict(wiring[key])) for key in WIRING},
        loss_order=list(model.distill_losses),
        distill_state=[entry for entry in state if not entry[0].startswith('student.')],
        state_digest=_digest(state),
        model=settings,
        config={key: _digest(_plain(value, root)) for key, value in rest.items()}), root)


def config_names(configs_dir: str):
    """``method/file.py`` of every distillation config under ``configs_dir/distill``."""
    paths = glob.glob(osp.join(configs_dir, 'distill', '*', '*.py'))
    return sorted(osp.relpath(p, osp.join(configs_dir, 'distill')) for p in paths
                  if osp.basename(osp.dirname(p)) != '_base_')


def main(configs_dir: str, out: str) -> None:
    root = osp.dirname(osp.abspath(configs_dir))
    prints = {}
    for name in config_names(configs_dir):
        cfg = Config.fromfile(osp.join(configs_dir, 'distill', name))
        device = None if name.endswith('_digits.py') else 'meta'
        prints[name] = fingerprint(cfg, build_random_distiller(cfg, device=device), root)
        print(name, flush=True)
    with open(out, 'w') as f:
        json.dump(prints, f, indent=None, sort_keys=True, separators=(',', ':'))
        f.write('\n')


if __name__ == '__main__':
    main(*sys.argv[1:])
