"""Distill a teacher into a student from their two configs, without writing a config.

    python tools/distill.py STUDENT_CONFIG TEACHER_CONFIG TEACHER_CKPT --method pkd \\
        [--on neck] [--out CONFIG] [--dry-run] [--work-dir DIR] [--amp] [--resume [CKPT]] \\
        [--cfg-options k=v ...]

Writes a readable distillation config (the student's data, schedule and runtime, plus a
Distiller of the two models with one recipe: see mmkd/apis/distill.py) to ``--out``, by
default next to the work dir (``work_dirs/<name>.py`` beside ``work_dirs/<name>/``), then
trains it as tools/train.py does, with the same options. ``--dry-run`` builds the distiller
from the written config (random weights, shapes only, on the ``meta`` device where the models
allow it: no checkpoint is read), so the build log shows the pairing table, prints the
config and the recipe's explicit wiring, and stops. Configs are files or ``mmdet::`` /
``mmseg::`` model-zoo names.
"""
import argparse
import os
import os.path as osp
import shlex
import sys

from mmengine.config import Config

from mmkd.apis.distill import (config_name, default_place, distill_config_text, load_config,
                               task_of)
from mmkd.engine.runtime import add_train_arguments, parse_tool_args
from mmkd.models.distillers.recipes import known_recipes, lookup_recipe, parse_recipe


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Distill TEACHER into STUDENT with a recipe')
    parser.add_argument('student', help='student config (file or mmdet:: / mmseg:: name)')
    parser.add_argument('teacher', help='teacher config (file or model-zoo name)')
    parser.add_argument('teacher_ckpt', help='teacher weights (path or URL)')
    parser.add_argument('--method', required=True,
                        help=f'recipe type, one of {known_recipes()} (any case)')
    parser.add_argument('--on', help='where the recipe reads (neck, seg_logits, '
                        'dense_cls_logits); default: the neck for detectors (KD: the dense '
                        "head's class logits), the logits for segmentors")
    parser.add_argument('--out', help='where to write the config; default: <work dir>.py')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the pairing table and the config, do not train')
    add_train_arguments(parser)  # the options of tools/train.py
    return parse_tool_args(parser, argv)


def write_config(args) -> str:
    """Write the distillation config; return its path."""
    method, _ = lookup_recipe(args.method)  # an unknown method fails here, listing the known
    student_cfg, teacher_cfg = load_config(args.student), load_config(args.teacher)
    on = args.on or default_place(method, task_of(student_cfg), student_cfg, teacher_cfg)
    parse_recipe(0, dict(type=method, on=on))  # a place the method cannot read fails here
    name = config_name(method, on, args.student, args.teacher)
    work_dir = args.work_dir or osp.join('work_dirs', name)
    out = args.out or work_dir.rstrip('/\\') + '.py'
    command = 'python tools/distill.py ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if sys.argv[0].endswith('distill.py') else []))
    ckpt = args.teacher_ckpt
    if '://' not in ckpt and osp.exists(ckpt):
        ckpt = osp.abspath(ckpt)
    text = distill_config_text(args.student, args.teacher, ckpt,
                               [dict(type=method, on=on)], student_cfg,
                               command if command.strip() != 'python tools/distill.py' else '',
                               teacher_cfg=teacher_cfg)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        f.write(text)
    args.work_dir = work_dir
    return out


def dry_run(config: str):
    """Build the distiller of ``config`` (meta device if the models allow it) and print the
    config; returns the distiller."""
    from mmkd.testing import build_random_distiller
    cfg = Config.fromfile(config)
    try:
        model = build_random_distiller(cfg, device='meta')
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel: build on CPU
        model = build_random_distiller(cfg)
    print(f'\n# {config} (dry run: random weights, the teacher checkpoint is not read, '
          'nothing is trained)\n')
    with open(config) as f:
        print(f.read())
    print('# The recipe written out (replace recipes=[...] by this for full control):')
    print(model.recipe_explicit_config)
    return model


def main(argv=None):
    args = parse_args(argv)
    config = write_config(args)
    if args.dry_run:
        return dry_run(config)
    from mmkd.engine.runtime import load_config as load_train_config
    from mmkd.engine.runtime import train  # what tools/train.py runs
    cfg = load_train_config(config, args.cfg_options, args.work_dir, args.launcher)
    train(cfg, amp=args.amp, resume=args.resume)


if __name__ == '__main__':
    main()
