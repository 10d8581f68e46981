"""Convert an MMRazor 1.x distillation config into an mmkd one.

    python tools/convert_mmrazor_config.py MMRAZOR_CONFIG OUT.py

MMRazor (``_scope_='mmrazor'``, ``type='FpnTeacherDistill'`` / ``'SingleTeacherDistill'``) nests
recorders, connectors, losses and mappings in ``distiller=dict(...)`` and names its parts
differently; mmkd's ``Distiller`` takes the same dicts directly. The conversion renames the parts
that have an mmkd equivalent (table below and in docs/en/user_guides/port_mmrazor.md), folds
MMRazor's ``MGDConnector`` into mmkd's ``MGDLoss`` (which owns its generator) and the FBKD
connectors into ``FBKDLoss``, gives ``FGDLoss`` the batch's ground truth through its mapping, and
replaces the validation loop. The published PCKA code's configs (an MMRazor fork:
``CenterKernelAlignmentRKD`` / ``CenterKernelAlignmentSeg``
fed ``student_logits`` / ``teacher_logits``) convert to ``PCKALoss`` (resizing small levels up
as that code does) / ``CKALoss``. mmdet 2 / mmseg 0.x model-zoo names (``cfg_path``) become
the installed release's files (``mmkd.models.distillers.zoo_names``); ``pretrained=True``
becomes the model-zoo checkpoint it loads in MMRazor (``--teacher-ckpt`` chooses the teacher's
where that and ``teacher_ckpt`` differ). Anything it does not know fails with the list of what
it does know, and a part that needs a package mmkd does not install (mmrazor's hooks, mmyolo)
fails naming it: nothing is silently dropped. The output is the fully merged config (bases
inlined), ready for ``tools/train.py``.
"""
import argparse
import copy
import importlib.util
import os.path as osp
from typing import Optional, Tuple

from mmengine.config import Config, ConfigDict

ALGORITHMS = ('FpnTeacherDistill', 'SingleTeacherDistill')
RECORDERS = {'ModuleOutputs': 'ModuleOutputsRecorder', 'ModuleInputs': 'ModuleInputsRecorder',
             'MethodOutputs': 'MethodOutputsRecorder', 'MethodInputs': 'MethodInputsRecorder'}
#: MMRazor loss type -> (mmkd type, {MMRazor argument: mmkd argument or None to drop})
LOSSES = {
    'ChannelWiseDivergence': ('CWDLoss', {'tau': 'tau', 'loss_weight': 'loss_weight'}),
    'KLDivergence': ('KDLoss', {'tau': 'tau', 'loss_weight': 'loss_weight',
                                'reduction': None, 'teacher_detach': None}),
    'DKDLoss': ('DKDLoss', {'tau': 'tau', 'alpha': 'alpha', 'beta': 'beta',
                            'loss_weight': 'loss_weight', 'reduction': None}),
    'PKDLoss': ('PKDLoss', {'loss_weight': 'loss_weight', 'resize_stu': 'resize_stu'}),
    'ATLoss': ('ATLoss', {'loss_weight': 'loss_weight'}),
    'FGDLoss': ('FGDLoss', {'in_channels': None, 'temp': 'tau', 'alpha_fgd': 'alpha_fgd',
                            'beta_fgd': 'beta_fgd', 'gamma_fgd': 'gamma_fgd',
                            'lambda_fgd': 'lambda_fgd'}),
    'MGDLoss': ('MGDLoss', {'alpha_mgd': 'loss_weight'}),
    'FBKDLoss': ('FBKDLoss', {'mask_l2_weight': 'mask_l2_weight', 'loss_weight': 'loss_weight',
                              'channel_weight': 'channel_weight',
                              'spatial_weight': 'spatial_weight',
                              'nonloacl_weight': 'nonlocal_weight'}),  # MMRazor's spelling
}
#: MMRazor's FBKD connectors, folded into mmkd's FBKDLoss: {argument: FBKDLoss argument, or
#: None for one that must keep its default}, and those defaults.
FBKD_CONNECTORS = ('FBKDStudentConnector', 'FBKDTeacherConnector')
FBKD_ARGS = {'reduction': 'reduction', 'mode': 'mode', 'sub_sample': 'sub_sample',
             'maxpool_stride': 'maxpool_stride', 'norm_cfg': 'norm_cfg',
             'spatial_T': 'spatial_temperature'}
