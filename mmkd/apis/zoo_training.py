"""Model-zoo training cases: short distillation runs of mmdet / mmseg model-zoo configs through
the configs' own hooks, schedule and EMA, on the embedded digits data.

A case (:class:`ZooCase`, :data:`TRAINING_CASES`) names a student and a teacher config of the
same family and a recipe. :func:`run_training_case` runs it as a user would:

1. writes the distillation config with ``tools/distill.py``'s writer
   (:func:`mmkd.apis.distill.distill_config_text`), then cuts it down to a short digits run
   (:func:`mmkd.apis.zoo_adaptation.adapt_to_digits`: data, sizes, classes, ``epochs``
   epochs, the hooks' switch points at the start of the last epoch, random teacher) and
   dumps it next to the run (``<work_dir>/<name>/<name>.py``, runnable by tools/train.py);
2. trains it with mmkd's runtime (:func:`mmkd.engine.runtime.load_config` and
   :func:`~mmkd.engine.runtime.train`, what tools/train.py does), in this process, with
   :class:`ZooCaseRecorderHook` added: it records which of the config's own hooks fired,
   each hook's switch, the validation metrics and a fingerprint of the validated student
   weights (after EMAHook swapped its average in), and checks each switch's effect:
   ``YOLOXModeSwitchHook`` (the student's ``bbox_head.use_l1``, the mosaic transforms
   skipped), ``PipelineSwitchHook`` (the training pipeline is the switch pipeline),
   ``EMAHook`` (the averaged model exists, has averaged, and shares the Distiller's teachers
   instead of copying them), each at the start of the last epoch;
3. exports the student of the last checkpoint (:func:`mmkd.engine.export.export_student`)
   and evaluates it alone with mmengine's Runner on the student's config (mmdet's / mmseg's
   models, loops and metrics), on the same validation set.

The case is ``'ok'`` when all of that ran, every check held and the exported student is the
validated one: the same weights (fingerprint) and the same metrics (to float precision) as
the last validation.
"""
import hashlib
import json
import math
import os
import os.path as osp
import time
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS

#: The recorder hook's record, next to the run's checkpoints.
RECORD_FILE = 'zoo_case_record.json'
#: The case's result, next to it.
RESULT_FILE = 'zoo_case_result.json'
#: Defaults of ``run_training_case``'s ``**small``.
SMALL_DEFAULTS = dict(size=96, num_train=8, num_val=4, batch_size=2, seed=0)
#: The method of a case that names none, per task (tools/distill.py's defaults: PKD on the
#: features for detection, CWD on the logits for segmentation).
DEFAULT_METHODS = {'det': 'PKD', 'seg': 'CWD'}


@dataclass(frozen=True)
class ZooCase:
    """One training case.

    Args:
        student (str): The student's model-zoo config (``mmdet::...`` / ``mmseg::...``).
        teacher (str): The teacher's, of the same family and dataset.
        method (str, optional): The recipe; None: :data:`DEFAULT_METHODS` of the task.
        on (str, optional): Where it reads; None: tools/distill.py's default place.
        student_options (dict): ``cfg_options`` of the student's config (e.g. narrower layers
            for a fast test). Defaults to none.
        teacher_options (dict): The same for the teacher. Defaults to none.
        note (str): What the case covers.
    """
    student: str
    teacher: str
    method: Optional[str] = None
    on: Optional[str] = None
    student_options: dict = field(default_factory=dict)
    teacher_options: dict = field(default_factory=dict)
    note: str = ''

    @property
    def family(self) -> str:
        """The model-zoo folder of the student, e.g. ``'mmdet::yolox'``."""
        return self.student.rsplit('/', 1)[0]


