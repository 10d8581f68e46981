"""The README's demo command, on its quick budget (slow: a few minutes), and its seeding."""
import json

import pytest
import torch
from tool_runs import DET_DISTILL, run_tool


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
        assert not any(k.startswith(('teachers.', 'student.')) for k in exported['state_dict'])
        assert results[task]['student_config'].endswith('.py')


def test_same_seed_gives_the_same_run_and_another_seed_does_not(tmp_path, digits_root,
                                                                det_teacher_ckpt):
    """The demo's and the benchmark's runs are seeded: same seed, same weights and metric."""
    from mmkd.apis.demo import run

    def weights(seed, name):
        value, ckpt = run(DET_DISTILL, str(tmp_path / name), str(digits_root), 2,
                          'coco/bbox_mAP', seed=seed, **{'model.teacher_ckpt': det_teacher_ckpt})
        return value, torch.load(ckpt, weights_only=False)['state_dict']

    (value_a, a), (value_b, b), (_, c) = weights(0, 'a'), weights(0, 'b'), weights(1, 'c')
    assert value_a == value_b
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_finished_demo_run_is_read_back_and_a_changed_one_trained_again(tmp_path):
    """A killed demo resumes: only runs without a matching result (same config, iterations,
    seed, budget; checkpoint on disk) train again."""
    from mmkd.apis.demo import BUDGETS, TASKS, finished_run

    calls = []

    def train(run_dir):
        calls.append(run_dir)
        ckpt = tmp_path / f'ckpt{len(calls)}.pth'
        ckpt.write_text('x')
        return 0.5 + len(calls), str(ckpt)

    config, budget, run_dir = TASKS['det']['student'], BUDGETS['quick'], str(tmp_path / 'run')
    first = finished_run(run_dir, config, 20, 0, budget, train)
    assert first['value'] == 1.5 and len(calls) == 1
    assert finished_run(run_dir, config, 20, 0, budget, train) == first and len(calls) == 1
    assert finished_run(run_dir, config, 20, 1, budget, train)['value'] == 2.5  # another seed
    assert finished_run(run_dir, config, 30, 1, budget, train)['value'] == 3.5  # other iters
    (tmp_path / 'ckpt3.pth').unlink()  # its checkpoint gone: trained again
    assert finished_run(run_dir, config, 30, 1, budget, train)['value'] == 4.5
    assert len(calls) == 4
