"""End-to-end demo on the embedded digits dataset: teacher, student, distilled student.

    python tools/demo.py --work-dir work_dirs/demo --json work_dirs/demo/results.json \
        [--task det|seg|both] [--quick]

For each task it generates the dataset, trains a teacher, trains the student alone, distills
the student from the teacher (FitNet on the FPN levels), evaluates all three (COCO bbox mAP /
mIoU), exports the distilled student for mmdet's / mmseg's own API, prints a table and writes
the JSON summary. Everything runs through mmengine's Runner with the shipped configs.
"""
import argparse
import json
import os
import os.path as osp

from mmkd.apis.demo import BUDGETS, format_table, run_task


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--json', default=None, help='where to write the results (JSON)')
    parser.add_argument('--task', choices=['det', 'seg', 'both'], default='both')
    parser.add_argument('--quick', action='store_true', help='tiny budget: a smoke run')
    parser.add_argument('--seed', type=int, default=0,
                        help='fixes initialisation and data order: the same command gives the '
                        'same table')
    args = parser.parse_args(argv)
    budget = BUDGETS['quick' if args.quick else 'full']
    tasks = ['det', 'seg'] if args.task == 'both' else [args.task]
    results = {task: run_task(task, osp.abspath(args.work_dir), budget, args.seed)
               for task in tasks}
    print('\n' + format_table(results))
    json_path = args.json or osp.join(args.work_dir, 'results.json')
    os.makedirs(osp.dirname(osp.abspath(json_path)), exist_ok=True)
    with open(json_path, 'w') as f:
        json.dump(results, f, indent=2)
    print(f'results written to {json_path}')
    return results


if __name__ == '__main__':
    main()
