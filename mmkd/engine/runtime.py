"""Small config adjustments shared by tools/train.py, tools/test.py and tools/demo.py."""
import torch
from mmengine.config import Config


def adapt_to_device(cfg: Config) -> Config:
    """Make a config written for GPUs run on a CPU-only machine.

    mmdet / mmseg runtimes default to NCCL and to ``device_ids=[LOCAL_RANK]`` for DDP; without
    CUDA a distributed run needs the gloo backend and a DDP wrapper without device ids.
    """
    if torch.cuda.is_available() or cfg.get('launcher', 'none') == 'none':
        return cfg
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return cfg
