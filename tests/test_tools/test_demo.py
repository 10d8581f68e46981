"""The README's demo command, on its quick budget (slow: a few minutes)."""
import json

import pytest
import torch
from tool_runs import run_tool


@pytest.mark.slow
def test_quick_demo_trains_evaluates_and_exports(tmp_path):
    out = tmp_path / 'results.json'
    result = run_tool('demo.py', '--work-dir', tmp_path, '--json', out, '--quick', timeout=1800)
    assert 'distilled' in result.stdout
    results = json.loads(out.read_text())
    assert set(results) == {'det', 'seg'}
    for task, metric in (('det', 'bbox_mAP'), ('seg', 'mIoU')):
        for role in ('teacher', 'student', 'distilled'):
            assert isinstance(results[task][role][metric], float)
        exported = torch.load(results[task]['exported_student_ckpt'], weights_only=False)
        assert not any(k.startswith(('teacher.', 'student.')) for k in exported['state_dict'])
        assert results[task]['student_config'].endswith('.py')
