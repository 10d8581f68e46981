"""Config loading and device set-up shared by tools/train.py, tools/test.py and tools/demo.py."""
import argparse
import contextlib
import copy
import os
import os.path as osp
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction

from mmkd.utils.packages import import_custom_modules


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """``Config.fromfile`` + ``--cfg-options`` + the work dir default of mmdet's tools; a
    package that the config's ``custom_imports`` need and that is not installed fails here,
    naming itself and its install command (:func:`mmkd.utils.packages.import_custom_modules`)."""
    cfg = Config.fromfile(path, import_custom_modules=False)
    import_custom_modules(cfg, path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def set_data_root(cfg: Config, data_root: str) -> Config:
    """Point every dataloader and annotation-file evaluator of ``cfg`` at ``data_root``.

    An evaluator's ``ann_file`` keeps its path relative to the old root (e.g.
    ``annotations/instances_val.json``).
    """
    data_root = data_root.rstrip('/') + '/'
    old_root = None
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            old_root = old_root or cfg[key].dataset.get('data_root')
            cfg[key].dataset.data_root = data_root
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key)
        if isinstance(evaluator, dict) and evaluator.get('ann_file') and \
                not evaluator.ann_file.startswith(data_root):  # test_evaluator may be val's
            relative = evaluator.ann_file
            if old_root and relative.startswith(old_root):
                relative = relative[len(old_root):].lstrip('/')
            evaluator.ann_file = data_root + relative
    return cfg


def enable_amp(cfg: Config) -> Config:
    """Mixed precision: mmengine's float16 ``AmpOptimWrapper`` on CUDA, bfloat16 on CPU."""
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        cfg.optim_wrapper.type = 'mmkd.CPUAmpOptimWrapper'
    return cfg


def enable_tta(cfg: Config) -> Config:
    """Test-time augmentation as mmdet's and mmseg's tools/test.py set it up: the model wrapped
    in the config's ``tta_model`` (``DetTTAModel`` / ``SegTTAModel``: it runs the wrapped
    model's ``test_step`` on every augmented view and merges the predictions; a Distiller's
    ``test_step`` predicts with its student), the test pipeline replaced by ``tta_pipeline``.

    As mmdet's tool does, a detection config without them gets horizontal-flip TTA (its test
    pipeline with the packing step replaced by both flips, NMS at IoU 0.5 to merge); mmseg's
    tool has no default, so a segmentation config must define both.
    """
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:  # through dataset wrappers
        dataset = dataset['dataset']
    missing = [key for key in ('tta_model', 'tta_pipeline') if not cfg.get(key)]
    if missing and cfg.get('default_scope') == 'mmdet':
        cfg.setdefault('tta_model', dict(type='DetTTAModel', tta_cfg=dict(
            nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))
        if not cfg.get('tta_pipeline'):
            pipeline = copy.deepcopy(dataset.pipeline)
            pipeline[-1] = dict(type='TestTimeAug', transforms=[
                [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
                [dict(type='PackDetInputs', meta_keys=(
                    'img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction'))]])
            cfg.tta_pipeline = pipeline
    elif missing:
        raise ValueError(f'--tta needs the config to define {missing}: mmseg configs define '
                         "tta_model = dict(type='SegTTAModel') and a tta_pipeline (e.g. "
                         "mmseg::_base_/datasets/cityscapes.py's); add them, or test without "
                         '--tta.')
    cfg.model = dict(**cfg.tta_model, module=cfg.model)
    if dataset.get('batch_shapes_cfg'):  # YOLO-style batch shapes cannot take TTA's views
        dataset.batch_shapes_cfg = None
    dataset.pipeline = cfg.tta_pipeline
    return cfg


def show_predictions(cfg: Config, show_dir: str) -> Config:
    """Make the config's visualization hook draw every test prediction, as mmdet's and mmseg's
    ``--show-dir`` do: mmdet's ``DetVisualizationHook`` into ``show_dir`` under the run's
    timestamped log folder, mmseg's ``SegVisualizationHook`` (every image) through the
    visualizer, whose ``save_dir`` becomes ``show_dir``."""
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    if not hook:
        raise ValueError('--show-dir needs a visualization hook in default_hooks (mmdet: '
                         "dict(type='DetVisualizationHook'), mmseg: "
                         "dict(type='SegVisualizationHook')); the config has none.")
    hook['draw'] = True
    if 'Seg' in str(hook.get('type', '')):
        hook['interval'] = 1  # mmseg draws every interval-th image; --show-dir means all
        cfg.visualizer['save_dir'] = show_dir
    else:
        hook['test_out_dir'] = show_dir
    return cfg


def setup_device(cfg: Config) -> Config:
    """Let a config written for GPUs run distributed on a CPU-only machine.

    mmdet / mmseg runtimes default to NCCL and DDP with ``device_ids=[LOCAL_RANK]``, and
    mmengine's launcher calls ``torch.cuda.set_device``. Without CUDA, the process group is
    created here with gloo (mmengine then skips its own set-up) and DDP gets no device ids.
    """
    if torch.cuda.is_available() or cfg.get('launcher', 'none') == 'none':
        return cfg
    if cfg.launcher != 'pytorch':
        raise ValueError(f'launcher {cfg.launcher!r} needs CUDA here; on CPU use '
                         'tools/dist_train.sh (launcher pytorch, gloo backend).')
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                      world_size=int(os.environ['WORLD_SIZE']))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return cfg


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and ``--local_rank``, as torchrun / slurm call every tool."""
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :func:`train` shared by ``tools/train.py`` and ``tools/distill.py``:
    work dir, ``--amp``, ``--resume``, ``--cfg-options`` and the launcher's."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (float16 on CUDA, bfloat16 on CPU)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT, or without a value from the latest checkpoint in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=100')
    add_launcher_arguments(parser)


def parse_tool_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser``'s arguments; ``LOCAL_RANK`` set from ``--local_rank`` where the launcher did
    not set it (mmengine reads the environment)."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def train(cfg: Config, amp: bool = False, resume: Optional[str] = None) -> None:
    """What ``tools/train.py`` and ``tools/distill.py`` do with a loaded config: ``--amp``
    (:func:`enable_amp`), ``--resume`` ('auto': the work dir's last checkpoint; a path: that
    one), the device, the annotation files checked before anything trains, then mmengine's
    Runner (or the config's ``runner_type``) trains, its process group torn down at the end."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from .preflight import check_annotation_files
    if amp:
        enable_amp(cfg)
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume
    setup_device(cfg)
    check_annotation_files(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    with distributed_teardown():
        runner.train()


@contextlib.contextmanager
def distributed_teardown():
    """Destroy the process group when the wrapped run ends.

    mmengine never does; a gloo group still alive at interpreter exit can abort the process
    ("terminate called without an active exception") after training finished. On success a
    barrier first lets every rank finish its last collective (the validation gather): a rank
    that tears its connections down while a peer still talks to it aborts that peer the same
    way. After an error there is no barrier, since the other ranks may never reach it.
    """
    try:
        yield
    except BaseException:
        _destroy_process_group(synchronize=False)
        raise
    _destroy_process_group(synchronize=True)


def _destroy_process_group(synchronize: bool) -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        try:
            if synchronize:
                torch_dist.barrier()
        finally:
            torch_dist.destroy_process_group()
