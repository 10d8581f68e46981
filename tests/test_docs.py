"""The documentation stays true: README.md and every docs/en page quote only what exists.

For each page: relative links (and their #anchors) resolve; quoted repository paths exist;
every ``tools/X.py`` command names an existing tool and only options its argparse defines;
every quoted ``mmkd.a.b.C`` resolves; every ``type='X'`` of a quoted config is a registered
name (mmkd, mmdet, mmseg, mmengine, mmcv) or a recipe type; every gain interval quoted as
``+22.72 [+17.95, +27.49]`` is one that benchmarks/*.md print. Static: no tool runs and no
model is built (the tools' options are read from their source and the mmkd modules they
import, registered names from the packages' source).
"""
import ast
import functools
import glob
import importlib
import importlib.util
import os.path as osp
import re
from typing import Dict, List, Set, Tuple

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = ['README.md'] + sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', 'en', '**', '*.md'),
                                            recursive=True))

#: Quoted paths under these folders must exist in the repository.
PATH_ROOTS = ('configs', 'tools', 'mmkd', 'benchmarks', 'tests', 'docs', 'requirements')
#: Quoted paths of other projects, named as such on their page.
FOREIGN_PATHS = {'tools/deploy.py': "MMDeploy's converter, on checkpoints_and_export.md"}
#: Registered names of other projects, allowed on the page that maps them onto mmkd's.
FOREIGN_TYPES = {
    'docs/en/user_guides/port_mmrazor.md': {'FpnTeacherDistill', 'ConfigurableDistiller',
                                            'mmrazor.SingleTeacherDistillValLoop'},
}
#: Shell scripts under tools/ that pass their options on to a Python tool.
SCRIPT_OPTIONS_OF = {'tools/dist_train.sh': 'tools/train.py'}

FENCE = re.compile(r'^[ \t]*(```+|~~~+)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$', re.M | re.S)
INLINE = re.compile(r'`([^`]+)`', re.S)
LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)\)')
PATH = re.compile(r'(?<![\w./:-])((?:%s)/(?:[^\s`\'"()\[\],;|{}]|\{[^}\s]*\})*)'
                  % '|'.join(PATH_ROOTS))
TOOL = re.compile(r'(?<![\w./-])(tools/[\w/]+\.(?:py|sh))')
FLAG = re.compile(r'(?<![\w-])(--[A-Za-z][\w-]*)')
DOTTED = re.compile(r'(?<![\w./])(mmkd(?:\.[A-Za-z_]\w*)+)')
TYPE = re.compile(r'\btype\s*=\s*[\'"]([\w.]+)[\'"]')
INTERVAL = re.compile(r'([+-]\d+\.\d\d)(?: (?:bbox mAP|segm mAP|mIoU))? '
                      r'(\[[+-]\d+\.\d\d, [+-]\d+\.\d\d\])')


# ---------------------------------------------------------------------------- the pages
@functools.lru_cache(maxsize=None)
def read(doc: str) -> str:
    with open(osp.join(REPO, doc), encoding='utf-8') as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def parts(doc: str) -> Tuple[str, Tuple[str, ...], Tuple[str, ...]]:
    """``(prose, fenced block bodies, inline code spans)`` of a page."""
    text = read(doc)
    blocks = tuple(m.group(2) for m in FENCE.finditer(text))
    prose = FENCE.sub('', text)
    return prose, blocks, tuple(INLINE.findall(prose))


def quoted(doc: str) -> List[str]:
    """What a page quotes: its code blocks and its inline code."""
    _, blocks, spans = parts(doc)
    return list(blocks) + list(spans)


