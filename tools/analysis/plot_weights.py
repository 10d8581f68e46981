"""Loss curves and adaptive path weights of a distillation run, from mmengine's scalar log.

    python tools/analysis/plot_weights.py WORK_DIR [--out weights.png] [--all-runs]

WORK_DIR is a training work dir (its latest run, ``<timestamp>/vis_data/scalars.json``, is
read; ``--all-runs`` joins every run in it, e.g. a run and its resumptions, later runs
replacing the iterations they repeat), one run's ``<timestamp>`` folder, or a scalars JSON
file itself. mmengine's LocalVisBackend writes one JSON object per logged iteration there:
``iter``, ``loss`` (the total), the task losses (``loss_cls``, ``decode.loss_ce`` ...),
``distill.<name>`` per distillation loss and, when the config sets a ``weighting``,
``distill_weight.<name>`` per path. Validation lines (no ``iter`` key) are skipped.

Panels: the losses (log scale when all are positive); the path weights, or a note that the
run logged none (FixedWeighting is implicit then); a third panel with the ``sokd_coverage.*``
(SOKD) / ``selfreg_skipped.*`` and ``selfreg_weight.*`` (SelfReg) scalars when the run logged
any.
"""
import argparse
import json
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

#: Scalars drawn in the third panel when present (by prefix).
EXTRA_PREFIXES = ('sokd_coverage', 'selfreg_skipped', 'selfreg_weight')
RUN_DIR = re.compile(r'^\d{8}_\d{6}$')  # mmengine's run folders: 20240101_120000

Series = Dict[str, Tuple[List[int], List[float]]]