_DET, _SEG = 'mmdet::', 'mmseg::'
_NO_CE_CLASS_WEIGHT = {'model.decode_head.loss_decode.0.class_weight': None}
TRAINING_CASES: Dict[str, ZooCase] = {
    'yolox': ZooCase(_DET + 'yolox/yolox_tiny_8xb8-300e_coco.py',
                     _DET + 'yolox/yolox_s_8xb8-300e_coco.py',
                     note='YOLOXModeSwitchHook (mosaic off, L1 loss on), SyncNormHook, EMA'),
    'rtmdet': ZooCase(_DET + 'rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
                      _DET + 'rtmdet/rtmdet_s_8xb32-300e_coco.py',
                      note='PipelineSwitchHook, EMA, SyncBN, dynamic validation intervals'),
    # DINO selects its queries with a top-k over the encoder's tokens (4 levels, strides 8 to
    # 64): 900 queries need images of about 210 px; 50 fit the 64 px a short run's images can
    # be resized to (85 tokens).
    'dino': ZooCase(_DET + 'dino/dino-4scale_r50_8xb2-12e_coco.py',
                    _DET + 'dino/dino-4scale_r50_8xb2-12e_coco.py',
                    student_options={'model.num_queries': 50},
                    teacher_options={'model.num_queries': 50},
                    note='DETR-like (denoising queries), gradient clipping; 50 queries'),
    'ddq': ZooCase(_DET + 'ddq/ddq-detr-4scale_r50_8xb2-12e_coco.py',
                   _DET + 'ddq/ddq-detr-4scale_r50_8xb2-12e_coco.py',
                   note='DETR-like with dense distinct queries'),
    'mask2former_instance': ZooCase(
        _DET + 'mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
        _DET + 'mask2former/mask2former_r101_8xb2-lsj-50e_coco.py',
        note='no neck, iteration-based schedule, LSJ, class weights with no-object'),
    # not solov2-light: its train_cfg (by_epoch=True on top of the base's EpochBasedTrainLoop)
    # is rejected by mmengine's Runner ("Only one of `type` or `by_epoch`"), alone too
    'solov2': ZooCase(_DET + 'solov2/solov2_r50_fpn_1x_coco.py',
                      _DET + 'solov2/solov2_r101_fpn_ms-3x_coco.py',
                      note='instance masks without boxes'),
    'centernet': ZooCase(_DET + 'centernet/centernet-update_r18_fpn_8xb8-amp-lsj-200e_coco.py',
                         _DET + 'centernet/centernet-update_r50_fpn_8xb8-amp-lsj-200e_coco.py',
                         note='AMP (bfloat16 on CPU), RepeatDataset, LSJ'),
    'mask2former_semantic': ZooCase(
        _SEG + 'mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
        _SEG + 'mask2former/mask2former_r101_8xb2-160k_ade20k-512x512.py',
        note='mask classification head, mmdet modules (custom_imports)'),
    'segmenter': ZooCase(_SEG + 'segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py',
                         _SEG + 'segmenter/segmenter_vit-s_mask_8xb1-160k_ade20k-512x512.py',
                         note='mask classification head (mask transformer), no neck'),
    # mmseg 1.2.2's CrossEntropyLoss with class weights indexes them with the ignored label
    # 255 (IndexError; open-mmlab/mmsegmentation#3734, PIDNet alone fails the same way on
    # Cityscapes): its first loss trains without class weights, the OHEM losses keep theirs.
    'pidnet': ZooCase(_SEG + 'pidnet/pidnet-s_2xb6-120k_1024x1024-cityscapes.py',
                      _SEG + 'pidnet/pidnet-m_2xb6-120k_1024x1024-cityscapes.py',
                      student_options=_NO_CE_CLASS_WEIGHT, teacher_options=_NO_CE_CLASS_WEIGHT,
                      note='class-weighted OHEM losses, boundary branch, SyncBN; the plain '
                      'cross-entropy without class weights (mmseg bug #3734)'),
    'segformer': ZooCase(_SEG + 'segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
                         _SEG + 'segformer/segformer_mit-b1_8xb2-160k_ade20k-512x512.py',
                         note='transformer backbone, AdamW with custom keys'),
    'ocrnet': ZooCase(_SEG + 'ocrnet/ocrnet_hr18s_4xb4-80k_ade20k-512x512.py',
                      _SEG + 'ocrnet/ocrnet_hr18_4xb4-80k_ade20k-512x512.py',
                      note='cascade decode heads (a list)'),
    'bisenetv1': ZooCase(_SEG + 'bisenetv1/bisenetv1_r18-d32_4xb4-160k_coco-stuff164k-512x512.py',
                         _SEG + 'bisenetv1/bisenetv1_r50-d32_4xb4-160k_coco-stuff164k-512x512.py',
                         note='auxiliary heads (a list)'),
}