def commands(doc: str) -> List[str]:
    """Quoted text split into command lines: a block's backslash-continued lines joined, each
    span one line, comments dropped."""
    lines = []
    for text in quoted(doc):
        for line in re.sub(r'\\\n', ' ', text).split('\n'):
            lines.append(re.sub(r'(^|\s)#.*$', '', line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading).strip().lower()
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


@functools.lru_cache(maxsize=None)
def anchors(doc: str) -> Set[str]:
    prose, _, _ = parts(doc)
    seen: Dict[str, int] = {}
    out = set()
    for heading in re.findall(r'^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$', prose, re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f'{base}-{n}')
    return out


# ---------------------------------------------------------------------------- checks
def bad_links(doc: str) -> List[str]:
    prose, _, _ = parts(doc)
    bad = []
    for target in LINK.findall(prose):
        if re.match(r'[a-z][\w+.-]*:', target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        full = osp.normpath(osp.join(REPO, osp.dirname(doc), path)) if path else osp.join(
            REPO, doc)
        if not osp.exists(full):
            bad.append(f'{target} (no such file)')
        elif anchor and full.endswith('.md') and anchor not in anchors(osp.relpath(full, REPO)):
            bad.append(f'{target} (no heading with that anchor)')
    return bad


def _expand_braces(path: str) -> List[str]:
    m = re.search(r'\{([^{}]*)\}', path)
    if not m:
        return [path]
    return [p for option in m.group(1).split(',')
            for p in _expand_braces(path[:m.start()] + option + path[m.end():])]


def path_exists(path: str) -> bool:
    """A quoted repository path exists: ``{a,b}`` expands to every option, ``*`` / ``?``
    must match a file, and a ``<placeholder>`` needs only the folder before it."""
    for option in _expand_braces(path.rstrip('.:')):
        if '<' in option:
            option = option[:option.index('<')].rsplit('/', 1)[0]
        full = osp.join(REPO, option)
        if not (glob.glob(full) if any(c in option for c in '*?') else osp.exists(full)):
            return False
    return True


def bad_paths(doc: str) -> List[str]:
    found = {p for text in quoted(doc) for p in PATH.findall(text)}
    return sorted(p for p in found if p.rstrip('.:') not in FOREIGN_PATHS
                  and not path_exists(p))


def _module_file(module: str) -> str:
    base = osp.join(REPO, *module.split('.'))
    return base + '.py' if osp.exists(base + '.py') else osp.join(base, '__init__.py')


@functools.lru_cache(maxsize=None)
def _own_flags(path: str) -> Tuple[Set[str], Set[str]]:
    """``(options defined by add_argument in this file, mmkd modules it imports)``."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    package = osp.relpath(osp.dirname(path), REPO).replace(osp.sep, '.')
    flags, modules = set(), set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == 'add_argument'):
            flags.update(a.value for a in node.args
                         if isinstance(a, ast.Constant) and isinstance(a.value, str)
                         and a.value.startswith('-'))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative, inside mmkd
                base = package.rsplit('.', node.level - 1)[0] if node.level > 1 else package
                module = f'{base}.{node.module}' if node.module else base
            else:
                module = node.module or ''
            if module == 'mmkd' or module.startswith('mmkd.'):
                modules.add(module)
                modules.update(f'{module}.{a.name}' for a in node.names)
        elif isinstance(node, ast.Import):
            modules.update(a.name for a in node.names if a.name.startswith('mmkd.'))
    return flags, {m for m in modules if osp.exists(_module_file(m))}


@functools.lru_cache(maxsize=None)
def tool_flags(tool: str) -> Set[str]:
    """Every option ``tools/X.py`` accepts: its own add_argument calls and those of the mmkd
    modules it imports, directly or through each other (the shared option helpers of
    mmkd.engine.runtime, mmkd.apis ...)."""
    flags, todo = set(_own_flags(osp.join(REPO, tool))[0]), list(
        _own_flags(osp.join(REPO, tool))[1])
    seen = set(todo)
    while todo:
        own, imported = _own_flags(_module_file(todo.pop()))
        flags |= own
        todo.extend(imported - seen)
        seen |= imported
    return flags | {'--help', '-h'}


def bad_commands(doc: str) -> List[str]:
    bad = []
    for line in commands(doc):
        starts = list(TOOL.finditer(line))
        for i, m in enumerate(starts):
            tool = m.group(1)
            args = line[m.end():starts[i + 1].start() if i + 1 < len(starts) else len(line)]
            if not osp.isfile(osp.join(REPO, tool)):
                if tool not in FOREIGN_PATHS:
                    bad.append(f'{tool} (no such tool)')
                continue
            flags = FLAG.findall(args)
            python_tool = SCRIPT_OPTIONS_OF.get(tool, tool)
            if not python_tool.endswith('.py'):
                bad.extend(f'{tool} {flag} (a shell script without options)' for flag in flags)
                continue
            known = tool_flags(python_tool)
            bad.extend(f'{tool} {flag} (not an option of {python_tool})'
                       for flag in flags if flag not in known)
    return sorted(set(bad))


@functools.lru_cache(maxsize=None)
def mmkd_registered() -> Set[str]:
    """Class names registered in any mmkd registry (``register_module()`` decorators, with a
    ``name=`` where one is given), read from the source."""
    names = set()
    for path in glob.glob(osp.join(REPO, 'mmkd', '**', '*.py'), recursive=True):
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for dec in node.decorator_list:
                if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)
                        and dec.func.attr == 'register_module'):
                    given = [k.value.value for k in dec.keywords
                             if k.arg == 'name' and isinstance(k.value, ast.Constant)]
                    names.update(given or [node.name])
    return names


@functools.lru_cache(maxsize=None)
def recipe_types() -> Set[str]:
    """Recipe types (case-insensitive), from the keys of RECIPES / ALIASES in recipes.py."""
    with open(osp.join(REPO, 'mmkd', 'models', 'distillers', 'recipes.py')) as f:
        text = f.read()
    names = set(re.findall(r"^\s*'(\w[\w-]*)': Method\(", text, re.M))
    names |= set(re.findall(r"'([\w-]+)': '\w+'", text[text.index('ALIASES'):]))
    return {n.lower() for n in names}


@functools.lru_cache(maxsize=None)
def package_source() -> str:
    """The source of the packages whose registries configs name (read, not imported)."""
    chunks = []
    for package in ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain'):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for path in glob.glob(osp.join(root, '**', '*.py'), recursive=True):
                with open(path, encoding='utf-8', errors='replace') as f:
                    chunks.append(f.read())
    return '\n'.join(chunks)


def _registered_elsewhere(name: str) -> bool:
    source = package_source()
    return bool(re.search(rf'^\s*class {re.escape(name)}\b', source, re.M) or re.search(
        rf'register_module\(\s*(?:name\s*=\s*)?[\'"]{re.escape(name)}[\'"]', source))


@functools.lru_cache(maxsize=None)
def _defined_in_docs() -> Set[str]:
    """Classes and recipe types the pages' own examples define (a new loss, a new recipe)."""
    names = set()
    for doc in DOCS:
        for block in parts(doc)[1]:
            names |= set(re.findall(r'^\s*class (\w+)\(', block, re.M))
            names |= set(re.findall(r"^\s*'(\w+)': Method\(", block, re.M))
    return names


def bad_types(doc: str) -> List[str]:
    allowed = FOREIGN_TYPES.get(doc, set())
    mine = mmkd_registered() | _defined_in_docs()
    bad = set()
    for text in quoted(doc):
        for name in TYPE.findall(text):
            scope, _, short = name.rpartition('.')
            if name in allowed or (scope in ('', 'mmkd') and (
                    short in mine or short.lower() in recipe_types())):
                continue
            if scope != 'mmkd' and _registered_elsewhere(short):
                continue
            bad.add(f"type='{name}'")
    return sorted(bad)


def resolves(name: str) -> bool:
    """``mmkd.a.b.C`` imports as a module or is an attribute chain of one; ``mmkd.X`` may also
    be a name registered in mmkd's registries (a scoped config type), or one a page's example
    defines."""
    parts_ = name.split('.')
    for i in range(len(parts_), 0, -1):
        module = '.'.join(parts_[:i])
        try:
            obj = importlib.import_module(module)
        except ImportError:
            continue
        try:
            for attr in parts_[i:]:
                obj = getattr(obj, attr)
            return True
        except AttributeError:
            break
    return len(parts_) == 2 and parts_[1] in mmkd_registered() | _defined_in_docs()


def bad_names(doc: str) -> List[str]:
    found = {n for text in quoted(doc) for n in DOTTED.findall(text)}
    return sorted(n for n in found if not resolves(n))


@functools.lru_cache(maxsize=None)
def benchmark_text() -> str:
    return '\n'.join(read(osp.relpath(p, REPO))
                     for p in sorted(glob.glob(osp.join(REPO, 'benchmarks', '*.md'))))


def bad_figures(doc: str) -> List[str]:
    quoted_here = {f'{gain} {interval}' for gain, interval in INTERVAL.findall(read(doc))}
    return sorted(f for f in quoted_here if f not in benchmark_text())


# ---------------------------------------------------------------------------- the tests
#: What each check reports: {name: (function of a doc -> bad references, what they are)}.
CHECKS = {
    'links': (bad_links, 'broken links'),
    'paths': (bad_paths, 'quoted paths that do not exist'),
    'commands': (bad_commands, 'commands that would fail'),
    'names': (bad_names, 'mmkd names that do not resolve'),
    'types': (bad_types, 'config types no registry knows'),
    'figures': (bad_figures,
                'gain intervals benchmarks/*.md does not print'),
}


@pytest.mark.parametrize('doc', DOCS)
@pytest.mark.parametrize('check', CHECKS)
def test_what_a_doc_quotes_exists(check, doc):
    find, what = CHECKS[check]
    bad = find(doc)
    assert not bad, f'{doc}: {what}: {bad}'


def test_the_index_lists_every_page_and_the_readme_links_the_index():
    index = 'docs/en/index.md'
    linked = {osp.normpath(osp.join(osp.dirname(index), t.partition('#')[0]))
              for t in LINK.findall(parts(index)[0]) if not re.match(r'[a-z][\w+.-]*:', t)}
    missing = [d for d in DOCS if d.startswith('docs/en/') and d != index and d not in linked]
    assert not missing, f'{index} does not list {missing}'
    assert 'docs/en/index.md' in LINK.findall(read('README.md'))


def test_the_readme_keeps_the_ci_test_command():
    # .ci/run runs this line; the README shows it as the way to run the tests
    command = 'bash tools/install.sh && .venv/bin/python -m pytest -m "not slow" -n 2'
    assert command in read('README.md')
    with open(osp.join(REPO, '.ci', 'run')) as f:
        assert command in f.read()


def test_the_checks_catch_mistakes():
    """Each check rejects what it must (so a passing run means something)."""
    assert not path_exists('configs/distill/nosuchmethod/x.py')
    assert path_exists('configs/distill/_base_/digits_{det,seg}.py')
    assert not path_exists('configs/distill/_base_/digits_{det,nosuch}.py')
    assert path_exists('mmkd/models/losses/<method>.py')
    assert path_exists('configs/digits/*_r18_digits.py')
    assert '--dry-run' in tool_flags('tools/distill.py')
    assert '--work-dir' in tool_flags('tools/distill.py')  # from mmkd.engine.runtime
    assert '--dry-runs' not in tool_flags('tools/distill.py')
    assert slug('Recipes: a method in one line') == 'recipes-a-method-in-one-line'
    assert slug('FitNet: `MSEFeatureLoss`, `L1FeatureLoss`') == (
        'fitnet-msefeatureloss-l1featureloss')
    assert 'PKDLoss' in mmkd_registered() and 'pkd' in recipe_types()
