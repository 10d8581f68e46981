"""Every embedded-dataset distillation config trains (one per method family in the default
suite, the others with ``-m slow``): 8 iterations of mmengine's Runner, in
process, on one fixed batch of 4 images, with the total loss going down.

The teacher is the session's tiny teacher checkpoint (tests/conftest.py); validation and
checkpoints are switched off, only the training loop runs. New ``*_digits.py`` configs under
configs/distill are picked up by the glob.
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from tool_runs import CONFIGS, DET_TEACHER, SEG_TEACHER, tiny_config

from mmkd.apis.maskd_tokens import learn_maskd_tokens, tokens_options
from mmkd.apis.significance import write_teacher_significance

ITERS = 8
EMBEDDED = sorted(p for p in glob.glob(f'{CONFIGS}/distill/**/*_digits.py', recursive=True)
                  if f'{osp.sep}_base_{osp.sep}' not in p)


def config_id(path):
    return osp.relpath(path, osp.join(CONFIGS, 'distill'))


#: One config per method family runs in the default suite (the segmentation one where there
#: is one: it trains faster); ``pytest -m slow`` trains every other config as well. Every
#: config is built and computes its losses in the default suite anyway
#: (tests/test_configs/test_distill_configs.py); the self-regulated subset modes train through
#: the tools in tests/test_tools/test_significance_tool.py.
DEFAULT_SUITE = {
    'afdcd/afdcd_stage-logits_semfpn-r18_semfpn-r18w32_digits.py',
    'at/at_fpn_semfpn-r18_semfpn-r18w32_digits.py',
    'cirkd/cirkd_feat-logits_semfpn-r18_semfpn-r18w32_digits.py',
    'cka/cka_logits_semfpn-r18_semfpn-r18w32_digits.py',
    'crosskd/crosskd_head_retina-r18_retina-r18w32_digits.py',
    'cwd/cwd_fpn_retina-r18_retina-r18w32_digits.py',
    'dist/dist_logits_semfpn-r18_semfpn-r18w32_digits.py',
    'dkd/dkd_logits_semfpn-r18_semfpn-r18w32_digits.py',
    'fgd/fgd_fpn_retina-r18_retina-r18w32_digits.py',
    'fitnet/fitnet_fpn_semfpn-r18_semfpn-r18w32_digits.py',
    'gkd/gkd_fpn_semfpn-r18_semfpn-r18w32_digits.py',
    'kd/kd_logits_semfpn-r18_semfpn-r18w32_digits.py',
    'kddetr/kddetr_decoder_dino-r18_dino-r18w32_digits.py',
    'maskd/maskd_logits_semfpn-r18_semfpn-r18w32_digits.py',
    'maskkd/maskkd_mask-head_mask-rcnn-r18_mask-rcnn-r18w32_digits.py',
    'mgd/mgd_fpn_semfpn-r18_semfpn-r18w32_digits.py',
    'multiteacher/multiteacher-uncertainty_fpn_gfl-r18+retina-r18_retina-r18w32_digits.py',
    'multipath/multipath-fixed_fpn-logits_retina-r18_retina-r18w32_digits.py',
    'pcka/pcka_fpn_semfpn-r18_semfpn-r18w32_digits.py',
    'pkd/pkd_fpn_semfpn-r18_semfpn-r18w32_digits.py',
    'selfreg/selfreg-regulated_kd-logits_semfpn-r18_semfpn-r18w32_digits.py',
    'sokd/sokd_mse_fpn_semfpn-r18_semfpn-r18w32_digits.py',
    'ssim/ssim_fpn_semfpn-r18_semfpn-r18w32_digits.py',
    'topkd/topkd_logits_retina-r18_retina-r18w32_digits.py',
}


def is_detection(path):
    return any(f'_{family}-' in osp.basename(path) for family in ('retina', 'mask-rcnn', 'dino'))


def teacher_fixture(path):
    """The name of the session's tiny teacher checkpoint fixture for ``path``'s pair."""
    if '_mask-rcnn-' in osp.basename(path):
        return 'mask_teacher_ckpt'
    if '_dino-' in osp.basename(path):
        return 'detr_teacher_ckpt'
    return 'det_teacher_ckpt' if is_detection(path) else 'seg_teacher_ckpt'


def teacher_ckpt_options(cfg, teacher_ckpt) -> dict:
    """``model.teacher_ckpt``; with several teachers, each entry's ``ckpt``: the session's
    checkpoint for the teacher built from the session teacher's config, random init (None) for
    the others."""
    if 'teachers' not in cfg.model:
        return {'model.teacher_ckpt': teacher_ckpt}
    trained = {osp.basename(DET_TEACHER), osp.basename(SEG_TEACHER)}
    return {f'model.teachers.{name}.ckpt':
            teacher_ckpt if osp.basename(entry.cfg_path) in trained else None
            for name, entry in cfg.model.teachers.items()}


def train_losses(config, data_root, teacher_ckpt, work_dir, iters=ITERS, options=None):
    """Per-iteration total losses of ``config`` trained ``iters`` iterations on 4 fixed
    images (``options``: more ``--cfg-options`` style overrides), and ``{log key:
    per-iteration values}`` of every distillation loss of the built Distiller."""
    # A SignificanceSubset (configs/distill/selfreg) wraps the images: cut the wrapped dataset,
    # and read the significance that tools/significance.py writes for it into work_dir.
    original = Config.fromfile(config)
    subset = original.train_dataloader.dataset.type == 'mmkd.SignificanceSubset'
    dataset = 'train_dataloader.dataset.dataset' if subset else 'train_dataloader.dataset'
    overrides = {
        **teacher_ckpt_options(original, teacher_ckpt),
        f'{dataset}.indices': 4,  # the first 4 images only
        'train_dataloader.batch_size': 4,
        'train_dataloader.sampler.shuffle': False, **(options or {})}
    if subset:  # all 4 kept (every batch stays images 0-3; test_significance_tool.py tests budgets)
        overrides['train_dataloader.dataset.budget'] = 1.0
        overrides['train_dataloader.dataset.significance_file'] = str(work_dir / 'sig.json')
    tokens = tokens_options(config, str(work_dir / 'maskd_tokens.pth'))
    if tokens:  # MasKD's first phase: its tokens learned on the session's teacher
        learn_maskd_tokens(SEG_TEACHER, teacher_ckpt, out=str(work_dir / 'maskd_tokens.pth'),
                           iters=4, batch_size=4, cfg_options={
                               'train_dataloader.dataset.data_root': f'{data_root}/'})
        overrides.update(tokens)
    path = tiny_config(config, data_root, work_dir, iters=iters, **overrides)
    if subset:
        write_teacher_significance(path)  # writes the subset's significance_file
    cfg = Config.fromfile(path)
    # Every batch is images 0-3: the loss must fall on a fixed batch. They are repeated to one
    # epoch of `iters` batches because mmengine's iteration loop sleeps 2 s at every epoch end.
    cfg.train_dataloader.dataset = dict(
        type='RepeatDataset', times=iters, dataset=cfg.train_dataloader.dataset)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # no validation loop
    cfg.default_hooks.checkpoint = None  # no checkpoint
    cfg.experiment_name = f'{osp.splitext(osp.basename(config))[0]}_{id(cfg)}'  # unique
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    losses = list(hub.get_scalar('train/loss').data[0])
    # every loss the built Distiller has (the config's and its recipes'), logged or not
    keys = [f'train/distill.{name}' for name in runner.model.distill_losses]
    distill = {k: list(hub.get_scalar(k).data[0]) if k in hub.log_scalars else [] for k in keys}
    return losses, distill


@pytest.mark.parametrize('config', [
    pytest.param(p, marks=() if config_id(p) in DEFAULT_SUITE else pytest.mark.slow)
    for p in EMBEDDED], ids=config_id)
def test_embedded_config_trains_with_falling_loss(config, digits_root, request, tmp_path):
    losses, distill = train_losses(config, digits_root,
                                   request.getfixturevalue(teacher_fixture(config)), tmp_path)

    assert len(losses) == ITERS
    assert distill, 'the config has distillation losses'
    assert all(len(values) == ITERS for values in distill.values()), \
        f'every distillation loss is logged at every iteration: {distill}'
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < first, f'loss did not fall on a fixed batch: {losses}'


def test_every_task_has_embedded_configs():
    assert any(is_detection(p) for p in EMBEDDED)
    assert any(not is_detection(p) for p in EMBEDDED)
    families = {config_id(p).split(osp.sep)[0] for p in EMBEDDED}
    assert DEFAULT_SUITE <= {config_id(p) for p in EMBEDDED}, 'a renamed config'
    assert {c.split('/')[0] for c in DEFAULT_SUITE} == families, 'every family trains by default'
    assert any(is_detection(c) for c in DEFAULT_SUITE)


def test_crosskd_digits_distill_losses_fall(digits_root, det_teacher_ckpt, tmp_path):
    """CrossKD's cross-head losses themselves fall over 24 iterations on a fixed batch, the
    student's task losses training alongside: the student's head features learn to drive the
    frozen teacher head towards its own predictions.

    The session's teacher is trained 4 iterations: its scores are nearly the prior everywhere,
    so at the published weights (1, 1) the two losses are about 1% of the task loss and drift
    with the task's updates (measured: cls 0.023 -> 0.020, box 0.016 -> 0.014, the cls loss
    rising in between). Weighted 50x they lead the gradient, and must then fall.
    """
    config = osp.join(CONFIGS, 'distill', 'crosskd',
                      'crosskd_head_retina-r18_retina-r18w32_digits.py')
    options = {f'model.distill_losses.{name}.loss_weight': 50.0
               for name in ('loss_crosskd_cls', 'loss_crosskd_box')}
    _, distill = train_losses(config, digits_root, det_teacher_ckpt, tmp_path, iters=24,
                              options=options)

    assert set(distill) == {'train/distill.loss_crosskd_cls', 'train/distill.loss_crosskd_box'}
    for name, values in distill.items():
        first, last = sum(values[:4]) / 4, sum(values[-4:]) / 4
        assert last < 0.8 * first, f'{name} did not fall: {values}'


def test_multiteacher_digits_distill_losses_fall(digits_root, det_teacher_ckpt, tmp_path):
    """Two teachers (GFL R18 at random init, RetinaNet R18 from the session's checkpoint): the
    six uncertainty-weighted MSE paths, three per teacher, each fall over 24 iterations on a
    fixed batch, the student's task losses training alongside."""
    config = osp.join(CONFIGS, 'distill', 'multiteacher',
                      'multiteacher-uncertainty_fpn_gfl-r18+retina-r18_retina-r18w32_digits.py')
    _, distill = train_losses(config, digits_root, det_teacher_ckpt, tmp_path, iters=24)

    assert set(distill) == {f'train/distill.loss_{teacher}_fpn{i}'
                            for teacher in ('gfl', 'retina') for i in range(3)}
    for name, values in distill.items():
        first, last = sum(values[:4]) / 4, sum(values[-4:]) / 4
        assert last < 0.8 * first, f'{name} did not fall: {values}'


@pytest.mark.slow
def test_kddetr_digits_distill_losses_fall(digits_root, detr_teacher_ckpt, tmp_path):
    """KD-DETR's three losses at the distillation points fall over 16 iterations on a fixed
    batch at the published weights (1, 5, 2), the student's task losses training alongside,
    from the session's DINO teacher (4 iterations). Measured (2 busy CPU cores, 58 s): cls
    1.499, 0.545, 0.202 ... 0.066, 0.068; L1 0.036, 0.027 ... 0.0032, 0.0036; GIoU 0.338,
    0.230 ... 0.043, 0.041; the total loss 31.6 -> 22.7."""
    config = osp.join(CONFIGS, 'distill', 'kddetr',
                      'kddetr_decoder_dino-r18_dino-r18w32_digits.py')
    _, distill = train_losses(config, digits_root, detr_teacher_ckpt, tmp_path, iters=16)

    assert set(distill) == {f'train/distill.loss_kddetr_{name}' for name in ('cls', 'l1', 'giou')}
    for name, values in distill.items():
        first, last = sum(values[:4]) / 4, sum(values[-4:]) / 4
        assert last < 0.5 * first, f'{name} did not fall: {values}'


MASKKD = osp.join(CONFIGS, 'distill', 'maskkd',
                  'maskkd_mask-head_mask-rcnn-r18_mask-rcnn-r18w32_digits.py')


@pytest.mark.slow
def test_maskkd_digits_distill_loss_falls(digits_root, mask_teacher_ckpt, tmp_path):
    """Mask KD itself falls over 24 iterations on a fixed batch, the student's task losses
    training alongside: the student's mask logits on its positive RoIs approach the replayed
    teacher's. The session's teacher is trained 4 iterations; weighted 10x the loss leads the
    mask head's gradient. Measured (2 busy CPU cores, 98 s): 5.75 -> 0.67 over the 24
    iterations; at weight 1 it falls too (0.575 -> 0.173 in the 8-iteration run above)."""
    _, distill = train_losses(MASKKD, digits_root, mask_teacher_ckpt, tmp_path, iters=24,
                              options={'model.distill_losses.loss_mask_kd.loss_weight': 10.0})

    values = distill['train/distill.loss_mask_kd']
    first, last = sum(values[:4]) / 4, sum(values[-4:]) / 4
    assert last < 0.8 * first, f'mask KD did not fall: {values}'


def test_maskkd_digits_evaluates_box_and_mask_map(digits_root, mask_teacher_ckpt, tmp_path):
    """The digits mask-KD config trains a step and its student is evaluated by CocoMetric
    with box and mask (segm) mAP on the 8 validation images."""
    path = tiny_config(MASKKD, digits_root, tmp_path, iters=1, **{
        'model.teacher_ckpt': mask_teacher_ckpt, 'train_dataloader.dataset.indices': 4})
    cfg = Config.fromfile(path)
    cfg.train_cfg.val_interval = 100  # validated once, below
    cfg.default_hooks.checkpoint = None
    cfg.experiment_name = f'maskkd_eval_{id(cfg)}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val()

    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(metrics)
    assert 0.0 <= metrics['coco/segm_mAP'] <= 1.0
