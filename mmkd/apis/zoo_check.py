"""The model-zoo compatibility sweep of ``tools/analysis/zoo_check.py``: for every config
folder (family) of the installed mmdet and mmseg model zoos, a student / teacher pair, the
dry run of ``tools/distill.py`` with each of the family's methods, whose failure a failure is,
and a resumable ledger with its Markdown table.

* **Pairs** (:func:`choose_pair`, from the file names only): the configs of a folder are
  grouped by the dataset part of their names (:func:`dataset_of`: ``_coco``,
  ``coco-instance``, ``cityscapes-512x1024``...); the student is the smallest model its name
  tells (:func:`model_size`: parameter counts of the named backbones and scales, e.g. r18 <
  r50 < r101 < x101, swin-t < swin-l, yolox tiny < s < l), the teacher a larger one of the
  same dataset whose name is otherwise the closest (the same algorithm first); without sizes,
  two configs of the same dataset; with one config, that config as both (self-distillation).
  A config without a ``model`` is passed over; a folder without any is not a family.
* **Dry runs** (:func:`run_family`): one subprocess per family (a crash or a hang costs one
  row) calls ``tools/distill.py``'s ``main`` with ``--dry-run`` per method: detection ``pkd``
  (its default place), ``kd --on dense_cls_logits`` where the student's ``bbox_head`` is a
  dense head, ``kd --on roi_cls_logits`` where it has a ``roi_head``; segmentation ``cwd`` (its
  default place) and ``pkd`` (its default place). Video models (tracking, video instance
  segmentation, ReID) are not candidates: mmkd distills image detectors and segmentors.
* **Whose failure** (:func:`framework_check`): for a family with a failed method, the student
  (and, if that runs, the teacher) is built by mmdet / mmseg alone (pretrained dropped, SyncBN
  reverted as one process does) and run forward on a 128 px CPU batch (tensor mode, else loss
  mode); if that fails too, the row is not mmkd's (a missing Python package is told apart:
  ``package``).
* **Ledger and table**: each family's row is recorded as it finishes (:class:`RunLedger`:
  locked, atomic), so a sweep resumes where it stopped; :func:`report_text` writes the table.
* **Training** (optional): the cases of :mod:`mmkd.apis.zoo_training` (imported only when
  asked), one subprocess each, recorded as ``train:NAME``.

The subprocesses are forked from the sweep's process after :func:`warm_imports`, so they start
with torch, mmdet and mmseg imported (Linux: ``fork``).
"""
import contextlib
import datetime
import difflib
import functools
import io
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mmkd.apis.run_ledger import RunLedger

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PACKAGES = ('mmdet', 'mmseg')
#: The methods of each task: (label, method, ``--on`` or None for the method's default place,
#: what the student must have). ``dense_head`` / ``roi_head``: see :func:`student_heads`.
METHODS = {
    'det': (('pkd', 'pkd', None, None),
            ('kd --on dense_cls_logits', 'kd', 'dense_cls_logits', 'dense_head'),
            ('kd --on roi_cls_logits', 'kd', 'roi_cls_logits', 'roi_head')),
    'seg': (('cwd', 'cwd', None, None),
            ('pkd', 'pkd', None, None)),
}
#: The side of the random images of :func:`framework_check`'s first forwards.
CHECK_SIZE = 128
#: The largest side of its forwards at the config's own size.
NATIVE_SIZE_CAP = 640
#: Data preprocessors of video models (tracking, video instance segmentation, ReID): mmkd
#: distills image detectors and segmentors, so these families are listed, not run.
VIDEO_PREPROCESSORS = ('TrackDataPreprocessor', 'ReIDDataPreprocessor')

# ----------------------------------------------------------------------------- pair choice

#: Last name parts that are not the dataset but follow it (``..._coco_instance``,
#: ``..._v3det_2x``, ``..._coco_v1``): joined to the part before.
_NOT_DATASET = re.compile(r'^(\d+x|\d+e|v\d+|tta|instance|base|ms|ms-\d+x|all)$')


def dataset_of(name: str) -> str:
    """The dataset part of a model-zoo config name: its last ``_``-separated part (``coco``,
    ``coco-instance``, ``cityscapes-512x1024``), with the part before it when the last one is
    a schedule or a variant word (``coco_instance``, ``v3det_2x``).

    Example:
        >>> dataset_of('pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py')
        'cityscapes-512x1024'
    """
    parts = osp.splitext(osp.basename(name))[0].lower().split('_')
    key = parts.pop()
    while parts and _NOT_DATASET.match(key):
        key = parts.pop() + '_' + key
    return key


# Parameter counts (millions) of the backbones / scales config names tell: they order models
# of one kind and, roughly, of different kinds. Letters: tiny/t, small/s, medium/m, base/b,
# large/l, x/xl, huge/h.
_RESNET = {'18': 11.7, '34': 21.8, '50': 25.6, '101': 44.5, '152': 60.2, '200': 64.7}
_RESNEXT = {('50', '32x4d'): 25.0, ('101', '32x4d'): 44.6, ('101', '64x4d'): 83.5,
            ('101', '32x8d'): 88.8, ('152', '32x4d'): 59.9}
_RESNEST = {'50': 27.5, '101': 48.3, '200': 70.2, '269': 110.9}
_HRNET = {'18s': 3.9, '18': 9.6, '32': 29.3, '40': 45.6, '48': 65.8}
_REGNET_GF = {0.2: 2.7, 0.4: 5.2, 0.6: 6.2, 0.8: 7.3, 1.6: 9.2, 3.2: 15.3, 4.0: 22.1,
              6.4: 26.2, 8.0: 39.6, 12.0: 46.1}
_EFFICIENTNET = {'0': 5.3, '1': 7.8, '2': 9.2, '3': 12.0, '4': 19.0, '5': 30.0, '6': 43.0,
                 '7': 66.0}
_LETTERS = {'nano': 'n', 'tiny': 't', 'small': 's', 'medium': 'm', 'base': 'b', 'large': 'l',
            'xlarge': 'xl', 'huge': 'h'}
