"""Progress lines while training, and an honest examples/s figure.

Throughput counts only steady-state training steps: the first run of a
session (graph warm-up) and any run during which a checkpoint was saved
(and, through train_and_evaluate, an evaluation and export ran) are left out
of the timing, so the figure means the same for a 1-minute and a 1-hour run.
"""

import datetime
import time

import tensorflow as tf
from absl import logging

from trainer import multistep


class Throughput:
  """Shared by the hook (timing steps) and the listener (marking pauses)."""

  def __init__(self, batch_size):
    self.batch_size = batch_size
    self.steps = 0
    self.seconds = 0.0
    self.paused = False  # set while a checkpoint (and evaluation) runs

  @property
  def examples_per_sec(self):
    return self.steps * self.batch_size / self.seconds if self.seconds else None


class ProgressHook(tf.compat.v1.train.SessionRunHook):
  """Times every run; logs step, loss and speed every N steps.

  A run takes `steps_per_run` steps (fewer for the last), so a line falls
  on the first run that reaches a multiple of N. Only logging runs fetch
  anything, which keeps the hook off the per-step path; the step logged is
  read after the run, so it is exact (in a cluster too, where other workers
  move the global step).
  """

  def __init__(self, throughput, max_steps, every_steps, steps_per_run=1):
    self._throughput = throughput
    self._max_steps = max_steps
    self._every = every_steps
    self._steps_per_run = steps_per_run

  def begin(self):
    self._global_step = tf.compat.v1.train.get_global_step()
    # The Estimator adds its EstimatorSpec.loss to LOSSES last.
    self._loss = tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.LOSSES)[-1]
    self._last = None  # the first run of a session (warm-up) is not timed

  def after_create_session(self, session, coord):
    self._step = session.run(self._global_step)
    self._first_run = True

  def _run_steps(self):
    return max(1, multistep.run_length(self._step, self._steps_per_run,
                                       self._max_steps))

  def before_run(self, run_context):
    after = self._step + self._run_steps()
    self._logging = (self._first_run or
                     after // self._every > self._step // self._every)
    self._first_run = False
    if self._logging:
      return tf.compat.v1.train.SessionRunArgs(self._loss)
    return None

  def after_run(self, run_context, run_values):
    now = time.perf_counter()
    steps = self._run_steps()
    self._step += steps
    t = self._throughput
    if self._last is not None and not t.paused:
      t.steps += steps
      t.seconds += now - self._last
    t.paused = False
    self._last = now
    if self._logging:
      self._step = run_context.session.run(self._global_step)
      self._log(self._step, float(run_values.results))

  def end(self, session):
    speed = self._throughput.examples_per_sec
    logging.info('trained to step %d%s', session.run(self._global_step),
                 f' at {speed:,.0f} examples/s' if speed else '')

  def _log(self, step, loss):
    speed = self._throughput.examples_per_sec
    line = f'step {step}/{self._max_steps}  loss {format_loss(loss)}'
    if speed:
      eta = (self._max_steps - step) * self._throughput.batch_size / speed
      line += (f'  {speed:,.0f} examples/s  eta '
               f'{datetime.timedelta(seconds=round(eta))}')
    logging.info(line)


def format_loss(loss):
  """Four significant digits: late losses read 3.2e-05, never 0.0000."""
  return f'{loss:.4g}'


class PauseListener(tf.estimator.CheckpointSaverListener):
  """Marks the step interval that contains a checkpoint (and evaluation)."""

  def __init__(self, throughput):
    self._throughput = throughput

  def before_save(self, session, global_step_value):
    self._throughput.paused = True