FBKD_DEFAULTS = {'reduction': 2, 'mode': 'dot_product', 'sub_sample': False,
                 'maxpool_stride': 2, 'norm_cfg': dict(type='BN'), 'spatial_T': 0.5}
FBKD_FIXED = {'zeros_init': True, 'conv_cfg': dict(type='Conv2d'), 'init_cfg': None}
#: The published PCKA code's losses (an MMRazor fork, https://github.com/Klayand/PCKA): their
#: arguments and, for those its loss modules ignore or fix, the only values mmkd accepts.
PUBLISHED_CKA = {
    # patch-wise CKA on one FPN level -> PCKALoss resizing small levels up as that code does
    'CenterKernelAlignmentRKD': dict(
        type='PCKALoss', patch_size=16, centered=False, small_levels='upsample',
        fixed=dict(with_l2_norm=False, combined_KD=False)),
    # CKA on segmentation logits -> CKALoss computing the published two terms
    'CenterKernelAlignmentSeg': dict(
        type='CKALoss', feature_weight=0.0, centered=False, logit_terms='published',
        fixed=dict(with_l2_norm=True, combined_KD=False, soften=False)),
}
#: Both published losses ignore ce_weight (their distillers' classification term) and read
#: temperature only with combined_KD / soften, which must be False.
PUBLISHED_CKA_IGNORED = ('ce_weight', 'temperature')
#: MMRazor loss type -> {its forward argument: mmkd's}, for losses that name them otherwise.
FORWARD_ARGS = {kind: {'student_logits': 'preds_S', 'teacher_logits': 'preds_T'}
                for kind in PUBLISHED_CKA}
FORWARD_ARGS['FBKDLoss'] = {'s_input': 'preds_S', 't_input': 'preds_T'}
CONNECTORS = {'ConvModuleConnector': 'ConvConnector'}
MGD_CONNECTORS = ('MGDConnector', 'MGDConncetor')  # MMRazor's configs use the misspelling
#: ConvModuleConnector arguments mmkd's ConvConnector takes (renamed) or that must be default.
CONV_ARGS = {'in_channel': 'in_channels', 'out_channel': 'out_channels',
             'kernel_size': 'kernel_size', 'norm_cfg': 'norm_cfg', 'act_cfg': 'act_cfg'}
#: Algorithm-level keys: converted, or accepted when set to what mmkd always does.
MODEL_KEYS = {'_scope_', 'type', 'architecture', 'teacher', 'teacher_ckpt', 'distiller',
              'data_preprocessor'}  # mmkd runs the student's and teacher's own preprocessors
FIXED_MODEL_KEYS = {'teacher_trainable': False, 'teacher_norm_eval': True,
                    'student_trainable': True, 'calculate_student_loss': True}
DISTILLER_KEYS = {'type', 'student_recorders', 'teacher_recorders', 'connectors',
                  'distill_losses', 'loss_forward_mappings'}
CONV_DEFAULTS = {'stride': 1, 'padding': 0, 'groups': 1, 'bias': False, 'conv_cfg': None,
                 'init_cfg': None}


def _unknown(kind: str, name: str, known) -> ValueError:
    return ValueError(f'No mmkd equivalent known for MMRazor {kind} {name!r}; known: '
                      f'{sorted(known)}. Write that part by hand '
                      '(docs/en/user_guides/port_mmrazor.md).')


def _strip_scope(type_name: str) -> str:
    return type_name.split('.')[-1]


def convert_recorders(recorders: dict) -> dict:
    out = {}
    for name, cfg in (recorders or {}).items():
        kind = _strip_scope(cfg['type'])
        if kind not in RECORDERS:
            raise _unknown('recorder', kind, RECORDERS)
        out[name] = dict(type=RECORDERS[kind], source=cfg['source'])
    return out