def run_training_case(name: str, work_dir: str, epochs: int = 3, **small) -> dict:
    """Run the training case ``name`` (see the module docstring) in ``<work_dir>/<name>``.

    Args:
        name (str): A key of :data:`TRAINING_CASES`.
        work_dir (str): Where the digits data (``<work_dir>/digits``, made once, remade when
            the arguments differ) and the case's run go.
        epochs (int): Training epochs. Defaults to 3.
        **small: The run's size, any of :data:`SMALL_DEFAULTS`: ``size`` (image side),
            ``num_train`` / ``num_val`` (images), ``batch_size``, ``seed`` (of the data).

    Returns:
        dict: ``status`` (``'ok'`` / ``'failed'``), ``reason`` (for a failure: the stage, the
        exception or the failed check), ``last_val`` (the last validation's metrics),
        ``exported`` (the exported ``checkpoint`` and ``config`` and their ``metrics``),
        ``equal`` (the exported student evaluates to the last validation's metrics and its
        weights are the validated ones), ``seconds``, ``hooks_fired`` (the config's own
        ``custom_hooks`` that fired: a switch hook that switched, an EMAHook that averaged,
        any other whose own hook methods ran; after a crash, those whose methods ran),
        ``switches`` (``{hook: the epoch it switched at}``, 1-based), ``checks``
        (``{check: passed}``), ``config`` (the run's config). Also written to
        ``<work_dir>/<name>/zoo_case_result.json``; a failure's traceback to ``error.txt``.
    """
    if name not in TRAINING_CASES:
        raise KeyError(f'Unknown training case {name!r}; the cases are {sorted(TRAINING_CASES)}.')
    unknown = set(small) - set(SMALL_DEFAULTS)
    if unknown:
        raise TypeError(f'run_training_case() got unknown options {sorted(unknown)}; the '
                        f'options are {sorted(SMALL_DEFAULTS)}.')
    settings = dict(SMALL_DEFAULTS, **small)
    case_dir = osp.abspath(osp.join(work_dir, name))
    result = dict(name=name, status='failed', reason='', last_val={}, exported={}, equal=False,
                  seconds=0.0, hooks_fired=[], switches={}, checks={}, config=None)
    start = time.perf_counter()
    stage = 'config'
    _remove_old_run(case_dir)
    try:
        data_root = ensure_digits(osp.join(work_dir, 'digits'), settings)
        result['config'] = config = write_case_config(name, case_dir, data_root, epochs,
                                                      settings)
        stage = 'train'
        try:
            _train(config, case_dir)
        finally:
            record = _read_record(case_dir)
            # a run that stopped early: the hooks whose own methods ran until then
            fired = record.get('hooks_fired') if record.get('finished') else [
                hook for hook, calls in record.get('calls', {}).items() if calls]
            result.update(hooks_fired=fired or [], switches=record.get('switches', {}),
                          checks=record.get('checks', {}))
            if record.get('val'):
                result['last_val'] = record['val'][-1]['metrics']
        stage = 'hooks'
        if record.get('problems'):
            raise RuntimeError('; '.join(record['problems']))
        stage = 'export'
        exported = export_and_evaluate(case_dir)
        result['exported'] = {k: v for k, v in exported.items() if k != 'sha1'}
        stage = 'compare'
        last = record['val'][-1]
        same_weights = exported['sha1'] == last['student_sha1']
        differences = metric_differences(last['metrics'], exported['metrics'])
        result['checks']['exported weights are the validated ones'] = same_weights
        result['checks']['exported metrics equal the last validation'] = not differences
        result['equal'] = same_weights and not differences
        if not result['equal']:
            raise RuntimeError('the exported student is not the validated one: ' + (
                '; '.join(differences) if differences else 'its weights differ'))
        result['status'] = 'ok'
    except Exception as err:  # a compatibility run reports every failure, it does not stop
        message = str(err).strip().splitlines()
        result['reason'] = f'{stage}: {type(err).__name__}: {message[0] if message else ""}'
        os.makedirs(case_dir, exist_ok=True)
        with open(osp.join(case_dir, 'error.txt'), 'w') as f:
            f.write(traceback.format_exc())
    result['seconds'] = round(time.perf_counter() - start, 1)
    os.makedirs(case_dir, exist_ok=True)
    with open(osp.join(case_dir, RESULT_FILE), 'w') as f:
        json.dump(result, f, indent=1, default=str)
    return result


