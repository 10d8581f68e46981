"""Model-zoo compatibility: every config family of the installed mmdet and mmseg, dry-run.

    OMP_NUM_THREADS=1 python tools/analysis/zoo_check.py [--package mmdet|mmseg] \\
        [--only FAMILY ...] [--ledger benchmarks/zoo_compat.json] [--report MD] \\
        [--no-resume | --rerun-failed] [--report-only] [--list] [--train [CASE ...]] \\
        [--timeout 600] [--train-timeout 3600] [--work-dir work_dirs/zoo_check]

Per config folder (``mmdet::retinanet``, ``mmseg::fcn``...): a student / teacher pair of one
dataset, the dry run of ``tools/distill.py`` with each of the family's methods in a process of
its own (forked from this one after torch, mmdet and mmseg are imported: a crash or a hang
costs one row, the imports are paid once), and, where one fails, whether mmdet / mmseg can run
the models at all (mmkd/apis/zoo_check.py). Each family's row goes to the ledger as it finishes, so the sweep
resumes where it stopped; the Markdown table (default: the ledger's path with ``.md``) is
written from the ledger at the end, or alone with ``--report-only``. ``--train`` also runs the
training cases of mmkd/apis/zoo_training.py (all, or those named). ``--list`` prints the pairs
and runs nothing.
"""
import argparse
import os.path as osp
import shlex
import sys

from mmkd.apis import zoo_check

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--package', choices=zoo_check.PACKAGES, help='one package only')
    parser.add_argument('--only', nargs='+', metavar='FAMILY',
                        help='these families only (mmdet::retinanet, or a folder name: fcn)')
    parser.add_argument('--ledger', default=osp.join(REPO, 'benchmarks', 'zoo_compat.json'),
                        help='the resumable ledger (JSON); default: benchmarks/zoo_compat.json')
    parser.add_argument('--report', help="the Markdown table; default: the ledger's path "
                        'with .md')
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument('--no-resume', dest='resume', action='store_false',
                        help='run again the families the ledger has')
    resume.add_argument('--rerun-failed', action='store_true',
                        help="run again the ledger's families that did not build")
    parser.add_argument('--report-only', action='store_true',
                        help='write the table from the ledger, run nothing')
    parser.add_argument('--list', action='store_true', help='print the pairs, run nothing')
    parser.add_argument('--train', nargs='*', metavar='CASE',
                        help='also run the training cases (all, or those named)')
    parser.add_argument('--timeout', type=float, default=600,
                        help="seconds one family's subprocess may run (default 600)")
    parser.add_argument('--train-timeout', type=float, default=3600,
                        help="seconds one training case's subprocess may run (default 3600)")
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'zoo_check'),
                        help="the subprocesses' configs and logs (<family>.log)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = ' '.join(['python tools/analysis/zoo_check.py'] + [shlex.quote(a) for a in argv])
    report = args.report or osp.splitext(args.ledger)[0] + '.md'
    if not args.report_only:
        families = zoo_check.select_families(zoo_check.zoo_families(), args.only, args.package)
        if args.list:
            for family in families:
                plan = zoo_check.plan_family(family)
                print(f'{family}: ' + (plan.get('skipped') or
                                       f'{plan["student"]} <- {plan["teacher"]} ({plan["pair"]})'))
            return None
        zoo_check.sweep(families, args.ledger, args.work_dir, args.timeout, args.resume,
                        args.rerun_failed, command)
        if args.train is not None:
            zoo_check.train_cases(args.train, args.ledger, args.work_dir, args.train_timeout,
                                  args.resume, args.rerun_failed, command)
    print(f'table: {zoo_check.write_report(args.ledger, report, command)}')
    return report


if __name__ == '__main__':
    main()
