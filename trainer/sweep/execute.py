"""Training a sweep's runs, one after another or in processes, with an ETA.

One bad run does not stop the sweep; Ctrl-C or SIGTERM does (the stopped
run saves a checkpoint and resumes on the next sweep).
"""

import concurrent.futures
import datetime
import multiprocessing
import os
import sys
import time
import warnings

from absl import logging
import tensorflow as tf

from trainer import preemption
from trainer import train
from trainer.sweep import tables


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
                f'{tables.budget(run.config)} '
                f'({tables.count(run.steps, "step")}) -> '
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