def convert_connector(name: str, cfg: dict) -> dict:
    kind = _strip_scope(cfg['type'])
    if kind not in CONNECTORS:
        raise _unknown('connector', kind,
                       list(CONNECTORS) + list(MGD_CONNECTORS) + list(FBKD_CONNECTORS))
    out = dict(type=CONNECTORS[kind])
    for key, value in cfg.items():
        if key == 'type':
            continue
        if key in CONV_ARGS:
            out[CONV_ARGS[key]] = value
        elif key in CONV_DEFAULTS and value == CONV_DEFAULTS[key]:
            continue
        else:
            raise ValueError(f'Connector {name!r}: ConvModuleConnector argument {key}={value!r} '
                             f'has no ConvConnector equivalent (it takes {sorted(CONV_ARGS)}).')
    return out


def convert_published_cka(name: str, kind: str, cfg: dict) -> dict:
    """A published PCKA loss (``intra_weight`` defaults to 15, ``inter_weight`` to None there,
    and 'inter' is weighted by ``intra_weight``): ``loss_weight=intra_weight``, both terms
    weighted 1 (inter 0 when ``inter_weight`` is falsy)."""
    spec = copy.deepcopy(PUBLISHED_CKA[kind])
    fixed = spec.pop('fixed')
    known = sorted({'intra_weight', 'inter_weight', *fixed, *PUBLISHED_CKA_IGNORED})
    for key, value in cfg.items():
        if key == 'type' or key in PUBLISHED_CKA_IGNORED:
            continue
        if key in fixed and value != fixed[key]:
            raise ValueError(f'Loss {name!r}: {kind} with {key}={value!r} has no mmkd '
                             f'equivalent; only {key}={fixed[key]!r} (the default) converts.')
        if key not in known:
            raise ValueError(f'Loss {name!r}: {kind} argument {key!r} has no mmkd equivalent '
                             f'(known: {known}).')
    inter = cfg.get('inter_weight')
    return dict(spec, loss_weight=cfg.get('intra_weight', 15), intra_weight=1.0,
                inter_weight=1.0 if inter else 0.0)


def convert_loss(name: str, cfg: dict) -> dict:
    kind = _strip_scope(cfg['type'])
    if kind in PUBLISHED_CKA:
        return convert_published_cka(name, kind, cfg)
    if kind not in LOSSES:
        raise _unknown('loss', kind, list(LOSSES) + list(PUBLISHED_CKA))
    new_type, renames = LOSSES[kind]
    out = dict(type=new_type)
    for key, value in cfg.items():
        if key == 'type':
            continue
        if key not in renames:
            raise ValueError(f'Loss {name!r}: {kind} argument {key!r} has no mmkd equivalent '
                             f'(known: {sorted(renames)}).')
        if renames[key] is not None:
            out[renames[key]] = value
    if kind == 'FGDLoss':
        out['student_channels'] = out['teacher_channels'] = cfg['in_channels']
    return out


def fold_fbkd_connector(loss_name: str, loss: dict, connector: str, cfg: dict) -> None:
    """Put an MMRazor FBKD connector's settings into mmkd's ``FBKDLoss`` dict ``loss``: one
    non-local setting for both sides, ``channel_T`` dropped (its mask is unused)."""
    kind = _strip_scope(cfg['type'])
    side = 'student' if kind == 'FBKDStudentConnector' else 'teacher'
    for key, value in cfg.items():
        if key in ('type', 'in_channels', 'channel_T'):
            continue
        if key in FBKD_FIXED:
            if value != FBKD_FIXED[key] and not (key == 'conv_cfg' and value is None):
                raise ValueError(f'Connector {connector!r}: {kind} with {key}={value!r} has '
                                 f'no mmkd equivalent; only {key}={FBKD_FIXED[key]!r} converts.')
            continue
        if key not in FBKD_ARGS:
            raise ValueError(f'Connector {connector!r}: {kind} argument {key!r} has no mmkd '
                             f'equivalent (known: {sorted(FBKD_ARGS)} and in_channels).')
    loss[f'{side}_channels'] = cfg['in_channels']
    for key, new_key in FBKD_ARGS.items():
        value = cfg.get(key, FBKD_DEFAULTS[key])
        if new_key in loss and loss[new_key] != value:
            raise ValueError(f'FBKDLoss {loss_name!r}: its student and teacher connectors set '
                             f'{key} to {loss[new_key]!r} and {value!r}; mmkd\'s FBKDLoss '
                             'uses one value for both sides: make them equal.')
        loss[new_key] = value


