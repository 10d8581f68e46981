"""Helpers for tiny, real training runs through tools/ (configs from configs/, data from
the embedded generator)."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

from mmkd.engine.runtime import load_config, set_data_root

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
DET_TEACHER = f'{CONFIGS}/digits/retinanet_r18_digits.py'
DET_DISTILL = f'{CONFIGS}/distill/fitnet/fitnet_fpn_retina-r18_retina-r18w32_digits.py'
SEG_TEACHER = f'{CONFIGS}/digits/semfpn_r18_digits.py'
MASK_TEACHER = f'{CONFIGS}/digits/mask-rcnn_r18_digits.py'
DETR_TEACHER = f'{CONFIGS}/digits/dino_r18_digits.py'
SEG_DISTILL = f'{CONFIGS}/distill/fitnet/fitnet_fpn_semfpn-r18_semfpn-r18w32_digits.py'


def tiny_config(config: str, data_root, out_dir, iters: int = 4, ckpt_interval=None,
                **overrides) -> str:
    """``config`` shrunk to a few iterations on ``data_root``, dumped to ``out_dir``.

    Returns the path of the dumped config, which tools/train.py can run.
    """
    cfg = load_config(config, work_dir=str(out_dir))
    set_data_root(cfg, str(data_root))
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = ckpt_interval or iters
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].batch_size = 4
    cfg.randomness = dict(seed=0)
    cfg.merge_from_dict(overrides)
    os.makedirs(str(out_dir), exist_ok=True)
    path = osp.join(str(out_dir), osp.basename(config))
    cfg.dump(path)
    return path


def run_tool(*args, check=True, **kwargs) -> subprocess.CompletedProcess:
    """Run ``tools/<args[0]>`` in a fresh interpreter, as a user would."""
    cmd = [sys.executable, osp.join(REPO, 'tools', args[0]), *map(str, args[1:])]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f'{cmd} failed ({result.returncode}):\n{result.stdout[-3000:]}\n'
                             f'{result.stderr[-5000:]}')
    return result


def load_tool(path: str):
    """``tools/<path>`` (e.g. ``'analysis/cka_map.py'``) as a module, for tests of its
    ``main()`` and its own helpers: loaded from its file, once per session, without putting
    tools/ on ``sys.path`` (the tools are scripts; what they share is in :mod:`mmkd.apis`)."""
    name = 'tool_' + path[:-len('.py')].replace('/', '_')
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
