"""How much of a config folder is written twice: the share of code lines that also appear in
another file of the folder.

A line counts when, stripped, it is neither blank nor a comment; it is *repeated* when the
same stripped line occurs in another file under the folder (a line that repeats only within
its own file does not count). Measured so, ``configs/distill`` held 1365 code lines, 93.0%
of them repeated, before its files were written on recipes and shared bases (issue 12), and
788 lines, 86.4% repeated, after: every file's ``_base_`` line names a pair base that its
siblings share, so the share counts references to shared files as well as copies. With the
methods added since, 955 lines (85.3%) before the second round of recipes (GKD, SoKD, DKD,
TopKD, RoI logits, self-regulation) and 596 lines (81.4%) after it: 74 files are then a
``_base_`` line and a one-line recipe, both repeated by siblings. The summary
therefore also gives the share without the ``_base_`` statements (the lines of each file's
``_base_ = ...`` assignment), which every file needs.
"""
import glob
import os.path as osp
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Set, Tuple


@dataclass
class Repetition:
    """Code lines of a folder's files and which of them another file repeats.

    Attributes:
        files (int): The ``*.py`` files read.
        lines (int): Their code lines (not blank, not comments).
        repeated (int): Code lines whose text occurs in another file too.
        common (list): ``(line, number of files holding it)``, most files first.
        base_lines (int): Code lines of the files' ``_base_`` assignments.
        base_repeated (int): How many of those another file holds too.
    """
    files: int
    lines: int
    repeated: int
    common: List[Tuple[str, int]] = field(default_factory=list)
    base_lines: int = 0
    base_repeated: int = 0

    @property
    def percent(self) -> float:
        return 100.0 * self.repeated / self.lines if self.lines else 0.0

    @property
    def percent_without_base(self) -> float:
        """The share of repeated lines among the code lines outside ``_base_`` statements."""
        lines = self.lines - self.base_lines
        return 100.0 * (self.repeated - self.base_repeated) / lines if lines else 0.0

    def summary(self, top: int = 10) -> str:
        text = [f'{self.files} files, {self.lines} code lines, {self.repeated} of them '
                f'({self.percent:.1f}%) also in another file',
                f'  without the _base_ statements ({self.base_lines} lines, '
                f'{self.base_repeated} of them repeated): {self.lines - self.base_lines} code '
                f'lines, {self.repeated - self.base_repeated} of them '
                f'({self.percent_without_base:.1f}%) also in another file']
        text += [f'  {count:4d} files: {line}' for line, count in self.common[:top]]
        return '\n'.join(text)


def code_lines(path: str) -> List[str]:
    """The stripped lines of ``path`` that are neither blank nor comments.

    Example:
        >>> import tempfile, os
        >>> with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        ...     _ = f.write('# a comment\\n\\nx = 1  # kept\\n    y = 2\\n')
        >>> code_lines(f.name)
        ['x = 1  # kept', 'y = 2']
        >>> os.unlink(f.name)
    """
    with open(path, encoding='utf-8') as f:
        stripped = (line.strip() for line in f)
        return [line for line in stripped if line and not line.startswith('#')]


def base_code_lines(path: str) -> List[str]:
    """The code lines (as :func:`code_lines` strips them) of the file's ``_base_ = ...``
    assignments: from a line that starts with ``_base_ =`` until its brackets close.

    Example:
        >>> import tempfile, os
        >>> with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        ...     _ = f.write("_base_ = [\\n    'a.py',  # pair\\n    'b.py']\\nx = [1]\\n")
        >>> base_code_lines(f.name)
        ['_base_ = [', "'a.py',  # pair", "'b.py']"]
        >>> os.unlink(f.name)
    """
    lines, depth, inside = [], 0, False
    with open(path, encoding='utf-8') as f:
        for line in f:
            inside = inside or line.startswith('_base_ =')
            if not inside:
                continue
            code = line.split('#')[0]
            depth += sum(code.count(c) for c in '([{') - sum(code.count(c) for c in ')]}')
            stripped = line.strip()
            if stripped and not stripped.startswith('#'):
                lines.append(stripped)
            inside = depth > 0
    return lines


def config_repetition(root: str) -> Repetition:
    """Count the code lines of every ``*.py`` under ``root`` (recursively) that another of
    those files also holds, in all and among the ``_base_`` statements."""
    paths = sorted(glob.glob(osp.join(root, '**', '*.py'), recursive=True))
    holders: Dict[str, Set[str]] = defaultdict(set)
    lines = {path: code_lines(path) for path in paths}
    for path, text in lines.items():
        for line in text:
            holders[line].add(path)
    repeated = sum(len(holders[line]) > 1 for text in lines.values() for line in text)
    bases = [line for path in paths for line in base_code_lines(path)]
    counts = Counter({line: len(files) for line, files in holders.items() if len(files) > 1})
    return Repetition(len(paths), sum(map(len, lines.values())), repeated,
                      counts.most_common(), len(bases),
                      sum(len(holders[line]) > 1 for line in bases))