#: architecture word -> {scale: params}; the scale is the next name word (or its letter).
_SCALED = {
    'swin': dict(t=28.3, s=49.6, b=87.8, l=196.5),
    'convnext': dict(t=28.6, s=50.2, b=88.6, l=197.8, xl=350.2),
    'vit': dict(t=5.7, s=22.1, b=86.6, l=304.3, h=632.0),
    'deit': dict(t=5.7, s=22.1, b=86.6),
    'beit': dict(b=86.5, l=304.4),
    'mae': dict(b=86.6, l=304.3, h=632.0),
    'pvt': dict(t=13.2, s=24.5, m=44.2, l=61.4),
    'pvtv2': dict(b0=3.4, b1=13.1, b2=25.4, b3=45.2, b4=62.6, b5=82.0),
    'mit': dict(b0=3.7, b1=13.7, b2=24.7, b3=44.6, b4=61.4, b5=81.4),
    'rtmdet': dict(t=4.9, s=8.9, m=24.7, l=52.3, x=94.9),
    'yolox': dict(n=0.9, t=5.1, s=9.0, m=25.3, l=54.2, x=99.1),
    'pidnet': dict(s=7.6, m=28.5, l=36.9),
    'mscan': dict(t=4.3, s=13.9, b=27.6, l=48.9),
    'pcpvt': dict(s=24.1, b=43.8, l=60.9),
    'svt': dict(s=24.0, b=56.0, l=99.2),
    'poolformer': dict(s12=11.9, s24=21.4, s36=30.9, m36=56.2, m48=73.5),
    'ddrnet': {'23': 20.1},
}


def _scaled(words: List[str], i: int) -> Optional[Tuple[float, int]]:
    """``(params, index of the scale word)`` of architecture word ``words[i]``."""
    table = _SCALED[words[i]]
    for j in range(i + 1, min(i + 3, len(words))):  # e.g. rtmdet-ins_s, vit-b16, svt-b
        word = _LETTERS.get(words[j], words[j])
        if words[i] == 'ddrnet' and word == '23' and j + 1 < len(words) and \
                words[j + 1] == 'slim':
            return 5.7, j
        for scale in (word, word.rstrip('0123456789')):
            if scale in table:
                return table[scale], j
    return None


def size_words(name: str) -> Tuple[Optional[float], Tuple[int, ...]]:
    """``(parameter count in millions, indexes of the words that tell it)`` of the first
    backbone or scale a config name tells, or ``(None, ())``; the words are the name's
    ``_`` / ``-`` separated words, lower case."""
    words = re.split(r'[_-]', osp.splitext(osp.basename(name))[0].lower())
    for i, word in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ''
        found = None
        if re.fullmatch(r'r(\d+)[a-z]?', word) and word[1:].rstrip('abcd') in _RESNET:
            found = _RESNET[word[1:].rstrip('abcd')], (i, )
        elif re.fullmatch(r'x(\d+)', word) and (word[1:], nxt) in _RESNEXT:
            found = _RESNEXT[(word[1:], nxt)], (i, i + 1)
        elif re.fullmatch(r's(\d+)', word) and word[1:] in _RESNEST:
            found = _RESNEST[word[1:]], (i, )
        elif word == 'res2net' and nxt in _RESNET:
            found = _RESNET[nxt] + 0.5, (i, i + 1)
        elif re.fullmatch(r'hr(\d+s?)', word) and word[2:] in _HRNET:
            found = _HRNET[word[2:]], (i, )
        elif word.startswith('hrnet') and re.fullmatch(r'w\d+', nxt) and nxt[1:] in _HRNET:
            found = _HRNET[nxt[1:]], (i, i + 1)
        elif word.startswith('regnet') and re.fullmatch(r'[\d.]+(gf|mf)', nxt):
            gf = float(nxt[:-2]) / (1000 if nxt.endswith('mf') else 1)
            found = _REGNET_GF.get(round(gf, 1), 3.5 * gf + 3), (i, i + 1)
        elif re.fullmatch(r'effb\d', word):
            found = _EFFICIENTNET[word[-1]], (i, )
        elif word == 'd53':  # DarkNet-53
            found = 41.6, (i, )
        elif re.fullmatch(r'ssd(300|512)', word):  # VGG-16, the larger input a bit larger
            found = 35.0 + int(word[3:]) / 1000, (i, )
        elif word in ('m', 'mobilenet') and nxt in ('v3', 'v3s'):  # MobileNetV3 (small)
            small = nxt == 'v3s' or 's' in words[i + 2:i + 5]
            found = (2.9 if small else 5.4), (i, i + 1)
        elif word == 'mobilenetv2' or (word in ('m', 'mobilenet') and nxt == 'v2'):
            found = 3.5, (i, )
        elif re.fullmatch(r'stdc[12]', word):
            found = (8.4 if word == 'stdc1' else 12.5), (i, )
        elif re.fullmatch(r'swin[tsbl]', word):  # ddq-detr-4scale_swinl, fcos_swinb
            found = _SCALED['swin'][word[-1]], (i, )
        elif word in _SCALED:
            scaled = _scaled(words, i)
            if scaled:
                found = scaled[0], (i, scaled[1])
        if found:
            return found
    return None, ()


def model_size(name: str) -> Optional[float]:
    """The parameter count (millions) the name of a config tells, None if it tells none.

    Example:
        >>> model_size('retinanet_r18_fpn_1x_coco.py') < model_size('retinanet_r101_fpn_1x_coco.py')
        True
    """
    return size_words(name)[0]


def _algorithm(name: str) -> str:
    """The first name part without its trailing digits: ``ssd300`` and ``ssd512`` are one
    algorithm, as are ``stdc1`` and ``stdc2``."""
    return osp.basename(name).split('_')[0].rstrip('0123456789')