def zoo_checkpoint(cfg_path: str) -> str:
    """The checkpoint MMRazor's ``pretrained=True`` loads (``mmengine.hub.get_model``): the
    model-zoo weights that the package's metafile lists for ``cfg_path``."""
    from mmengine.hub import get_config
    if '::' not in cfg_path:
        raise ValueError(f'{cfg_path!r} has pretrained=True, which loads a model-zoo '
                         "checkpoint and works on 'package::' config names only (in MMRazor "
                         'too): set pretrained=False or give the weights yourself.')
    url = get_config(cfg_path, pretrained=True).get('model_path')
    if not url:
        raise ValueError(f'{cfg_path!r} has pretrained=True, which loads the model-zoo '
                         'checkpoint its package\'s metafile lists for it, and the metafile '
                         'lists none: set pretrained=False or give the weights yourself.')
    return url


def convert_model_entry(entry: dict, default_scope: str) -> Tuple[dict, Optional[str]]:
    """MMRazor's ``architecture`` / ``teacher`` as mmkd's ``student`` / ``teacher``, and the
    checkpoint its ``pretrained=True`` loads (None without).

    MMRazor's ``pretrained`` is ``mmengine.hub.get_model``'s: True loads the config's
    model-zoo checkpoint, False (the default) builds the config as it is, pretrained backbone
    ``init_cfg`` included. mmkd's ``pretrained=False`` drops that ``init_cfg`` instead, so the
    key is not carried over: mmkd's default keeps the config's own initialisation.
    """
    from mmkd.models.distillers.zoo_names import resolve_zoo_config
    entry = copy.deepcopy(entry)
    if 'cfg_path' not in entry:
        entry.setdefault('_scope_', default_scope)  # inline model dicts need their scope
        return entry, None
    entry['cfg_path'] = resolve_zoo_config(entry['cfg_path'])  # an mmdet 2 / mmseg 0.x name
    return entry, zoo_checkpoint(entry['cfg_path']) if entry.pop('pretrained', False) else None


def choose_teacher_ckpt(teacher_ckpt: Optional[str], zoo: Optional[str]) -> Optional[str]:
    """mmkd's one ``teacher_ckpt`` for MMRazor's ``teacher_ckpt`` and the teacher's
    ``pretrained=True`` checkpoint ``zoo``. MMRazor loads ``teacher_ckpt`` over ``zoo``, key by
    key; mmkd loads one checkpoint that must hold every teacher weight, so two different files
    cannot both be kept."""
    if zoo is None or teacher_ckpt is None:
        return teacher_ckpt or zoo
    if osp.basename(teacher_ckpt) == osp.basename(zoo):
        return teacher_ckpt
    raise ValueError(
        f'The teacher has pretrained=True, which loads its model-zoo checkpoint {zoo!r}, and '
        f'teacher_ckpt={teacher_ckpt!r} is loaded over it (MMRazor keeps the zoo weights that '
        'teacher_ckpt lacks). mmkd loads one teacher checkpoint holding every teacher weight: '
        'choose it with --teacher-ckpt (the zoo checkpoint, or teacher_ckpt if it is a full '
        'checkpoint of this teacher).')


