"""`python -m trainer.sweep`: rerun the chapter's experiments, or a grid.

Every distinct setting trains once, through `trainer.train.run`, in its own
job dir <sweep-dir>/runs/<id>, where the id spells the settings. A run whose
results.json exists is skipped, so a stopped sweep resumes where it stopped
(a run cut off half-way resumes from its newest checkpoint). After each run
the sweep rewrites results.csv and results.md (our accuracy beside the
chapter's); at the end it draws the charts (`trainer.plots`).

  python -m trainer.sweep --sweep-dir sweeps/chapter --budget reduced
  python -m trainer.sweep --sweep-dir sweeps/opt --preset optimizer --budget full
  python -m trainer.sweep --sweep-dir sweeps/lr --grid lr.json --jobs 2
"""

import os
import sys

from trainer import cli

if __name__ == '__main__':
  cli.quiet_unless_verbose([])  # the sweep's errors are one line too

# pylint: disable=g-import-not-at-top,wrong-import-position
import concurrent.futures
import dataclasses
import datetime
import hashlib
import itertools
import json
import math
import multiprocessing
import signal
import time
import warnings

from absl import logging
import tensorflow as tf

from trainer import chapter
from trainer import config as config_lib
from trainer import data
from trainer import jobdir
from trainer import preemption
from trainer import sweep_tables
from trainer import train

RUNS_DIR = 'runs'
# --budget: the most epochs one run trains (None: the chapter's own budget).
# 10 keeps the chapter's 10-epoch rows whole and cuts its 300-epoch ones.
BUDGETS = {'reduced': 10, 'full': None}
# Training images in MNIST: what a dry run plans with, reading no data.
MNIST_TRAIN_SIZE = 60000
# Sweep runs checkpoint, and so evaluate, this often (and not every
# --checkpoint-steps): points of the test-accuracy curves.
CHECKPOINT_SECS = 20
# Settings that change how a run is watched, not what it learns.
_OPERATIONAL = ('job_dir', 'data_dir', 'checkpoint_secs', 'checkpoint_steps',
                'eval_secs', 'keep_checkpoints', 'log_every_steps',
                'summary_steps')


@dataclasses.dataclass(frozen=True)
class Run:
  """One row of the results: an experiment and the config that trains it."""
  experiment: chapter.Experiment
  config: config_lib.Config  # job_dir set, budget applied
  chapter_budget: str
  steps: int

  @property
  def examples(self):
    return self.steps * self.config.batch_size


def experiments_for(presets, grid_path=None):
  """The chapter's experiments of the named groups, then a grid file's."""
  found = []
  for name in presets:
    if name == 'chapter':
      found.extend(chapter.EXPERIMENTS)
    elif name in chapter.GROUPS:
      found.extend(chapter.group(name))
    else:
      raise config_lib.UsageError(
          f'--preset={name} is not a preset; choose chapter or one of '
          f'{", ".join(chapter.GROUPS)}')
  if grid_path:
    found.extend(load_grid(grid_path))
  return found


def load_grid(path):
  """Experiments from a JSON grid file: every combination of its values.

  {"name": "lr", "base": {"model_type": "keras", "num_epochs": 3},
   "grid": {"optimizer": ["sgd", "adam"], "learning_rate": [0.01, 0.001]}}
  """
  try:
    with tf.io.gfile.GFile(path) as f:
      spec = json.load(f)
    name = spec.get('name') or os.path.splitext(os.path.basename(path))[0]
    base, grid = spec.get('base', {}), dict(spec.get('grid', {}))
  except (tf.errors.OpError, ValueError, AttributeError, TypeError) as e:
    raise config_lib.UsageError(
        f'--grid {path} is not a readable grid file ({e}); see '
        '`python -m trainer.sweep --help` for the format') from None
  for key, values in grid.items():
    if not isinstance(values, list) or not values:
      raise config_lib.UsageError(
          f'--grid {path}: "{key}" must be a list of the values to try, '
          f'e.g. [{json.dumps(values)}], not {json.dumps(values)}')
  keys = list(grid)
  rows = [dict(zip(keys, values))
          for values in itertools.product(*(grid[k] for k in keys))]
  return [chapter.Experiment(name, _label(row) or name, {**base, **row})
          for row in rows]


def _label(row):
  return ', '.join(
      f'{k}={",".join(map(str, v)) if isinstance(v, list) else v}'
      for k, v in row.items())