def _unsized(name: str) -> str:
    """The name with the words that tell its size replaced by one ``#`` (to compare the
    rest): ``retinanet_x101-64x4d_fpn`` -> ``retinanet_#_fpn``."""
    _, idx = size_words(name)
    parts = re.split(r'([_-])', osp.splitext(osp.basename(name))[0].lower())
    if not idx:
        return ''.join(parts)
    return ''.join(parts[:2 * min(idx)]) + '#' + ''.join(parts[2 * max(idx) + 1:])


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, _unsized(a), _unsized(b)).ratio()


@dataclass(frozen=True)
class Pair:
    """A family's student and teacher config (file names in its folder).

    Args:
        student (str): The student config's file name.
        teacher (str): The teacher config's file name (the student's for ``'self'``).
        how (str): ``'size'`` (the teacher is larger by the names), ``'same dataset'`` (two
            configs of one dataset, sizes not told) or ``'self'`` (self-distillation).
        dataset (str): The dataset part of both names.
    """
    student: str
    teacher: str
    how: str
    dataset: str


def _ranked_pairs(group: List[str]) -> List[Tuple[str, str, str]]:
    """Every (student, teacher, how) of one dataset group, best first."""
    sizes = {n: model_size(n) for n in group}
    sized = [n for n in group if sizes[n] is not None]
    by_size = sorted(((s, t) for s in sized for t in sized if sizes[t] > sizes[s]),
                     key=lambda p: (_algorithm(p[0]) != _algorithm(p[1]), sizes[p[0]],
                                    len(p[0]), p[0], -_similarity(*p), -sizes[p[1]], p[1]))
    two = sorted(((s, t) for s in group for t in group if s != t),
                 key=lambda p: (_algorithm(p[0]) != _algorithm(p[1]), len(p[0]), p[0],
                                -_similarity(*p), p[1]))
    return ([(s, t, 'size') for s, t in by_size] + [(s, t, 'same dataset') for s, t in two] +
            [(n, n, 'self') for n in sorted(group, key=lambda n: (len(n), n))])


def choose_pair(names: Sequence[str],
                is_model: Callable[[str], bool] = lambda name: True) -> Optional[Pair]:
    """The student / teacher pair of one config folder, from the file names alone.

    The names are grouped by :func:`dataset_of`; the groups that can give a size-ranked pair
    come first, then the larger groups, then by name. In a group: the smallest model the names
    tell (then the shortest name) as student and, as teacher, a larger model whose name is
    otherwise the closest to the student's (the same algorithm, the first name part, first;
    then the largest); else two configs of the group (the shortest name as student, the
    closest other name as teacher); else the one config as both. ``is_model`` is asked about
    the candidates in that order (lazily: it may load the file) and a name it rejects is passed
    over.

    Args:
        names: The config file names of one folder (other files are ignored).
        is_model: Whether a name is a model config (has a ``model``). Defaults to always.

    Returns:
        Pair | None: None when no name is a model config.
    """
    groups: Dict[str, List[str]] = {}
    for name in sorted(n for n in names if n.endswith('.py')):
        groups.setdefault(dataset_of(name), []).append(name)

    def sized_pair(group):
        sizes = [model_size(n) for n in group]
        return len({s for s in sizes if s is not None}) > 1

    order = sorted(groups, key=lambda d: (not sized_pair(groups[d]), -len(groups[d]), d))
    verdicts: Dict[str, bool] = {}

    def model(name):
        if name not in verdicts:
            verdicts[name] = bool(is_model(name))
        return verdicts[name]

    for dataset in order:
        for student, teacher, how in _ranked_pairs(groups[dataset]):
            if model(student) and model(teacher):
                return Pair(student, teacher, how, dataset)
    return None


# ----------------------------------------------------------------------------- the zoo


def zoo_root(package: str) -> str:
    """The installed ``package``'s model-zoo config folder (``.../mmdet/.mim/configs``)."""
    from mmengine.utils import get_installed_path
    return osp.join(get_installed_path(package), '.mim', 'configs')


def zoo_families(packages: Sequence[str] = PACKAGES) -> List[str]:
    """Every config folder of the packages' model zoos but ``_base_``, as
    ``'mmdet::retinanet'``, in order."""
    families = []
    for package in packages:
        root = zoo_root(package)
        families += [f'{package}::{d}' for d in sorted(os.listdir(root))
                     if d != '_base_' and not d.startswith('.') and not d.startswith('__') and
                     osp.isdir(osp.join(root, d))]
    return families


def select_families(families: Sequence[str], only: Optional[Sequence[str]] = None,
                    package: Optional[str] = None) -> List[str]:
    """``families`` of ``package`` (if given) named in ``only`` (if given: ``'mmdet::fcos'``
    or a bare folder name, which matches it in every package).

    Raises:
        ValueError: a name in ``only`` is no family (the message lists close ones).
    """
    chosen = [f for f in families if package is None or f.split('::')[0] == package]
    if not only:
        return chosen
    unknown = [o for o in only if not any(o in (f, f.split('::')[1]) for f in chosen)]
    if unknown:
        close = {o: difflib.get_close_matches(o, chosen, n=3, cutoff=0.4) or
                 difflib.get_close_matches(o, [f.split('::')[1] for f in chosen], n=3)
                 for o in unknown}
        raise ValueError(f'--only names no family of the installed model zoos for {unknown} '
                         f'(close: {close}); give folder names such as mmdet::retinanet or '
                         'fcn.')
    return [f for f in chosen if any(o in (f, f.split('::')[1]) for o in only)]


def load_zoo_config(family: str, name: str):
    """The Config of file ``name`` of ``family``, its custom imports not imported; None if it
    cannot be read."""
    from mmengine.config import Config
    package, folder = family.split('::')
    try:
        return Config.fromfile(osp.join(zoo_root(package), folder, name),
                               import_custom_modules=False)
    except Exception:  # noqa: BLE001 - unreadable: the dry run will say why
        return None