def find_scalar_files(path: str, all_runs: bool = False) -> List[str]:
    """The scalar log(s) of ``path``: a JSON file, a run folder or a work dir."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path!r} is neither a work dir nor a scalars JSON file.')
    own = _run_scalars(path)
    if own:
        return [own]
    runs = sorted(d for d in os.listdir(path)
                  if RUN_DIR.match(d) and _run_scalars(osp.join(path, d)))
    if not runs:
        raise FileNotFoundError(
            f'No scalar log in {path!r}: expected <timestamp>/vis_data/scalars.json (written by '
            "mmengine's LocalVisBackend, the default visualizer backend) in a training work dir.")
    return [_run_scalars(osp.join(path, d)) for d in (runs if all_runs else runs[-1:])]


def _run_scalars(run_dir: str):
    vis = osp.join(run_dir, 'vis_data')
    for name in ['scalars.json', f'{osp.basename(run_dir.rstrip("/"))}.json']:
        if osp.isfile(osp.join(vis, name)):
            return osp.join(vis, name)
    return None


def read_scalars(path: str, all_runs: bool = False) -> List[dict]:
    """The training rows (those with an ``iter``) of ``path``'s scalar log, by iteration.

    With several runs, a later run's rows replace the earlier runs' rows from its first
    iteration on (a resumed run repeats the iterations after its checkpoint).
    """
    rows: List[dict] = []
    for file in find_scalar_files(path, all_runs):
        with open(file) as f:
            lines = [line for line in f if line.strip()]
        run = []
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(lines):  # the last line of a run killed while writing it
                    break
                raise ValueError(f'{file}: line {number} is not JSON ({err}).') from None
            if 'iter' in row:
                run.append(row)
        if run:
            first = run[0]['iter']
            rows = [r for r in rows if r['iter'] < first] + run
    return rows


def group_series(rows: List[dict]) -> Dict[str, Series]:
    """Split the rows into ``losses`` (total, task, distill.*), ``weights``
    (``distill_weight.<name>``, keyed by ``<name>``) and ``extra`` (sokd / selfreg scalars):
    each ``{key: (iters, values)}``."""
    groups: Dict[str, Series] = dict(losses=OrderedDict(), weights=OrderedDict(),
                                     extra=OrderedDict())
    for row in rows:
        for key, value in row.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if key.startswith('distill_weight.'):
                group, name = 'weights', key[len('distill_weight.'):]
            elif key.startswith(EXTRA_PREFIXES):
                group, name = 'extra', key
            elif 'loss' in key:
                group, name = 'losses', key
            else:
                continue
            iters, values = groups[group].setdefault(name, ([], []))
            iters.append(row['iter'])
            values.append(float(value))
    groups['losses'] = OrderedDict(sorted(groups['losses'].items(), key=lambda kv: _loss_rank(
        kv[0])))
    return groups


def _loss_rank(key: str):
    return (0 if key == 'loss' else 2 if key.startswith('distill.') else 1), key


def plot_scalars(groups: Dict[str, Series], out: str, title: str = '') -> None:
    """Two panels (losses, path weights) or three (plus sokd / selfreg scalars); a path's
    distill loss and its weight share a colour."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    paths = [k[len('distill.'):] for k in groups['losses'] if k.startswith('distill.')]
    paths += [name for name in groups['weights'] if name not in paths]
    cycle = plt.rcParams['axes.prop_cycle'].by_key()['color']
    colour = {name: cycle[i % len(cycle)] for i, name in enumerate(paths)}
    others = iter(cycle[len(paths) % len(cycle):] + cycle[:len(paths) % len(cycle)])

    panels = 3 if groups['extra'] else 2
    fig, axes = plt.subplots(panels, 1, figsize=(10, 3.2 * panels + 0.5), sharex=True,
                             constrained_layout=True)

    def draw(ax, series: Series, styles: Dict[str, dict]) -> None:
        for key, (iters, values) in series.items():
            ax.plot(iters, values, label=key, marker='.' if len(iters) <= 30 else None,
                    **styles.get(key, {}))
        ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0))
        ax.grid(alpha=0.3)

    ax = axes[0]
    styles = {}
    for key in groups['losses']:
        if key == 'loss':
            styles[key] = dict(color='black', linewidth=2.2)
        elif key.startswith('distill.'):
            styles[key] = dict(color=colour[key[len('distill.'):]])
        else:
            styles[key] = dict(color=next(others, 'grey'), linestyle='--')
    draw(ax, groups['losses'], styles)
    values = [v for _, vs in groups['losses'].values() for v in vs]
    if values and min(values) > 0:
        ax.set_yscale('log')
        plain = FuncFormatter(lambda v, _: f'{v:g}')
        ax.yaxis.set_major_formatter(plain)
        # label the 2..9 ticks too when the curves span less than about a decade
        ax.yaxis.set_minor_formatter(plain if max(values) / min(values) < 20 else
                                     FuncFormatter(lambda v, _: ''))
    ax.set_ylabel('loss')
    ax.set_title('losses: total (black), task (dashed), distill.<path> (solid)')

    ax = axes[1]
    if groups['weights']:
        draw(ax, groups['weights'], {name: dict(color=colour[name]) for name in colour})
        ax.ticklabel_format(axis='y', useOffset=False)
        ax.set_title('adaptive path weights (distill_weight.<path>)')
    else:
        ax.text(0.5, 0.5, 'no adaptive path weights in this run\n(no distill_weight.* scalars: '
                'the config sets no weighting,\nso the distill losses are simply summed)',
                ha='center', va='center', transform=ax.transAxes, fontsize=11)
        ax.set_yticks([])
        ax.set_title('adaptive path weights')
    ax.set_ylabel('weight')

    if groups['extra']:
        draw(axes[2], groups['extra'], {})
        axes[2].set_title(' / '.join(p + '.*' for p in EXTRA_PREFIXES if any(
            key.startswith(p) for key in groups['extra'])))
    axes[-1].set_xlabel('iteration')
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def summarize(groups: Dict[str, Series]) -> str:
    """One line per series: first and last value."""
    lines = []
    for group, prefix in (('losses', ''), ('weights', 'distill_weight.'), ('extra', '')):
        for key, (iters, values) in groups[group].items():
            lines.append(f'  {prefix}{key}: {values[0]:.5g} (iter {iters[0]}) -> '
                         f'{values[-1]:.5g} (iter {iters[-1]})')
    if not groups['weights']:
        lines.append('  no adaptive path weights (distill_weight.*) in this run')
    return '\n'.join(lines)


def main(argv=None) -> Dict[str, Series]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='training work dir, run folder or scalars JSON')
    parser.add_argument('--out', default='weights.png', help='output PNG')
    parser.add_argument('--all-runs', action='store_true',
                        help='join every run of the work dir (e.g. resumptions)')
    args = parser.parse_args(argv)
    files = find_scalar_files(args.work_dir, args.all_runs)
    rows = read_scalars(args.work_dir, args.all_runs)
    if not rows:
        raise ValueError(f'{files} hold no training iterations (no line with an "iter" key).')
    groups = group_series(rows)
    print(f'read {len(rows)} logged iterations from {", ".join(files)}')
    print(summarize(groups))
    plot_scalars(groups, args.out, f'{args.work_dir}: ' + ', '.join(
        osp.relpath(f, args.work_dir) if osp.isdir(args.work_dir) else osp.basename(f)
        for f in files))
    print(f'plot: {args.out}')
    return groups


if __name__ == '__main__':
    main()
