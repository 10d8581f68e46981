"""tools/analysis/config_repetition.py (mmkd.apis.config_repetition)."""
from tool_runs import load_tool

from mmkd.apis.config_repetition import config_repetition


def test_lines_count_once_another_file_holds_them(tmp_path, capsys):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'one.py').write_text("# the paper\n_base_ = 'x.py'\nmodel = dict(a=1)\n")
    (tmp_path / 'two.py').write_text("_base_ = 'x.py'\n\n    model = dict(a=2)  \nb = 1\nb = 1\n")
    result = config_repetition(str(tmp_path))
    # code lines: 2 + 4; only the _base_ line is in both files (b = 1 twice in one file is not)
    assert (result.files, result.lines, result.repeated) == (2, 6, 2)
    assert result.common == [("_base_ = 'x.py'", 2)]
    assert (result.base_lines, result.base_repeated) == (2, 2)
    load_tool('analysis/config_repetition.py').main([str(tmp_path)])
    out = capsys.readouterr().out
    assert '2 files, 6 code lines, 2 of them (33.3%) also in another file' in out
    assert ('without the _base_ statements (2 lines, 2 of them repeated): 4 code lines, 0 of '
            'them (0.0%) also in another file') in out