def ensure_digits(root: str, settings: dict) -> str:
    """``root`` holding the digits set of ``settings`` (``size``, ``num_train``, ``num_val``,
    ``seed``), written unless it already does."""
    from mmkd.datasets import make_digits_dataset
    wanted = dict(size=settings['size'], seed=settings['seed'])
    counts = dict(train=settings['num_train'], val=settings['num_val'])
    try:
        for split, count in counts.items():
            with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
                coco = json.load(f)
            info = coco['info']
            if len(coco['images']) != count or any(info.get(k) != v for k, v in wanted.items()):
                raise ValueError('other arguments')
    except (OSError, ValueError, KeyError):
        make_digits_dataset(root, num_train=counts['train'], num_val=counts['val'], **wanted)
    return root


def write_case_config(name: str, case_dir: str, data_root: str, epochs: int,
                      settings: dict) -> str:
    """Write the case's distillation config as tools/distill.py does
    (``<case_dir>/<name>_distill.py``), then its short digits run (``<case_dir>/<name>.py``,
    with :class:`ZooCaseRecorderHook`); returns the latter's path."""
    from mmkd.apis.distill import default_place, distill_config_text, load_config, task_of
    from mmkd.engine.runtime import load_config as load_train_config
    from .zoo_adaptation import ShortRun, adapt_to_digits
    case = TRAINING_CASES[name]
    student_cfg, teacher_cfg = load_config(case.student), load_config(case.teacher)
    task = task_of(student_cfg)
    method = case.method or DEFAULT_METHODS[task]
    on = case.on or default_place(method, task, student_cfg, teacher_cfg)
    os.makedirs(case_dir, exist_ok=True)
    written = osp.join(case_dir, f'{name}_distill.py')
    with open(written, 'w') as f:
        f.write(distill_config_text(case.student, case.teacher, None,
                                    [dict(type=method, on=on)], student_cfg,
                                    teacher_cfg=teacher_cfg))
    cfg = load_train_config(written, work_dir=case_dir)
    run = ShortRun(data_root=data_root, task=task, size=settings['size'],
                   num_train=settings['num_train'], batch_size=settings['batch_size'],
                   epochs=epochs)
    adapt_to_digits(cfg, run, case.student_options, case.teacher_options)
    watched = [h['type'] for h in cfg.get('custom_hooks') or []]
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(
        type='mmkd.ZooCaseRecorderHook', out_file=osp.join(case_dir, RECORD_FILE),
        watch=watched)]
    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    cfg.custom_imports = dict(imports=imports + [__name__], allow_failed_imports=False)
    path = osp.join(case_dir, f'{name}.py')
    cfg.dump(path)
    return path


def _remove_old_run(case_dir: str) -> None:
    """Forget an earlier run's record and last checkpoint: they must not pass for this one."""
    for file in (RECORD_FILE, 'last_checkpoint', 'error.txt', RESULT_FILE):
        if osp.exists(osp.join(case_dir, file)):
            os.remove(osp.join(case_dir, file))


def _train(config: str, case_dir: str) -> None:
    """What tools/train.py does with ``config``."""
    from mmkd.engine.runtime import load_config, train
    train(load_config(config, work_dir=case_dir))


