"""configs/distill written on recipes and shared bases (issue 12) resolves to the models of
the explicit files it replaced: every embedded-digits config builds a Distiller whose wiring
(recorders, connectors, losses with all their arguments, mappings, the losses' order), state
dict keys and shapes, remaining ``model`` keys and remaining config (data, schedule, runtime)
equal the fingerprint stored from the explicit files (tests/config_fingerprint.py, which also
writes the fixture). The model-zoo configs are compared where test_distill_configs.py builds
them (on the 'meta' device)."""
import json
import os.path as osp

import pytest
from config_fingerprint import FIXTURE, config_names, fingerprint
from mmengine.config import Config

from mmkd.testing import build_random_distiller

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs')


@pytest.fixture(scope='module')
def stored():
    with open(FIXTURE) as f:
        return json.load(f)


def test_every_config_has_a_stored_fingerprint(stored):
    assert config_names(CONFIGS) == sorted(stored)


@pytest.mark.parametrize('name', [n for n in config_names(CONFIGS) if n.endswith('_digits.py')])
def test_digits_config_builds_the_model_of_its_explicit_form(name, stored):
    cfg = Config.fromfile(osp.join(CONFIGS, 'distill', name))
    assert fingerprint(cfg, build_random_distiller(cfg), REPO) == stored[name]