def plan_family(family: str) -> dict:
    """What the sweep does with ``family``: its pair and task, or why it is skipped.

    Returns:
        dict: ``family``, ``package``, ``task`` ('det', 'seg', or None when skipped),
        ``student`` / ``teacher`` (``'mmdet::folder/file.py'``), ``pair`` (:class:`Pair`'s
        ``how``), ``dataset``; or ``skipped`` (the reason) for a folder without model configs
        or with video models only (tracking, video instance segmentation, ReID: their
        configs are not candidates).
    """
    package, folder = family.split('::')
    names = sorted(os.listdir(osp.join(zoo_root(package), folder)))
    video = {}

    def is_model(name):
        cfg = load_zoo_config(family, name)
        if cfg is None:  # an unreadable file: let the dry run tell
            return True
        preprocessor = (cfg.get('model') or {}).get('data_preprocessor') or {}
        if preprocessor.get('type') in VIDEO_PREPROCESSORS:
            video[name] = f'{cfg.model.type}, {preprocessor["type"]}'
            return False
        if 'detector' in (cfg.get('model') or {}):  # SoftTeacher: a semi-supervised wrapper
            video[name] = f'{cfg.model.type}, a semi-supervised wrapper of model.detector'
            return False
        return 'model' in cfg

    plan = dict(family=family, package=package, task=None)
    pair = choose_pair(names, is_model)
    if pair is None and video:
        return dict(plan, skipped=f'video models or semi-supervised wrappers only '
                    f'({sorted(set(video.values()))[0]}...): mmkd distills image detectors and '
                    'segmentors (a wrapper\'s model.detector config is one)')
    if pair is None:
        return dict(plan, skipped='no model config in the folder')
    plan.update(student=f'{family}/{pair.student}', teacher=f'{family}/{pair.teacher}',
                pair=pair.how, dataset=pair.dataset,
                task='seg' if package == 'mmseg' else 'det')
    return plan


# ----------------------------------------------------------------------------- in the child


def first_line(err: BaseException, limit: int = 300) -> str:
    """``Type: the first line of the message`` of an exception, at most ``limit`` chars."""
    text = str(err).strip().splitlines()
    if text:
        line = f'{type(err).__name__}: {text[0]}'
    else:  # e.g. a bare assert: where it was raised
        frames = traceback.extract_tb(err.__traceback__)
        where = frames[-1].filename.split('site-packages/')[-1] if frames else ''
        line = f'{type(err).__name__} (at {where}:{frames[-1].lineno})' if frames else \
            type(err).__name__
    return line if len(line) <= limit else line[:limit - 3] + '...'


def student_heads(student: str) -> set:
    """``'dense_head'`` if the student's ``bbox_head`` is an mmdet dense head
    (``BaseDenseHead``: anchor-based, anchor-free, YOLO... not a DETR head), ``'roi_head'`` if
    it has a ``roi_head``."""
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    package, rel = student.split('::')
    # custom imports (e.g. mmpretrain) not imported: the dry runs report them
    model = Config.fromfile(osp.join(zoo_root(package), rel), import_custom_modules=False).model
    heads = set()
    if model.get('roi_head'):
        heads.add('roi_head')
    head = model.get('bbox_head')
    if isinstance(head, dict) and 'type' in head:
        with DefaultScope.overwrite_default_scope('mmdet'):
            cls = MODELS.get(head['type'])
        if isinstance(cls, type) and issubclass(cls, BaseDenseHead):
            heads.add('dense_head')
    return heads


