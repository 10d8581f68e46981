"""tools/benchmark_losses.py: one real (tiny) measurement and the report arithmetic."""
import importlib
import os.path as osp
import sys

import pytest
from tool_runs import REPO


def load_tool():
    # Importable by name: the spawned measurement processes import it again.
    tools = osp.join(REPO, 'tools')
    if tools not in sys.path:
        sys.path.insert(0, tools)
    return importlib.import_module('benchmark_losses')


def test_a_loss_is_measured_in_its_own_process():
    tool = load_tool()
    result = tool.measure('loss', 'MSEFeatureLoss', 'cpu', quick=True, repeats=1)
    assert 'error' not in result, result
    assert result['seconds'] > 0 and result['peak_mib'] >= 0


def test_report_rows_give_the_share_of_the_student_step():
    tool = load_tool()
    row = tool.format_row('X', dict(seconds=0.05, peak_mib=12.5), reference=2.0)
    assert row.split()[1:] == ['50.0', '2.50%', '12.5']
    assert 'failed: boom' in tool.format_row('X', dict(error='boom'), reference=2.0)
    assert [s[2:] for s in tool.level_shapes(quick=False)] == [
        (100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]


# the quick P3 level (16x24) is one 16-cell patch: PCKA warns that centered CKA is constant
@pytest.mark.filterwarnings('ignore:PCKALoss intra term:UserWarning')
def test_topkd_and_the_pcka_loop_reference_steps_run():
    # In this process (no spawn): each step builds its inputs and runs forward + backward.
    tool = load_tool()
    tool._loss_step('TopKDLoss+contrastive', 'cpu', quick=True)()
    for name in ('PCKALoss (batched)', 'PCKA per-channel loop (reference)'):
        tool._pcka_step(name, 'cpu', quick=True)()
