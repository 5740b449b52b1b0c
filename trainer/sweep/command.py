"""`python -m trainer.sweep`: rerun the chapter's experiments, or a grid.

Every distinct setting trains once, through `trainer.train.run`, in its own
job dir <sweep-dir>/runs/<id>, where the id spells the settings. A run whose
results.json exists is skipped, so a stopped sweep resumes where it stopped
(a run cut off half-way resumes from its newest checkpoint). After each run
the sweep rewrites results.csv and results.md (our accuracy beside the
chapter's); at the end it draws the charts (plots.py).

  python -m trainer.sweep --sweep-dir sweeps/chapter --budget reduced
  python -m trainer.sweep --sweep-dir sweeps/opt --preset optimizer --budget full
  python -m trainer.sweep --sweep-dir sweeps/lr --grid lr.json --jobs 2
"""

import signal
import sys

import tensorflow as tf

from trainer import cli
from trainer import data
from trainer import errors
from trainer import preemption
from trainer.sweep import chapter
from trainer.sweep import execute as execute_lib
from trainer.sweep import plan as plan_lib
from trainer.sweep import plots
from trainer.sweep import tables

# --budget: the most epochs one run trains (None: the chapter's own budget).
# 10 keeps the chapter's 10-epoch rows whole and cuts its 300-epoch ones.
BUDGETS = {'reduced': 10, 'full': None}
# Training images in MNIST: what a dry run plans with, reading no data.
MNIST_TRAIN_SIZE = 60000


def _max_epochs(budget):
  if budget in BUDGETS:
    return BUDGETS[budget]
  try:
    epochs = float(budget)
  except ValueError:
    epochs = 0
  if not epochs > 0:
    raise errors.UsageError(
        f'--budget={budget} must be reduced, full or a number of epochs')
  return epochs


def parse_args(argv):
  parser = cli.ArgumentParser(
      prog='python -m trainer.sweep',
      description='Rerun the book chapter\'s MNIST experiments (or a grid) '
                  'and tabulate our test accuracy beside the chapter\'s.',
      epilog='A grid file is JSON: {"name": "lr", "base": {"model_type": '
             '"keras", "num_epochs": 3}, "grid": {"optimizer": ["sgd", '
             '"adam"], "learning_rate": [0.01, 0.001]}}; keys are the fields '
             'of trainer.config.Config.')
  parser.add_argument('--sweep-dir',
                      help='folder (or gs://...) for the job dirs, '
                           'results.csv, results.md and plots/; required '
                           'except with --dry-run')
  parser.add_argument('--preset', default=None,
                      help='comma-separated: chapter (all) or some of '
                           f'{", ".join(chapter.GROUPS)}; default chapter '
                           'unless --grid is given')
  parser.add_argument('--grid', help='JSON grid file (format below)')
  parser.add_argument('--budget', default='reduced',
                      help='reduced (at most '
                           f'{BUDGETS["reduced"]} epochs a run), full (the '
                           'chapter\'s: up to 300 epochs) or a number of '
                           'epochs; default %(default)s')
  parser.add_argument('--jobs', type=int, default=1,
                      help='runs trained at once, each in its own process')
  cli.add_data_dir(parser)
  parser.add_argument('--seed', type=int,
                      help='seed for every run (default: each run\'s, 42)')
  parser.add_argument('--deterministic', action='store_true',
                      help='tf.config.experimental.enable_op_determinism(): '
                           'needed for identical reruns on a GPU')
  parser.add_argument('--dry-run', action='store_true',
                      help='list the runs and exit; reads no data (plans '
                           f'with MNIST\'s {MNIST_TRAIN_SIZE:,} training '
                           'images)')
  parser.add_argument('--no-plots', dest='plots', action='store_false',
                      help='skip the charts (they need matplotlib)')
  args = parser.parse_args(argv)
  if args.jobs < 1:
    parser.error(f'--jobs={args.jobs} must be 1 or more')
  if not args.sweep_dir and not args.dry_run:
    parser.error('--sweep-dir is required (a folder for the runs and '
                 'tables), except with --dry-run')
  return args


def _draw_charts(sweep_dir):
  try:
    paths = plots.write_all(sweep_dir)
  except errors.MissingExtraError as e:  # a cloud image may lack matplotlib
    print(f'charts skipped: {e}; then run python -m {plots.COMMAND} '
          f'{sweep_dir}', file=sys.stderr)
    return
  for path in paths:
    print(f'chart:   {path}')


def main(argv=None):
  args = parse_args(argv)
  with cli.one_line_errors():
    presets = (args.preset.split(',') if args.preset
               else [] if args.grid else ['chapter'])
    max_epochs = _max_epochs(args.budget)
    found = plan_lib.experiments_for(presets, args.grid)
    if args.dry_run:  # a plan needs no data, nor a network to download it
      data_dir, train_size = args.data_dir, MNIST_TRAIN_SIZE
    else:
      data_dir = data.resolve_data_dir(args.data_dir)
      train_size = data.load(data_dir).train.size
    runs = plan_lib.plan(found, args.sweep_dir or 'SWEEP_DIR', data_dir,
                         train_size, max_epochs, args.seed)
  todo = plan_lib.pending(runs)
  distinct = len({r.config.job_dir for r in runs})
  print(f'{len(runs)} results from {distinct} distinct runs: {len(todo)} to '
        f'train, {distinct - len(todo)} done before', flush=True)
  if args.dry_run:
    run_log = execute_lib.RunLog(todo)
    for index, run in enumerate(todo, 1):
      run_log.start(index, run)
    return 0
  heading = (f'Budget `{args.budget}`'
             f'{"" if args.seed is None else f", seed {args.seed}"}'
             f'{", deterministic ops" if args.deterministic else ""}; '
             f'{tables.describe_machine()}.')
  tf.io.gfile.makedirs(args.sweep_dir)
  write = lambda: tables.write(runs, args.sweep_dir, heading)
  write()
  try:
    failures = execute_lib.execute(todo, args.jobs, args.deterministic,
                                   on_finish=write)
  except preemption.Preempted as e:
    write()
    print(f'stopped on {signal.Signals(e.signum).name}; finished runs are '
          'kept and the stopped one saved a checkpoint; rerun the same '
          'command to resume', file=sys.stderr)
    return e.exit_status
  csv_path, md_path = write()
  print(f'results: {csv_path}\n         {md_path}')
  if args.plots:
    _draw_charts(args.sweep_dir)
  if failures:
    print(f'{len(failures)} runs failed: {", ".join(failures)}',
          file=sys.stderr)
    return 1
  return 0
