"""tools/analysis/run_metrics.py: every metric of benchmark runs' final tests, paired by seed."""
import json

import pytest

from tool_runs import load_tool

run_metrics = load_tool('analysis/run_metrics.py')

TEST_LINE = ('2026/12/01 10:51:33 - mmengine - INFO - Iter(test) [63/63]    coco/bbox_mAP: {box}'
             '  coco/segm_mAP: {segm}  coco/segm_mAP_l: -1.0000  data_time: 0.0055  time: 0.2967\n')


def make_run(root, row, seed, box, segm, finished=True, stale_log=False):
    """A benchmark run folder: a log with a validation and a test line (and, with
    ``stale_log``, an older interrupted run's log without a test)."""
    run = root / row / f'seed{seed}'
    if stale_log:
        (run / '20261201_100000').mkdir(parents=True)
        (run / '20261201_100000' / '20261201_100000.log').write_text('Iter(train) [20/400]\n')
    log_dir = run / '20261201_110000'
    log_dir.mkdir(parents=True)
    (log_dir / '20261201_110000.log').write_text(
        TEST_LINE.replace('Iter(test)', 'Iter(val)').format(box=0.01, segm=0.01)
        + TEST_LINE.format(box=box, segm=segm))
    if finished:
        (run / 'result.json').write_text(json.dumps(dict(value=segm)))


def test_final_metrics_and_paired_table(tmp_path):
    for seed, (box, segm) in enumerate([(0.5, 0.30), (0.4, 0.32), (0.6, 0.31)]):
        make_run(tmp_path, 'student', seed, box, segm, stale_log=seed == 0)
    for seed, (box, segm) in enumerate([(0.4, 0.33), (0.3, 0.36), (0.5, 0.33)]):
        make_run(tmp_path, 'method', seed, box, segm)
    make_run(tmp_path, 'method', 3, 0.9, 0.9, finished=False)  # unfinished: left out

    metrics = run_metrics.final_metrics(str(tmp_path / 'student' / 'seed0'))
    # the test line, not the validation; COCO in percent; timings dropped
    assert metrics == {'coco/bbox_mAP': 50.0, 'coco/segm_mAP': 30.0, 'coco/segm_mAP_l': -100.0}
    assert sorted(run_metrics.row_metrics(str(tmp_path / 'method'))) == [0, 1, 2]

    table = run_metrics.main([str(tmp_path / 'student'), str(tmp_path / 'method'),
                              '--keys', 'coco/bbox_mAP', 'coco/segm_mAP'])
    lines = table.splitlines()
    box = lines.index('### coco/bbox_mAP')
    assert lines[box + 4] == '| student | 50.00 / 40.00 / 60.00 | 50.00 +- 10.00 |  |'
    # every seed 10 points lower: the paired difference has no spread
    assert lines[box + 5] == ('| method | 40.00 / 30.00 / 50.00 | 40.00 +- 10.00 | '
                              '-10.00 [-10.00, -10.00] (3 seeds) |')
    segm = lines.index('### coco/segm_mAP')
    # differences +3, +4, +2: mean 3, std 1, t(0.975, 2) = 4.303 -> half width 2.48
    assert lines[segm + 5].startswith('| method | 33.00 / 36.00 / 33.00 | 34.00 +- 1.73 | '
                                      '+3.00 [+0.52, +5.48] (3 seeds)')


def test_reference_without_runs_is_an_error(tmp_path):
    make_run(tmp_path, 'method', 0, 0.4, 0.3)
    (tmp_path / 'student').mkdir()
    with pytest.raises(ValueError, match='reference row student has no finished run'):
        run_metrics.main([str(tmp_path / 'student'), str(tmp_path / 'method')])


def test_rows_with_the_same_name_are_refused(tmp_path):
    make_run(tmp_path / 'det', 'student', 0, 0.4, 0.3)
    make_run(tmp_path / 'seg', 'student', 0, 0.4, 0.3)
    with pytest.raises(SystemExit, match='repeat a name'):
        run_metrics.main([str(tmp_path / 'det' / 'student'), str(tmp_path / 'seg' / 'student')])
