"""mmkd/utils/packages.py: the install command a missing package is named with."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.engine.runtime import load_config
from mmkd.utils.packages import MMKD_INSTALLS, DISTRIBUTIONS, install_command

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_what_mmkd_says_it_installs_is_what_install_sh_installs():
    """install_command sends users to tools/install.sh only for packages it installs."""
    with open(osp.join(REPO, 'requirements', 'runtime.txt')) as f:
        runtime = f.read()
    with open(osp.join(REPO, 'tools', 'install.sh')) as f:
        install_sh = f.read()
    for dist in MMKD_INSTALLS:
        assert f'\n{dist}' in runtime or dist in install_sh, dist
    assert '\nmmpretrain==1.2.0\n' in runtime and '\nscikit-image' in runtime
    assert 'mmpretrain' in install_sh.split('check_imports() {')[1].split('PY\n}')[0]
    assert install_command('skimage') == ('`bash tools/install.sh` (it installs scikit-image) or '
                                          '`pip install scikit-image`')
    assert DISTRIBUTIONS['sklearn'] == 'scikit-learn'
    assert install_command('torchvision').startswith('`pip install torchvision==0.')


def test_the_runtime_config_loader_names_a_missing_package(tmp_path):
    """What tools/train.py, tools/test.py and tools/distill.py (training) load a config with."""
    config = tmp_path / 'cfg.py'
    config.write_text("custom_imports = dict(imports='mmkd_absent_pkg.hooks')\nx = 1\n")
    with pytest.raises(ModuleNotFoundError, match=r"cfg.py \(custom_imports='mmkd_absent_pkg."
                       r"hooks'\) needs the package 'mmkd_absent_pkg', which is not installed: "
                       r'install it with `pip install mmkd_absent_pkg`'):
        load_config(str(config))
    config.write_text("custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)\n")
    assert load_config(str(config)).custom_imports == Config.fromfile(
        str(config)).custom_imports
