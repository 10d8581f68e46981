"""Which method makes a better student: every shipped digits method, over seeds, with intervals.

    python tools/benchmark_accuracy.py [--regime pretrained|scratch|quick]
        [--tasks det seg ins detr]
        [--methods pkd_fpn det:topkd_logits@x10 ...] [--seeds 0 1 2 ...] [--jobs 1] [--threads N]
        [--student-iters N] [--teacher-iters N] [--work-dir work_dirs/benchmark_accuracy] [--report-only]
        [--out benchmarks/RESULTS.md] [--chart benchmarks/results.png] [--json PATH]
        [--ledger benchmarks/accuracy_runs.json] [--weights-dir benchmarks/weights]

Per task (det: RetinaNet R18 -> half-width R18, COCO bbox mAP; seg: Semantic FPN R18 -> half
width, mIoU; ins: Mask R-CNN R18 -> half width, COCO mask mAP; detr: DINO R18 -> half width,
COCO bbox mAP) and regime it

1. (``pretrained`` regime) pretrains the teacher's and the student's backbones on digit
   classification (:mod:`mmkd.engine.pretrain`, cached by content); both tasks share them;
2. trains the teacher once, validating along the way (its learning curve shows the plateau),
   and writes its per-image significance for the self-regulated configs; rows with several
   teachers (``configs/distill/multiteacher``) also read the task's ``EXTRA_TEACHERS``
   (det: GFL R18; :mod:`mmkd.apis.accuracy_tasks`), trained the same way;
3. trains the student alone and the student with every method config of the pair, each with
   every seed. A seed fixes initialisation and data order (mmengine's ``randomness``), and the
   distiller initialises its student exactly as the plain student, so each method is compared
   with the student seed by seed: the table gives mean +- std, the paired gain over the
   student with its 95% t interval, and "resolved" when that interval excludes 0.

Runs go to ``--jobs`` worker processes with ``--threads`` torch threads each (default: the
cores shared out); a run's numbers depend on its thread count, so the same command gives the
same table. Default ``--jobs 1``: on this 2-core machine a ResNet-18 forward + backward (batch
8, 128 px) takes 0.55 s on one thread and 0.30 s on two, so two one-thread processes could
gain at most 10% over one two-thread process, before they compete for memory. Every
finished run leaves ``result.json`` in its own folder (regime, schedule, seed in the path) and
is never run again: a killed benchmark redoes only what is missing, and a later call with
other ``--methods`` extends the same table. Work folders are not committed, so each finished
run is also recorded in ``--ledger`` (``benchmarks/accuracy_runs.json``) with the identity of
the teacher and backbone weights it started from, and those weights are kept as float16 copies
in ``--weights-dir`` (``benchmarks/weights``; the teacher is evaluated again from its copy,
which every row uses): a fresh checkout trains no teacher again and reads back every run of
the ledger (:mod:`mmkd.apis.run_ledger`). Commit both as rows finish. A run is recognised by
its folder (or ledger key) alone: after changing a method's config, delete that method's
folder and its ledger entries to have it rerun. A method named
``METHOD@xSCALE`` (e.g. ``topkd_logits@x10``) is a row of its own: the method with every
distillation loss's ``loss_weight`` times SCALE (loss-weight sweeps); ``METHOD@bf16`` (or
``@fp16``, ``@fp32``, after any ``@xSCALE``) is the method with that ``teacher_precision``
(issue 11: does a cheaper teacher change the student?); ``TASK:METHOD`` (e.g.
``det:topkd_logits@x10``) queues a row for that task only. ``--report-only``
trains nothing and writes the table of the runs finished so far. The Markdown table goes to
``--out`` (a ``## Notes`` section written by hand below it is kept), the chart (gains with
their interval whiskers) to ``--chart``.

The benchmark itself is in :mod:`mmkd.apis.accuracy_tasks` (tasks, regimes, seeds, rows and
their teachers), :mod:`mmkd.apis.accuracy_benchmark` (runs, ledger, teachers, the significance
and MasKD token jobs) and :mod:`mmkd.apis.accuracy_report` (the table and the chart); this
script is its command line.
"""
import argparse
import sys
from typing import Dict

from mmkd.apis.accuracy_benchmark import benchmark_accuracy
from mmkd.apis.accuracy_tasks import REGIMES, TASKS

TOOL = 'python tools/benchmark_accuracy.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--regime', choices=list(REGIMES), default='pretrained')
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    parser.add_argument('--methods', nargs='+',
                        help='method names (default: all of the pair); METHOD@xSCALE adds a '
                        "row with every distillation loss's loss_weight times SCALE; "
                        'METHOD@bf16 / @fp16 / @fp32 a row with that teacher_precision; '
                        'TASK:METHOD runs it for that task only (det:topkd_logits@x10)')
    parser.add_argument('--seeds', nargs='+', type=int,
                        help="every task's seeds (default: the regime's per task: pretrained "
                        'det and detr 0-4, otherwise 0-2)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='worker processes (0: run in this process)')
    parser.add_argument('--threads', type=int,
                        help='torch threads per run (default: CPU cores / jobs)')
    parser.add_argument('--student-iters', type=int, help="override the regime's")
    parser.add_argument('--teacher-iters', type=int, help="override the regime's")
    parser.add_argument('--work-dir', default='work_dirs/benchmark_accuracy')
    parser.add_argument('--out', default='benchmarks/RESULTS.md')
    parser.add_argument('--chart', default='benchmarks/results.png')
    parser.add_argument('--json', help='also write the raw results here')
    parser.add_argument('--ledger', default='benchmarks/accuracy_runs.json',
                        help='committed record of every finished run (read back by a fresh '
                        "checkout whose teacher and backbones match); '' for none")
    parser.add_argument('--weights-dir', default='benchmarks/weights',
                        help='committed float16 copies of the teachers and the students\' '
                        "pretrained backbone every row starts from; '' for none")
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: the table of the runs finished so far')
    return parser.parse_args(argv)


def main(argv=None) -> Dict[str, dict]:
    """Train what is missing, write the report; returns ``{task: result}``."""
    args = parse_args(argv)
    # the report names the command that completes it: this one, training included
    words = [w for w in (argv if argv is not None else sys.argv[1:]) if w != '--report-only']
    return benchmark_accuracy(
        args.tasks, args.regime, args.methods, args.seeds, jobs=args.jobs, threads=args.threads,
        student_iters=args.student_iters, teacher_iters=args.teacher_iters,
        work_dir=args.work_dir, out=args.out, chart=args.chart, json_path=args.json,
        ledger=args.ledger, weights_dir=args.weights_dir, report_only=args.report_only,
        command=' '.join([TOOL] + words))


if __name__ == '__main__':
    main()