def check_packages(node, path: str = 'cfg') -> None:
    """Fail on a part that needs a package mmkd does not install, naming it: a scope
    (``_scope_='mmyolo'``, ``type='mmyolo.YOLOv5'``) or a custom import of a package that is
    not installed, and any MMRazor part left (e.g. its visualization hook), which needs
    ``mmrazor`` and works on MMRazor's algorithms only."""
    if isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_packages(value, f'{path}[{i}]')
        return
    if not isinstance(node, dict):
        return
    kind = node.get('type')
    scopes = [node.get('_scope_')]
    if isinstance(kind, str) and '.' in kind:
        scopes.append(kind.split('.')[0])
    if path.endswith('.custom_imports'):
        scopes += [name.split('.')[0] for name in node.get('imports', [])]
    for scope in filter(None, scopes):
        if scope == 'mmrazor' or importlib.util.find_spec(scope) is None:
            raise ValueError(
                f'{path} ({kind or scope!r}) needs the package {scope!r}, which mmkd does not '
                'install' + (' (MMRazor\'s own parts work on its algorithms only)'
                             if scope == 'mmrazor' else '') + ': remove it from the config'
                + ('' if scope == 'mmrazor' else f' or install {scope}') + '.')
    for key, value in node.items():
        check_packages(value, f'{path}.{key}')


def convert_model(model: dict, default_scope: str, teacher_ckpt: Optional[str] = None) -> dict:
    """``teacher_ckpt`` (optional) replaces MMRazor's teacher checkpoint(s)."""
    algorithm = _strip_scope(model.get('type', ''))
    if algorithm not in ALGORITHMS:
        raise _unknown('algorithm', algorithm, ALGORITHMS)
    for key, value in model.items():
        if key not in MODEL_KEYS and FIXED_MODEL_KEYS.get(key, object()) != value:
            raise ValueError(f'MMRazor model key {key}={value!r} has no mmkd equivalent (mmkd '
                             f'always behaves as {FIXED_MODEL_KEYS}).')
    distiller = model.get('distiller', {})
    extra = set(distiller) - DISTILLER_KEYS
    if extra:
        raise ValueError(f'MMRazor distiller keys {sorted(extra)} have no mmkd equivalent '
                         f'(known: {sorted(DISTILLER_KEYS)}).')
    if _strip_scope(distiller.get('type', 'ConfigurableDistiller')) != 'ConfigurableDistiller':
        raise _unknown('distiller', distiller['type'], ['ConfigurableDistiller'])
    student, student_zoo = convert_model_entry(model['architecture'], default_scope)
    teacher, teacher_zoo = convert_model_entry(model['teacher'], default_scope)
    if student_zoo:  # its weights replace the student's initialisation, as in MMRazor
        student['cfg_options'] = {'model.init_cfg': dict(type='Pretrained',
                                                         checkpoint=student_zoo)}
    connectors, mgd_connectors, fbkd_connectors = {}, {}, {}
    for name, cfg in (distiller.get('connectors') or {}).items():
        if _strip_scope(cfg['type']) in MGD_CONNECTORS:
            mgd_connectors[name] = cfg
        elif _strip_scope(cfg['type']) in FBKD_CONNECTORS:
            fbkd_connectors[name] = cfg
        else:
            connectors[name] = convert_connector(name, cfg)
    raw_losses = distiller.get('distill_losses') or {}
    losses = {name: convert_loss(name, cfg) for name, cfg in raw_losses.items()}
    mappings = {}
    for name, mapping in (distiller.get('loss_forward_mappings') or {}).items():
        if name not in losses:
            raise KeyError(f'loss_forward_mappings names loss {name!r}, which distill_losses '
                           f'does not define ({sorted(losses)}).')
        renames = FORWARD_ARGS.get(_strip_scope(raw_losses[name]['type']), {})
        mapping = mappings[name] = {renames.get(arg, arg): copy.deepcopy(spec)
                                    for arg, spec in mapping.items()}
        for spec in mapping.values():
            if spec.get('connector') in fbkd_connectors:
                if losses[name]['type'] != 'FBKDLoss':
                    raise ValueError(f'{spec["connector"]!r} is an FBKD connector but feeds '
                                     f'{losses[name]["type"]} {name!r}; only FBKDLoss uses it.')
                connector = spec.pop('connector')
                fold_fbkd_connector(name, losses[name], connector, fbkd_connectors[connector])
            if spec.get('connector') in mgd_connectors:
                if losses[name]['type'] != 'MGDLoss':
                    raise ValueError(f'{spec["connector"]!r} is an MGD connector but feeds '
                                     f'{losses[name]["type"]} {name!r}; only MGDLoss uses it.')
                mgd = mgd_connectors[spec.pop('connector')]
                losses[name].update(student_channels=mgd['student_channels'],
                                    teacher_channels=mgd['teacher_channels'],
                                    lambda_mgd=mgd.get('lambda_mgd', 0.65))
        if losses[name]['type'] == 'FGDLoss':
            mapping['data_samples'] = dict(from_data='data_samples')
    for name, loss in losses.items():
        if loss['type'] == 'FBKDLoss' and not {'student_channels', 'teacher_channels'} <= set(
                loss):
            raise ValueError(f'FBKDLoss {name!r} gets no FBKDStudentConnector and '
                             'FBKDTeacherConnector in its mapping: mmkd\'s FBKDLoss needs '
                             'student_channels and teacher_channels.')
        if loss['type'] == 'MGDLoss' and 'student_channels' not in loss:
            raise ValueError(f'MGDLoss {name!r} gets no MGDConnector in its mapping: mmkd\'s '
                             'MGDLoss needs student_channels and teacher_channels.')
    out = dict(_scope_='mmkd', type='Distiller', student=student, teacher=teacher,
               teacher_ckpt=teacher_ckpt or choose_teacher_ckpt(model.get('teacher_ckpt'),
                                                                teacher_zoo),
               student_recorders=convert_recorders(distiller.get('student_recorders')),
               teacher_recorders=convert_recorders(distiller.get('teacher_recorders')),
               distill_losses=losses, loss_forward_mappings=mappings)
    if connectors:
        out['connectors'] = connectors
    return out