@functools.lru_cache(maxsize=None)
def _distill_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('zoo_check_distill_tool',
                                                  osp.join(REPO, 'tools', 'distill.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dry_run(student: str, teacher: str, method: str, on: Optional[str], work_dir: str) -> dict:
    """``tools/distill.py STUDENT TEACHER none --method METHOD [--on ON] --dry-run`` (its
    ``main``, printing to nowhere); ``status`` 'ok' / 'failed', ``on`` (the place the written
    config reads), ``error`` (the first line; the traceback goes to stderr), ``seconds``."""
    out = osp.join(work_dir, f'{method}_{on or "default"}.py')
    argv = [student, teacher, 'none', '--method', method, '--dry-run', '--out', out,
            '--work-dir', work_dir] + (['--on', on] if on else [])
    start = time.time()
    result = dict(status='ok', on=on, error=None)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            _distill_tool().main(argv)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the row records any failure
        traceback.print_exc()
        result.update(status='failed', error=first_line(err))
    if result['on'] is None and osp.exists(out):
        with open(out) as f:
            found = re.search(r"recipes=\[dict\(type='[^']+', on='([^']+)'", f.read())
        result['on'] = found.group(1) if found else None
    result['seconds'] = round(time.time() - start, 1)
    return result


def _check_batch(task: str, mode: str, size: int) -> dict:
    """Random ``size`` px images for :func:`framework_check`: 2 detection images with a box,
    its mask and a semantic map each (what mask, HTC and panoptic heads train on), or 1
    (tensor) / 2 (loss) segmentation images."""
    import torch
    from mmengine.structures import PixelData

    from mmkd.testing import det_batch, seg_batch
    if task == 'seg':
        return seg_batch(size, n=1 if mode == 'tensor' else 2)
    batch = det_batch(size, masks=True)
    for sample in batch['data_samples']:
        sample.gt_sem_seg = PixelData(sem_seg=torch.zeros((1, size, size), dtype=torch.long))
    return batch


def native_size(cfg) -> Optional[int]:
    """The longer side of the config's test resize (``Resize`` ``scale``: SSD300's 300) or of
    mmseg's fixed input size, at most ``NATIVE_SIZE_CAP``; None if it has neither."""
    sides = []
    pipeline = cfg.get('test_pipeline') or (
        (cfg.get('test_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    for step in pipeline if isinstance(pipeline, list) else []:
        scale = step.get('scale') if isinstance(step, dict) and 'Resize' in str(
            step.get('type')) else None
        if isinstance(scale, (tuple, list)) and all(isinstance(v, int) for v in scale):
            sides.append(max(scale))
    size = ((cfg.model.get('data_preprocessor') or {}).get('size'))
    if isinstance(size, (tuple, list)):
        sides.append(max(size))
    return min(sides[0], NATIVE_SIZE_CAP) if sides else None


def _missing_package(err: BaseException) -> bool:
    """An ImportError, or a message asking to install a package (mmdet's GLIP: 'transformers
    is not installed, please install it by: pip install transformers')."""
    return isinstance(err, ImportError) or bool(
        re.search(r'is not installed|pip install', str(err)))


def framework_check(config: str, task: str) -> dict:
    """Whether mmdet / mmseg alone build ``config`` and run it on random CPU images, as a
    training process would start it: pretrained weights dropped, ``init_weights()`` (the
    heads' own initialisation: random boxes of PyTorch's default init can be degenerate; a
    failure here, e.g. a backbone's own ``pretrained=`` download, is noted and the check goes
    on), SyncBN reverted to BN. It tries, until one runs, a forward in tensor mode (eval) and the
    training forward (loss mode) on ``CHECK_SIZE`` px images (:func:`_check_batch`; mmseg's
    fixed input size set to it), then both at the config's own size (:func:`native_size`:
    SSD needs its 300 px). Tensor mode alone is not enough: some heads cannot run it with
    random weights (HTC finds no RoI to refine).

    Returns:
        dict: ``status`` 'ok' / 'failed', ``kind`` ('package' where building fails for a
        Python package that is not installed (:func:`_missing_package`), else 'framework'),
        ``error`` (the first line; for a model that builds but runs in no try, the first and
        the last try's), ``tried`` (the tries that failed before one ran, with their errors).
    """
    try:
        import torch
        from mmengine.model import revert_sync_batchnorm
        from mmengine.registry import DefaultScope

        from mmkd.models.distillers.model_config import drop_pretrained_init, load_model_file
        from mmkd.testing import fill_uninitialised
        cfg = load_model_file(config)  # imports its custom_imports
        model_cfg = drop_pretrained_init(cfg.model)
        scope = cfg.get('default_scope') or ('mmseg' if task == 'seg' else 'mmdet')
        if scope == 'mmseg':
            from mmseg.registry import MODELS
        else:
            from mmdet.registry import MODELS
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(model_cfg)
    except Exception as err:  # noqa: BLE001 - the row records any failure
        traceback.print_exc()
        return dict(status='failed', error=first_line(err),
                    kind='package' if _missing_package(err) else 'framework')
    tried = {}
    try:
        with DefaultScope.overwrite_default_scope(scope):
            model.init_weights()
    except Exception as err:  # noqa: BLE001 - e.g. a backbone's own `pretrained=` download
        traceback.print_exc()
        tried['init_weights'] = first_line(err)
    model = revert_sync_batchnorm(fill_uninitialised(model))
    native = native_size(cfg)
    for size in [CHECK_SIZE] + ([native] if native and native != CHECK_SIZE else []):
        if getattr(model.data_preprocessor, 'size', None):  # mmseg pads to its fixed size
            model.data_preprocessor.size = (size, size)
        for mode in ('tensor', 'loss'):
            try:
                with torch.set_grad_enabled(mode == 'loss'):
                    model.train(mode == 'loss')
                    data = model.data_preprocessor(_check_batch(task, mode, size),
                                                   mode == 'loss')
                    model(**data, mode=mode)
                return dict(status='ok', kind=None, error=None, tried=tried)
            except Exception as err:  # noqa: BLE001
                traceback.print_exc()
                tried[f'{mode} mode, {size} px'] = first_line(err)
    forwards = [k for k in tried if k != 'init_weights']
    first, last = forwards[0], forwards[-1]
    return dict(status='failed', kind='framework', tried=tried,
                error=f'{first}: {tried[first]}; {last}: {tried[last]}')


def refused(method: dict) -> bool:
    """Whether a method's dry run stopped at mmkd's recipe check, which names why that recipe
    cannot read this pair (``ValueError: recipes[i] (...) ...``: a head without the assigner
    labels, a cascade RoI head, dense heads of different anchors), not at a crash."""
    return method['status'] != 'ok' and str(method.get('error', '')).startswith(
        'ValueError: recipes[')


def verdict(methods: Dict[str, dict], framework: Optional[Dict[str, dict]]) -> str:
    """A row's verdict: ``'ok'`` (every method built), ``'refused'`` (the feature recipe,
    ``pkd``, built; every other method built or was refused by name, see
    :func:`refused`), ``'mmkd'`` (a method failed otherwise, mmdet / mmseg run both models),
    ``'package'`` / ``'framework'`` (a model cannot be run here: a missing package / mmdet or
    mmseg themselves)."""
    if all(m['status'] == 'ok' for m in methods.values()):
        return 'ok'
    first = methods.get('pkd')  # the feature recipe (both tasks)
    if first is not None and first['status'] == 'ok' and all(
            m['status'] == 'ok' or refused(m) for m in methods.values()):
        return 'refused'
    failed = [c for c in (framework or {}).values() if c['status'] != 'ok']
    if not failed:
        return 'mmkd'
    return 'package' if any(c['kind'] == 'package' for c in failed) else 'framework'


def _write_json(path: str, data: dict) -> None:
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(tmp, path)


def run_family(spec: dict) -> dict:
    """The child's work for one family (``spec``: :func:`plan_family`'s dict, ``work_dir``,
    ``out``): every method's dry run, then, if one failed, :func:`framework_check` of the
    student and, if mmdet / mmseg run the student, of the teacher. Writes the row to
    ``spec['out']`` after each step."""
    row = dict(methods={}, framework=None)
    work_dir = spec['work_dir']
    os.makedirs(work_dir, exist_ok=True)
    heads = set()
    if spec['task'] == 'det':
        try:
            heads = student_heads(spec['student'])
        except Exception:  # noqa: BLE001 - unreadable config: the dry runs will say why
            traceback.print_exc()
    for label, method, on, needs in METHODS[spec['task']]:
        if needs and needs not in heads:
            continue
        row['methods'][label] = dry_run(spec['student'], spec['teacher'], method, on, work_dir)
        _write_json(spec['out'], row)
    if any(m['status'] != 'ok' for m in row['methods'].values()):
        row['framework'] = {'student': framework_check(spec['student'], spec['task'])}
        _write_json(spec['out'], row)
        if spec['teacher'] != spec['student'] and row['framework']['student']['status'] == 'ok':
            row['framework']['teacher'] = framework_check(spec['teacher'], spec['task'])
    row['verdict'] = verdict(row['methods'], row['framework'])
    _write_json(spec['out'], row)
    return row


def run_training(spec: dict) -> dict:
    """The child's work for one training case: :func:`mmkd.apis.zoo_training.
    run_training_case`'s dict, written to ``spec['out']``."""
    from mmkd.apis.zoo_training import run_training_case
    result = dict(run_training_case(spec['case'], spec['work_dir']))
    _write_json(spec['out'], result)
    return result


# ----------------------------------------------------------------------------- the sweep


def _slug(key: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.+-]+', '_', key.replace('::', '_'))


def _mmkd_commit() -> Optional[str]:
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _tail(path: str, lines: int = 1) -> str:
    if not osp.exists(path):
        return ''
    with open(path, errors='replace') as f:
        text = [line.rstrip() for line in f if line.strip()]
    return ' | '.join(text[-lines:])


def warm_imports() -> None:
    """Import what every child imports (torch, mmdet's and mmseg's models, mmkd's distiller),
    once, in the parent: the forked children start with them (about 15 s each saved)."""
    import mmdet.models  # noqa: F401
    import mmseg.models  # noqa: F401

    import mmkd.models  # noqa: F401


def _child(target: Callable[[dict], dict], spec: dict, log_path: str) -> None:
    """In the forked child: a session of its own (so that a timeout kills what it started),
    its output to ``log_path``, one torch thread, then ``target(spec)``."""
    os.setsid()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)  # what C code prints
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = open(fd, 'w', buffering=1)  # whatever sys.stdout was
    os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    import torch
    torch.set_num_threads(1)
    target(spec)


def run_child(target: Callable[[dict], dict], spec: dict, timeout: float,
              log_path: str) -> Tuple[dict, float]:
    """Run ``target(spec)`` in a forked process (one torch thread, its output to
    ``log_path``) for at most ``timeout`` seconds; ``target`` writes its result to
    ``spec['out']`` as it goes.

    Returns:
        tuple: (what the child wrote to ``spec['out']``, with ``crash`` set when it did not
        finish: the exit code and the log's last line, or the timeout; seconds).
    """
    import multiprocessing
    os.makedirs(spec['work_dir'], exist_ok=True)
    if osp.exists(spec['out']):
        os.remove(spec['out'])
    start = time.time()
    proc = multiprocessing.get_context('fork').Process(target=_child,
                                                        args=(target, spec, log_path))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the child's session: it and what it started
        proc.join()
        crash = f'timed out after {timeout:.0f} s'
    else:
        crash = (None if proc.exitcode == 0 else
                 f'the process exited with {proc.exitcode}: {_tail(log_path)}')
    seconds = round(time.time() - start, 1)
    result = {}
    if osp.exists(spec['out']):
        with open(spec['out']) as f:
            result = json.load(f)
    if crash:
        result['crash'] = crash
    return result, seconds


def check_family(family: str, work_root: str, timeout: float) -> dict:
    """One family's ledger row: its plan (:func:`plan_family`) and, unless skipped, the
    child's dry runs (:func:`run_family`). A child that crashes or hangs gives the row
    ``verdict`` 'crashed' with what it had recorded."""
    start = time.time()
    plan = plan_family(family)
    row = dict(plan, finished=datetime.datetime.now().isoformat(timespec='seconds'),
               mmkd_commit=_mmkd_commit())
    if plan.get('skipped'):
        return dict(row, verdict='skipped', methods={}, seconds=round(time.time() - start, 1))
    work_dir = osp.join(work_root, _slug(family))
    spec = dict(plan, work_dir=work_dir, out=osp.join(work_dir, 'row.json'))
    result, _ = run_child(run_family, spec, timeout, osp.join(work_root, _slug(family) + '.log'))
    row.update(methods=result.get('methods', {}), framework=result.get('framework'),
               verdict=result.get('verdict', 'crashed'))
    if result.get('crash'):
        row.update(verdict='crashed', crash=result['crash'])
    row['seconds'] = round(time.time() - start, 1)
    row['finished'] = datetime.datetime.now().isoformat(timespec='seconds')
    return row


def _needs_run(entry: Optional[dict], resume: bool, rerun_failed: bool, ok: Callable) -> bool:
    if entry is None or not resume:
        return True
    return rerun_failed and not ok(entry)


def sweep(families: Sequence[str], ledger_path: str, work_root: str, timeout: float = 600,
          resume: bool = True, rerun_failed: bool = False, command: str = '',
          log: Callable[[str], None] = print) -> Dict[str, dict]:
    """Check ``families`` in order, recording each row in the ledger as it finishes.

    Args:
        families: ``'mmdet::retinanet'``...
        ledger_path: The ledger (JSON, ``{family: row}``).
        work_root: Where the children write their configs and logs (``<family>.log``).
        timeout: Seconds one family's child may run.
        resume: Skip a family the ledger has. Defaults to True.
        rerun_failed: With ``resume``, run again the families whose row is not 'ok' or
            'skipped'. Defaults to False.
        command: The command line, recorded in each row.

    Returns:
        dict: The rows run by this call.
    """
    ledger = RunLedger(ledger_path)
    entries = ledger.entries()
    todo = [f for f in families if _needs_run(entries.get(f), resume, rerun_failed,
                                               lambda e: e.get('verdict') in ('ok', 'skipped'))]
    log(f'{len(todo)} of {len(families)} families to run ({len(families) - len(todo)} kept '
        f'from the ledger {ledger_path})')
    if todo:
        warm_imports()
    done = {}
    for i, family in enumerate(todo):
        row = dict(check_family(family, work_root, timeout), command=command)
        ledger.record(family, row)
        done[family] = row
        failed = {k: m['error'] for k, m in row.get('methods', {}).items()
                  if m['status'] != 'ok'}
        log(f'[{i + 1}/{len(todo)}] {family}: {row["verdict"]} ({row["seconds"]} s)'
            + (f' {row.get("skipped") or row.get("crash") or failed}'
               if row['verdict'] != 'ok' else ''))
    return done


def training_cases() -> dict:
    """:data:`mmkd.apis.zoo_training.TRAINING_CASES` (imported here, on use)."""
    from mmkd.apis.zoo_training import TRAINING_CASES
    return TRAINING_CASES


def case_family(case) -> Optional[str]:
    """The family a training case trains (``'mmdet::yolox'``): its ``family``, else the folder
    of the first model-zoo config name among its values; None if it tells none."""
    get = case.get if isinstance(case, dict) else (lambda k, d=None: getattr(case, k, d))
    if get('family'):
        return get('family')
    values = case.values() if isinstance(case, dict) else vars(case).values() \
        if hasattr(case, '__dict__') else ()
    for value in values:
        if isinstance(value, str) and re.match(r'^mm\w+::[^/]+/', value):
            return value.split('/')[0]
    return None


def train_cases(names: Sequence[str], ledger_path: str, work_root: str, timeout: float = 3600,
                resume: bool = True, rerun_failed: bool = False, command: str = '',
                log: Callable[[str], None] = print) -> Dict[str, dict]:
    """Run the training cases ``names`` (all when empty), one child each, recording
    ``train:NAME`` rows (the case's dict, ``family``, ``seconds``)."""
    cases = training_cases()
    unknown = [n for n in names if n not in cases]
    if unknown:
        raise KeyError(f'--train names unknown cases {unknown}; the cases are {sorted(cases)}.')
    ledger = RunLedger(ledger_path)
    entries = ledger.entries()
    todo = [n for n in (names or sorted(cases)) if _needs_run(
        entries.get(f'train:{n}'), resume, rerun_failed, lambda e: e.get('status') == 'ok')]
    if todo:
        warm_imports()
    done = {}
    for name in todo:
        key = f'train:{name}'
        # one folder for all cases: the digits data is made once (run_training_case)
        spec = dict(case=name, work_dir=osp.join(work_root, 'training'),
                    out=osp.join(work_root, 'training', f'{_slug(name)}_result.json'))
        result, seconds = run_child(run_training, spec, timeout, osp.join(work_root,
                                                                     _slug(key) + '.log'))
        if result.get('crash'):
            result.update(status='failed', reason=result.pop('crash'))
        row = dict(result, case=name, family=case_family(cases[name]),
                   seconds=result.get('seconds', seconds), command=command,
                   finished=datetime.datetime.now().isoformat(timespec='seconds'))
        ledger.record(key, row)
        done[key] = row
        log(f'train {name}: {row.get("status")} ({row["seconds"]} s) {row.get("reason") or ""}')
    return done


# ----------------------------------------------------------------------------- the report

VERDICTS = {
    'ok': 'builds',
    'refused': 'builds; a logit recipe refused by name',
    'mmkd': 'mmkd fails',
    'framework': 'mmdet/mmseg cannot run it here',
    'package': 'needs a package mmkd does not install',
    'crashed': 'crashed or timed out (whose: see the log)',
    'skipped': 'not run',
}


def _cell(text) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _stem(config: str) -> str:
    return osp.splitext(config.split('/')[-1])[0]


def _metric(metrics: Optional[dict], key: Optional[str] = None) -> str:
    """``key value`` of a metric dict (or of an exported dict's ``metrics``), its first
    metric without ``key``."""
    if isinstance(metrics, dict) and isinstance(metrics.get('metrics'), dict):
        metrics = metrics['metrics']
    if not metrics:
        return '—'
    key = key if key in metrics else next(iter(metrics))
    value = metrics[key]
    return f'{key} {value:.4f}' if isinstance(value, float) else f'{key} {value}'


def _training_cell(row: dict) -> str:
    if row.get('status') != 'ok':
        return f'failed: {row.get("reason") or "?"}'
    key = next(iter(row.get('last_val') or {}), None)
    return (f'ok; last val {_metric(row.get("last_val"), key)}, exported '
            f'{_metric(row.get("exported"), key)}, equal: {row.get("equal")}')


def _reasons(row: dict) -> str:
    parts = [f'`{label}`: {m["error"]}' for label, m in row.get('methods', {}).items()
             if m['status'] != 'ok']
    for side, check in (row.get('framework') or {}).items():
        if check['status'] != 'ok':
            parts.append(f'{side} alone: {check["error"]}')
    if row.get('crash'):
        parts.append(row['crash'])
    if row.get('skipped'):
        parts.append(row['skipped'])
    return '; '.join(parts)


def report_text(entries: Dict[str, dict], command: str = '') -> str:
    """The Markdown table of a ledger's rows: the command, a summary per package and the
    targets, then one table per package (a row per family) and the training cases."""
    families = {k: v for k, v in entries.items() if not k.startswith('train:')}
    trainings = {k[len('train:'):]: v for k, v in entries.items() if k.startswith('train:')}
    by_family = {}
    for name, row in trainings.items():
        if row.get('family'):
            by_family.setdefault(row['family'], []).append((name, row))
    commands = Counter(r.get('command') for r in entries.values() if r.get('command'))
    lines = ['# Model-zoo compatibility: every mmdet / mmseg config family, distilled', '']
    if command:
        lines += ['Written from the ledger by', '', f'    {command}', '']
    if commands:
        lines += ['The rows come from'] + [''] + [f'    {c}' for c in sorted(commands)] + ['']
    lines += [
        'One student / teacher pair per config folder of the installed model zoos (the same '
        'dataset; the teacher the larger model where the names tell), each method dry-run as '
        'a user would: `tools/distill.py STUDENT TEACHER none --method M --dry-run` (random '
        'weights, meta device). Where a method fails, mmdet / mmseg alone build each model '
        '(pretrained dropped) and run a forward in tensor mode on a CPU batch of '
        f'{CHECK_SIZE} px: when they cannot either, the failure is not mmkd\'s. Run on the '
        'working tree over commit(s) ' + ', '.join(sorted({str(r.get('mmkd_commit')) for r in
                                                          families.values()})) + '.', '']
    # summary
    lines += ['## Summary', '',
              '| package | families | every method builds | ' +
              ' | '.join(VERDICTS[v] for v in ('refused', 'mmkd', 'framework', 'package',
                                               'crashed')) +
              ' | not run (no model config, video / semi-supervised wrappers) |',
              '|---' * 9 + '|']
    for row in families.values():  # rows of an older ledger: today's rules
        if row.get('verdict') not in ('skipped', 'crashed') and row.get('methods'):
            row['verdict'] = verdict(row['methods'], row.get('framework'))
    run = {k: v for k, v in families.items() if v.get('verdict') != 'skipped'}
    for package in PACKAGES + ('all', ):
        rows = [v for k, v in run.items() if package == 'all' or k.startswith(package + '::')]
        skipped = [k for k, v in families.items() if v.get('verdict') == 'skipped' and
                   (package == 'all' or k.startswith(package + '::'))]
        count = Counter(r.get('verdict') for r in rows)
        lines.append(f'| {package} | {len(rows)} | {count["ok"]} | {count["refused"]} | '
                     f'{count["mmkd"]} | '
                     f'{count["framework"]} | {count["package"]} | {count["crashed"]} | '
                     f'{len(skipped)} |')
    method_counts = Counter()
    for row in run.values():
        for label, m in row.get('methods', {}).items():
            method_counts[(row['package'], label, m['status'])] += 1
    lines += ['', 'Per method (families where it applies: builds / tried):', '']
    for package, label in sorted({(p, lb) for p, lb, _ in method_counts}):
        ok = method_counts[(package, label, 'ok')]
        total = ok + method_counts[(package, label, 'failed')]
        lines.append(f'- {package} `{label}`: {ok} / {total}')
    runnable = sorted(k for k, v in run.items()
                      if v.get('verdict') in ('ok', 'refused', 'mmkd', 'crashed'))
    missing = [k for k in runnable if run[k]['verdict'] not in ('ok', 'refused')]
    refusals = [k for k in runnable if run[k]['verdict'] == 'refused']
    lines += ['', '## Targets', '',
              '- Dry run, every family that mmdet / mmseg can build and run here: '
              f'**{len(runnable) - len(missing)} of {len(runnable)}** build their feature '
              'recipe and every logit recipe that reads their heads' +
              (f' (not met: {", ".join(missing)}).' if missing else ' (met).') +
              (f' Of those, {len(refusals)} refuse a logit recipe at build with a named reason '
               '(a head without assigner labels such as YOLOX\'s, a cascade RoI head, dense '
               'heads of different anchors in the chosen pair): '
               f'{", ".join(refusals)}.' if refusals else '')]
    if trainings:
        good = [n for n, r in trainings.items() if r.get('status') == 'ok' and r.get('equal')]
        lines.append(f'- Training through the config\'s hooks: **{len(good)} of '
                     f'{len(trainings)}** cases train, evaluate and export with the exported '
                     'metric equal to the last validation\'s' +
                     ('.' if len(good) == len(trainings) else
                      f' (not: {", ".join(sorted(set(trainings) - set(good)))}).'))
    else:
        lines.append('- Training: no training case in the ledger (run with `--train`).')
    # per package
    for package in PACKAGES:
        rows = {k: v for k, v in families.items() if k.startswith(package + '::')}
        if not rows:
            continue
        task = 'seg' if package == 'mmseg' else 'det'
        labels = [m[0] for m in METHODS[task]]
        header = ' | '.join(f'`{label}`' for label in labels)
        lines += ['', f'## {package}', '',
                  f'| family | student ← teacher (pair) | {header} | verdict | training | '
                  'reasons |', '|---' * (len(labels) + 5) + '|']
        for family, row in sorted(rows.items()):
            if row.get('student'):
                pair = f'{_stem(row["student"])} ← {_stem(row["teacher"])}'
                pair += {'self': ' (self-distillation)',
                         'same dataset': ' (same dataset, sizes not in the names)'}.get(
                             row.get('pair'), '')
            else:
                pair = '—'
            cells = []
            for label in labels:
                m = row.get('methods', {}).get(label)
                cells.append('—' if m is None else
                             (f'ok ({m.get("on")})' if m['status'] == 'ok' else
                              'refused' if refused(m) else 'failed'))
            training = '<br>'.join(f'{n}: {_training_cell(r)}'
                                   for n, r in sorted(by_family.get(family, []))) or '—'
            lines.append(f'| {family.split("::")[1]} | {_cell(pair)} | ' + ' | '.join(cells) +
                         f' | {VERDICTS.get(row.get("verdict"), row.get("verdict"))} | '
                         f'{_cell(training)} | {_cell(_reasons(row))} |')
    if trainings:
        lines += ['', '## Training cases', '',
                  '| case | family | status | last validation | exported | equal | hooks fired '
                  '(switch epoch) | seconds | reason |', '|---' * 9 + '|']
        for name, row in sorted(trainings.items()):
            key = next(iter(row.get('last_val') or {}), None)
            switches = row.get('switches') or {}
            hooks = ', '.join(f'{h} ({switches[h]})' if h in switches else str(h)
                              for h in row.get('hooks_fired') or []) or '—'
            lines.append(f'| {name} | {row.get("family") or "—"} | {row.get("status")} | '
                         f'{_cell(_metric(row.get("last_val"), key))} | '
                         f'{_cell(_metric(row.get("exported"), key))} | {row.get("equal")} | '
                         f'{_cell(hooks)} | {row.get("seconds")} | '
                         f'{_cell(row.get("reason") or "")} |')
    return '\n'.join(lines) + '\n'


def write_report(ledger_path: str, out: str, command: str = '') -> str:
    """Write :func:`report_text` of the ledger to ``out`` (atomically); return ``out``."""
    text = report_text(RunLedger(ledger_path).entries(), command)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = f'{out}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, out)
    return out
