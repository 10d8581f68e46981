"""mmkd/models/distillers/model_config.py: SyncBN outside a distributed run, packages a model
config needs."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from tool_runs import CONFIGS

from mmkd.models.distillers.model_config import resolve_model_cfg
from mmkd.testing import build_random_distiller, det_batch

STUDENT = f'{CONFIGS}/digits/retinanet_r18-w32_digits.py'
TEACHER = f'{CONFIGS}/digits/retinanet_r18_digits.py'


def sync_bn_entry(norm_type, path=STUDENT):
    norm_cfg = dict(type=norm_type, requires_grad=True)
    return dict(cfg_path=path, cfg_options={'model.backbone.norm_cfg': norm_cfg,
                                            'model.neck.norm_cfg': norm_cfg})


@pytest.mark.parametrize('norm_type', ['SyncBN', 'MMSyncBN'])
def test_sync_bn_models_build_probe_and_train_in_one_process(norm_type):
    """No process group: the recipe's probe, a training forward and mmengine's Runner revert
    work as for a model trained alone in one process (mmcv's MMSyncBN could not even be
    built: "Default process group has not been initialized")."""
    assert not torch.distributed.is_initialized()
    cfg = Config(dict(default_scope='mmdet', model=dict(
        _scope_='mmkd', type='Distiller', student=sync_bn_entry(norm_type),
        teacher=sync_bn_entry(norm_type, TEACHER), teacher_ckpt=None,
        recipes=[dict(type='PKD', on='neck')])))
    model = build_random_distiller(cfg)
    assert sorted(model.distill_losses) == [f'loss_pkd_fpn{i}' for i in range(3)]  # probed
    sync = [m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert len(sync) > 20 and isinstance(model.student.backbone.bn1, torch.nn.SyncBatchNorm)
    model.train()
    losses = model(**model.data_preprocessor(det_batch(64), True), mode='loss')
    assert all(torch.isfinite(v).all() for k, v in losses.items() if 'distill' in k)
    reverted = revert_sync_batchnorm(model)  # what the Runner does when not distributed
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in reverted.modules())


def test_mmsyncbn_is_kept_as_written_where_asked_and_in_a_distributed_run(tmp_path):
    entry = sync_bn_entry('MMSyncBN')
    model_cfg, _ = resolve_model_cfg(entry, 'student')
    assert model_cfg.backbone.norm_cfg == dict(type='SyncBN', requires_grad=True)
    model_cfg, _ = resolve_model_cfg(entry, 'student', buildable=False)  # to write it out
    assert model_cfg.backbone.norm_cfg.type == 'MMSyncBN'
    torch.distributed.init_process_group(
        'gloo', init_method=f'file://{osp.join(str(tmp_path), "store")}', rank=0,
        world_size=1)
    try:
        model_cfg, _ = resolve_model_cfg(entry, 'student')
        assert model_cfg.backbone.norm_cfg.type == model_cfg.neck.norm_cfg.type == 'MMSyncBN'
        from mmcv.ops import SyncBatchNorm
        from mmdet.registry import MODELS
        assert isinstance(MODELS.build(model_cfg).backbone.bn1, SyncBatchNorm)
    finally:
        torch.distributed.destroy_process_group()


def write_config(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize('imports', ["'mmkd_absent_pkg.models'", "['mmkd', 'mmkd_absent_pkg']"])
def test_a_config_importing_a_missing_package_fails_naming_it(tmp_path, imports):
    config = write_config(tmp_path / 'needs.py', f"_base_ = '{STUDENT}'\n"
                          f'custom_imports = dict(imports={imports})\n')
    with pytest.raises(ModuleNotFoundError,
                       match=r"`teacher` \(.*needs\.py\).*custom_imports='mmkd_absent_pkg.*"
                             r"needs the package 'mmkd_absent_pkg', which is not installed: "
                             r'install it with `pip install mmkd_absent_pkg`'):
        resolve_model_cfg(dict(cfg_path=config), 'teacher')


def test_a_package_missing_behind_an_installed_module_is_the_one_named(tmp_path, monkeypatch):
    (tmp_path / 'mmkd_wrapper_pkg').mkdir()
    (tmp_path / 'mmkd_wrapper_pkg' / '__init__.py').write_text('import skimage_absent_dep\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_config(tmp_path / 'c.py', f"_base_ = '{STUDENT}'\ncustom_imports = "
                          "dict(imports=['mmkd_wrapper_pkg'], allow_failed_imports=False)\n")
    with pytest.raises(ModuleNotFoundError, match=r"needs the package 'skimage_absent_dep' "
                       r"\(importing 'mmkd_wrapper_pkg' needs it\)"):
        resolve_model_cfg(dict(cfg_path=config), 'student')
    # allow_failed_imports=True: skipped with a warning, as mmengine does
    allowed = write_config(tmp_path / 'allowed.py', f"_base_ = '{STUDENT}'\ncustom_imports = "
                           "dict(imports=['mmkd_wrapper_pkg'], allow_failed_imports=True)\n")
    with pytest.warns(UserWarning, match='mmkd_wrapper_pkg failed to import and is ignored'):
        model_cfg, _ = resolve_model_cfg(dict(cfg_path=allowed), 'student')
    assert model_cfg.type == 'RetinaNet'


def test_a_type_of_a_missing_package_or_a_misspelt_module_is_named(tmp_path):
    with pytest.raises(ModuleNotFoundError, match=r"`student` builds types of the scope "
                       r"'mmkd_absent_pkg', whose package is not installed: install it with "
                       r'`pip install mmkd_absent_pkg`'):
        resolve_model_cfg(dict(type='mmdet.RetinaNet', backbone=dict(
            type='mmkd_absent_pkg.ConvNeXt')), 'student')
    config = write_config(tmp_path / 'typo.py', f"_base_ = '{STUDENT}'\n"
                          "custom_imports = dict(imports='mmdet.modles')\n")
    with pytest.raises(ModuleNotFoundError, match=r"there is no module 'mmdet.modles' \(the "
                       r"package 'mmdet' is installed\): check the module name"):
        resolve_model_cfg(dict(cfg_path=config), 'student')