def convert_config(cfg: Config, teacher_ckpt: Optional[str] = None) -> Config:
    """The mmkd version of a loaded MMRazor config (a new Config); ``teacher_ckpt`` (optional)
    replaces its teacher checkpoint(s)."""
    text = copy.deepcopy(cfg.to_dict())
    default_scope = text.get('default_scope', 'mmdet')
    val_cfg = text.get('val_cfg') or {}
    if _strip_scope(val_cfg.get('type', '')) == 'SingleTeacherDistillValLoop':
        text['val_cfg'] = dict(type='mmkd.DistillValLoop', evaluate_teacher=True)
    text.pop('find_unused_parameters', None)  # mmkd leaves no distiller part unused
    imports = list((text.get('custom_imports') or {}).get('imports', []))
    imports = [m for m in imports if not m.startswith('mmrazor')] + ['mmkd']
    text['custom_imports'] = dict(imports=sorted(set(imports)), allow_failed_imports=False)
    # a missing package first: nothing else can be fixed without it
    check_packages({key: value for key, value in text.items() if key != 'model'})
    text['model'] = convert_model(text['model'], default_scope, teacher_ckpt)
    check_packages(text['model'], 'cfg.model')  # e.g. an inline student of another package
    return Config(ConfigDict(text), filename=cfg.filename)


def main(argv=None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='an MMRazor distillation config')
    parser.add_argument('out', help='where to write the mmkd config (.py)')
    parser.add_argument('--teacher-ckpt', help='the teacher checkpoint (path or URL) instead '
                        "of the config's teacher_ckpt / the teacher's pretrained=True weights")
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config, import_custom_modules=False)
    converted = convert_config(cfg, args.teacher_ckpt)
    converted.dump(args.out)
    losses = converted.model.distill_losses
    print(f'{args.out}: Distiller with {len(losses)} losses '
          f'({", ".join(sorted({v["type"] for v in losses.values()}))})')
    return converted


if __name__ == '__main__':
    main()