def _read_record(case_dir: str) -> dict:
    path = osp.join(case_dir, RECORD_FILE)
    if not osp.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def export_and_evaluate(case_dir: str) -> dict:
    """Export the student of the run's last checkpoint and test it alone with mmengine's Runner
    on the student's config (its validation set as test set).

    Returns:
        dict: ``checkpoint``, ``config``, ``metrics`` and ``sha1`` (the weights' fingerprint).
    """
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmkd.engine.export import export_student
    with open(osp.join(case_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    checkpoint, config = export_student(last, osp.join(case_dir, 'exported', 'student.pth'))
    cfg = Config.fromfile(config)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks') or []
                        if 'ZooCaseRecorderHook' not in h['type']]
    cfg.work_dir = osp.join(case_dir, 'exported')
    cfg.load_from = checkpoint
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    return dict(checkpoint=checkpoint, config=config, metrics=_plain(metrics),
                sha1=weights_sha1(state))


def metric_differences(validated: dict, tested: dict, rel_tol: float = 1e-6) -> List[str]:
    """What differs between the last validation's metrics and the exported student's test
    (every tested metric must be among the validated ones and equal to float precision)."""
    differences = []
    for key, value in tested.items():
        if key not in validated:
            differences.append(f'{key} was not validated')
        elif isinstance(value, (int, float)) and not math.isclose(
                value, validated[key], rel_tol=rel_tol, abs_tol=1e-9):
            differences.append(f'{key}: validated {validated[key]}, exported {value}')
    return differences


def weights_sha1(state_dict: dict) -> str:
    """A fingerprint of a state dict: names, dtypes, shapes and bytes of every tensor."""
    digest = hashlib.sha1()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f'{key}:{tensor.dtype}:{tuple(tensor.shape)}'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _plain(metrics: dict) -> dict:
    """JSON-ready metrics (numpy and torch scalars as floats)."""
    out = {}
    for key, value in metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            out[key] = str(value)
    return out


@HOOKS.register_module()
class ZooCaseRecorderHook(Hook):
    """Records what the config's own hooks did during a training case (module docstring).

    Runs after every other hook (lowest priority), so at ``before_train_epoch`` the switch
    hooks have switched and at ``before_val_epoch`` EMAHook has swapped its average in. The
    record (``out_file``, rewritten after every epoch and validation, so that a crash leaves
    what came before it): ``epochs`` (per epoch: which watched hooks had switched, the
    training pipeline's transforms, the student head's ``use_l1`` where it has one), ``val``
    (per validation: ``metrics`` and ``student_sha1``, the fingerprint of the student's state
    dict as validated), ``calls`` (how often each watched hook's own methods ran),
    ``hooks_fired`` (a switch hook that switched, an EMAHook that averaged, any other whose
    own methods ran), ``switches`` (the epoch each switch hook switched at, 1-based),
    ``checks``, ``problems`` (the failed checks) and ``finished``, the last five at the end
    of training.

    Args:
        out_file (str): Where the record goes (JSON).
        watch (list[str]): The hooks to watch: the config's ``custom_hooks`` types.
    """
    priority = 'LOWEST'

    def __init__(self, out_file: str, watch: List[str] = ()):
        self.out_file = out_file
        self.watch = [str(w).split('.')[-1] for w in watch]
        self.record = dict(epochs=[], val=[], calls={}, hooks_fired=[], switches={},
                           checks={}, problems=[])

    def before_run(self, runner) -> None:
        for hook in runner.hooks:
            name = type(hook).__name__
            if name in self.watch:
                self.record['calls'][name] = 0
                for method in _own_hook_methods(hook):
                    setattr(hook, method, self._counting(name, getattr(hook, method)))

    def _counting(self, name: str, method):
        def counted(*args, **kwargs):
            self.record['calls'][name] += 1
            return method(*args, **kwargs)
        return counted

    def before_train_epoch(self, runner) -> None:
        model = _unwrap(runner.model)
        head = getattr(model.student, 'bbox_head', None)
        self.record['epochs'].append(dict(
            epoch=runner.epoch + 1,
            switched={type(h).__name__: bool(h._has_switched) for h in self._watched(runner)
                      if hasattr(h, '_has_switched')},
            transforms=_pipeline_types(runner.train_dataloader.dataset),
            use_l1=getattr(head, 'use_l1', None)))
        self._dump()

    def before_val_epoch(self, runner) -> None:
        self._validated = weights_sha1(_unwrap(runner.model).student.state_dict())

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.record['val'].append(dict(epoch=runner.epoch, iter=runner.iter,
                                       metrics=_plain(metrics or {}),
                                       student_sha1=self._validated))
        self._dump()

    def after_train(self, runner) -> None:
        model = _unwrap(runner.model)
        epochs = self.record['epochs']
        checks = {}
        for hook in self._watched(runner):
            name = type(hook).__name__
            fired = self.record['calls'].get(name, 0) > 0
            if hasattr(hook, '_has_switched'):
                switched_at = next((e['epoch'] for e in epochs if e['switched'].get(name)), None)
                self.record['switches'][name] = switched_at
                fired = switched_at is not None
                checks[f'{name} switched at the last epoch'] = switched_at == runner.max_epochs
                checks.update(_switch_effects(hook, model, epochs[-1]))
            if name == 'EMAHook':
                ema = getattr(hook, 'ema_model', None)
                fired = ema is not None and int(ema.steps) > 0
                checks['EMAHook averaged every iteration'] = fired and int(
                    ema.steps) == runner.iter
                checks['EMAHook shares the teachers (no copy)'] = (
                    ema is not None and ema.module.teachers is model.teachers)
            if fired:
                self.record['hooks_fired'].append(name)
        self.record['checks'] = checks
        self.record['problems'] = [f'check failed: {c}' for c, ok in checks.items() if not ok]
        self.record['finished'] = True
        self._dump()

    def _watched(self, runner):
        return [h for h in runner.hooks if type(h).__name__ in self.watch]

    def _dump(self) -> None:
        with open(self.out_file, 'w') as f:
            json.dump(self.record, f, indent=1, default=str)


def _switch_effects(hook, model, last_epoch: dict) -> Dict[str, bool]:
    """The observable effect of a switch hook on the last epoch."""
    name = type(hook).__name__
    transforms = last_epoch['transforms']
    if name == 'YOLOXModeSwitchHook':
        return {
            'YOLOXModeSwitchHook set the student head use_l1': model.student.bbox_head.use_l1
            is True and last_epoch['use_l1'] is True,
            'YOLOXModeSwitchHook skipped ' + '/'.join(hook.skip_type_keys):
            not set(hook.skip_type_keys) & set(transforms)}
    if name == 'PipelineSwitchHook':
        wanted = [str(t['type']).split('.')[-1] for t in hook.switch_pipeline]
        return {'PipelineSwitchHook set the switch pipeline': transforms == wanted}
    return {}


def _own_hook_methods(hook) -> List[str]:
    """The hook-point methods ``hook``'s class defines itself (not mmengine's no-op ones)."""
    return [name for name in Hook.__dict__ if not name.startswith('_')
            and callable(Hook.__dict__[name]) and getattr(type(hook), name) is not
            Hook.__dict__[name] and name not in ('every_n_epochs', 'every_n_iters',
                                                 'every_n_inner_iters', 'end_of_epoch',
                                                 'is_last_train_epoch', 'is_last_train_iter')]


def _pipeline_types(dataset) -> List[str]:
    """The transform types the training dataset applies now (a MultiImageMixDataset's
    skipped types left out; through other wrappers to the dataset with a pipeline)."""
    while not hasattr(dataset, 'pipeline') and hasattr(dataset, 'dataset'):
        dataset = dataset.dataset
    pipeline = getattr(dataset, 'pipeline', None)
    transforms = getattr(pipeline, 'transforms', pipeline) or []
    skipped = set(getattr(dataset, '_skip_type_keys', None) or ())
    return [type(t).__name__ for t in transforms if type(t).__name__ not in skipped]


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


__all__ = ['TRAINING_CASES', 'ZooCase', 'ZooCaseRecorderHook', 'run_training_case',
           'write_case_config', 'export_and_evaluate']