def plan(experiments, sweep_dir, data_dir, train_size, max_epochs=None,
         seed=None):
  """A Run per experiment; equal settings share one job dir."""
  runs = []
  for e in experiments:
    settings = dict(e.settings, **({} if seed is None else {'seed': seed}))
    try:
      cfg = config_lib.Config(job_dir=sweep_dir, data_dir=data_dir, **settings)
    except TypeError as err:
      raise config_lib.UsageError(
          f'experiment {e.group}: {e.label}: {err}; settings are the fields '
          'of trainer.config.Config') from None
    chapter_budget = sweep_tables.budget(cfg)
    cfg = _within_budget(cfg, max_epochs, train_size)
    steps = cfg.with_train_steps(train_size).train_steps
    cfg = dataclasses.replace(
        cfg, job_dir=os.path.join(sweep_dir, RUNS_DIR, run_id(cfg)),
        checkpoint_secs=CHECKPOINT_SECS, checkpoint_steps=steps, eval_secs=0,
        log_every_steps=max(1, steps // 10),
        summary_steps=max(1, steps // 100))
    runs.append(Run(e, cfg, chapter_budget, steps))
  return runs


def _within_budget(cfg, max_epochs, train_size):
  if max_epochs is None:
    return cfg
  if cfg.train_steps:
    most = math.ceil(max_epochs * train_size / cfg.batch_size)
    return dataclasses.replace(cfg, train_steps=min(cfg.train_steps, most))
  return dataclasses.replace(cfg, num_epochs=min(cfg.num_epochs, max_epochs))


def run_id(cfg):
  """A job dir name that reads as the settings and differs when they do.

  The digest covers the settings that differ from the model type's
  defaults, so a setting added to Config later leaves existing run ids (and
  finished sweeps) as they are.
  """
  defaults = config_lib.Config(job_dir=cfg.job_dir, model_type=cfg.model_type)
  learned = {f.name: getattr(cfg, f.name)
             for f in dataclasses.fields(cfg)
             if f.name not in _OPERATIONAL and
             getattr(cfg, f.name) != getattr(defaults, f.name)}
  digest = hashlib.sha1(
      json.dumps(learned, sort_keys=True).encode()).hexdigest()[:6]
  length = (f's{cfg.train_steps}' if cfg.train_steps
            else f'e{cfg.num_epochs:g}')
  return '-'.join((
      cfg.model_type, cfg.activation,
      'scaled' if cfg.scale_inputs else 'raw',
      f'{cfg.optimizer}{cfg.learning_rate:g}',
      'h' + 'x'.join(map(str, cfg.hidden_units)), f'b{cfg.batch_size}',
      length, digest))


def pending(runs):
  """Distinct runs, in order, whose job dir holds no results.json yet."""
  seen, todo = set(), []
  for run in runs:
    if run.config.job_dir not in seen:
      seen.add(run.config.job_dir)
      if jobdir.read_results(run.config.job_dir) is None:
        todo.append(run)
  return todo


class RunLog:
  """Prints which run starts and ends, and the sweep's ETA.

  The ETA scales the time spent so far by the training examples still to
  go, so a 300-epoch run weighs 30 times a 10-epoch one.
  """

  def __init__(self, runs, out=sys.stdout):
    self._runs = runs
    self._out = out
    self._left = sum(r.examples for r in runs)
    self._done = 0
    self._finished = 0
    self._started = time.time()

  def start(self, index, run):
    e = run.experiment
    self._print(f'[{index}/{len(self._runs)}] {e.group}: {e.label}, '
                f'{sweep_tables.budget(run.config)} '
                f'({sweep_tables.count(run.steps, "step")}) -> '
                f'{run.config.job_dir}')

  def finish(self, index, run, outcome):
    self._finished += 1
    self._done += run.examples
    self._left -= run.examples
    elapsed = time.time() - self._started
    eta = elapsed / self._done * self._left
    if isinstance(outcome, Exception):
      what = f'FAILED: {type(outcome).__name__}: {outcome}'
    else:
      what = (f'test accuracy {outcome["accuracy"]:.2%} in '
              f'{outcome["wall_time_secs"]:.0f} s')
    self._print(f'[{index}/{len(self._runs)}] {what}; {self._finished} of '
                f'{len(self._runs)} runs done in {_clock(elapsed)}, '
                f'eta {_clock(eta)}')

  def _print(self, line):
    print(line, file=self._out, flush=True)


def _clock(seconds):
  return str(datetime.timedelta(seconds=round(seconds)))


def execute(runs, jobs=1, deterministic=False, on_finish=None):
  """Trains the runs (distinct, unfinished); returns {job_dir: error}."""
  run_log = RunLog(runs)
  failures = {}

  def finished(index, run, outcome):
    run_log.finish(index, run, outcome)
    if isinstance(outcome, Exception):
      failures[run.config.job_dir] = outcome
    if on_finish:
      on_finish()

  if jobs == 1:
    _prepare_process(None, deterministic, verbose=True)
    for index, run in enumerate(runs, 1):
      run_log.start(index, run)
      try:
        outcome = train.run(run.config)
      except preemption.Preempted:
        raise  # Ctrl-C or SIGTERM stops the sweep, not just this run
      except Exception as e:  # pylint: disable=broad-except
        outcome = e  # one bad run must not stop the sweep
      finished(index, run, outcome)
    return failures

  threads = max(1, (os.cpu_count() or 1) // jobs)
  with concurrent.futures.ProcessPoolExecutor(
      jobs, mp_context=multiprocessing.get_context('spawn'),
      initializer=_prepare_process,
      initargs=(threads, deterministic, False)) as pool:
    futures = {}
    for index, run in enumerate(runs, 1):
      run_log.start(index, run)
      futures[pool.submit(train.run, run.config)] = index, run
    for future in concurrent.futures.as_completed(futures):
      finished(*futures[future], future.exception() or future.result())
  return failures


def _prepare_process(threads, deterministic, verbose):
  """Logging, threads and determinism for the process that trains."""
  if threads:
    os.environ['TF_NUM_INTRAOP_THREADS'] = str(threads)
  tf.get_logger().setLevel('ERROR')
  warnings.filterwarnings('ignore', category=UserWarning, module='keras')
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO if verbose else logging.WARNING)
  if deterministic:
    tf.config.experimental.enable_op_determinism()


def _max_epochs(budget):
  if budget in BUDGETS:
    return BUDGETS[budget]
  try:
    epochs = float(budget)
  except ValueError:
    epochs = 0
  if not epochs > 0:
    raise config_lib.UsageError(
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
    from trainer import plots  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # a cloud image may lack matplotlib
    print(f'charts skipped ({e}); install matplotlib and run '
          f'python -m trainer.plots {sweep_dir}', file=sys.stderr)
    return
  for path in plots.write_all(sweep_dir):
    print(f'chart:   {path}')


def main(argv=None):
  args = parse_args(argv)
  try:
    presets = (args.preset.split(',') if args.preset
               else [] if args.grid else ['chapter'])
    max_epochs = _max_epochs(args.budget)
    found = experiments_for(presets, args.grid)
    if args.dry_run:  # a plan needs no data, nor a network to download it
      data_dir, train_size = args.data_dir, MNIST_TRAIN_SIZE
    else:
      data_dir = data.resolve_data_dir(args.data_dir)
      train_size = data.load(data_dir).train.size
    runs = plan(found, args.sweep_dir or 'SWEEP_DIR', data_dir, train_size,
                max_epochs, args.seed)
  except (config_lib.UsageError, data.DataError) as e:
    cli.fail(f'error: {e}')
  todo = pending(runs)
  distinct = len({r.config.job_dir for r in runs})
  print(f'{len(runs)} results from {distinct} distinct runs: {len(todo)} to '
        f'train, {distinct - len(todo)} done before', flush=True)
  if args.dry_run:
    run_log = RunLog(todo)
    for index, run in enumerate(todo, 1):
      run_log.start(index, run)
    return 0
  heading = (f'Budget `{args.budget}`'
             f'{"" if args.seed is None else f", seed {args.seed}"}'
             f'{", deterministic ops" if args.deterministic else ""}; '
             f'{sweep_tables.describe_machine()}.')
  tf.io.gfile.makedirs(args.sweep_dir)
  write = lambda: sweep_tables.write(runs, args.sweep_dir, heading)
  write()
  try:
    failures = execute(todo, args.jobs, args.deterministic, on_finish=write)
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


if __name__ == '__main__':
  sys.exit(main())
