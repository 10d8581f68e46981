"""tools/benchmark_losses.py: one real (tiny) measurement and the report arithmetic."""
import pytest
from tool_runs import load_tool

from mmkd.apis.loss_benchmark import _loss_step, _pcka_step, level_shapes, measure


def test_a_loss_is_measured_in_its_own_process():
    result = measure('loss', 'MSEFeatureLoss', 'cpu', quick=True, repeats=1)
    assert 'error' not in result, result
    assert result['seconds'] > 0 and result['peak_mib'] >= 0


def test_report_rows_give_the_share_of_the_student_step():
    tool = load_tool('benchmark_losses.py')
    row = tool.format_row('X', dict(seconds=0.05, peak_mib=12.5), reference=2.0)
    assert row.split()[1:] == ['50.0', '2.50%', '12.5']
    assert 'failed: boom' in tool.format_row('X', dict(error='boom'), reference=2.0)
    assert [s[2:] for s in level_shapes(quick=False)] == [
        (100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]


# the quick P3 level (16x24) is one 16-cell patch: PCKA warns that centered CKA is constant
@pytest.mark.filterwarnings('ignore:PCKALoss intra term:UserWarning')
def test_topkd_and_the_pcka_loop_reference_steps_run():
    # In this process (no spawn): each step builds its inputs and runs forward + backward.
    _loss_step('TopKDLoss+contrastive', 'cpu', quick=True)()
    for name in ('PCKALoss (batched)', 'PCKA per-channel loop (reference)',
                 'PCKALoss intra (batched, P3+P4)', 'PCKA intra plain loop (P3+P4)'):
        _pcka_step(name, 'cpu', quick=True)()
