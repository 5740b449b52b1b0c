"""Stop cleanly on SIGTERM, the signal cloud preemption and `kill` send.

While training, SIGTERM no longer kills the process: the current step ends,
the Estimator's checkpoint hook saves a final checkpoint as the session
closes, and the run raises Preempted instead of evaluating and exporting,
which would outlast the short grace period before SIGKILL. A rerun of the
same command resumes from that checkpoint.
"""

import signal

from absl import logging
import tensorflow as tf


# What a shell reports for a process that SIGTERM ended.
EXIT_STATUS = 128 + signal.SIGTERM


class Preempted(Exception):
  """Training stopped on SIGTERM; the newest checkpoint is complete."""


class StopOnSigterm:
  """Context manager: while inside, SIGTERM asks training to stop.

  Inactive (SIGTERM kills at once) in tasks with nothing to save: workers,
  parameter servers and evaluators; the chief writes every checkpoint.

  Give `hook()` to the training hooks and `listener()` first among the
  checkpoint listeners; on leaving, call `check()`.
  """

  def __init__(self, active=True):
    self.requested = False
    self._active = active
    self._previous = None

  def __enter__(self):
    if self._active:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc_info):
    if self._active:
      signal.signal(signal.SIGTERM, self._previous)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True
    logging.warning('SIGTERM: stopping after this step')

  def hook(self):
    return _StopHook(self)

  def listener(self):
    return _AfterSave(self)

  def check(self):
    """Raises Preempted if SIGTERM came."""
    if self.requested:
      raise Preempted()


class _StopHook(tf.compat.v1.train.SessionRunHook):

  def __init__(self, stop):
    self._stop = stop

  def after_run(self, run_context, run_values):
    if self._stop.requested:
      run_context.request_stop()


class _AfterSave(tf.estimator.CheckpointSaverListener):
  """Raises once a checkpoint is saved after SIGTERM.

  First among the listeners, it runs before train_and_evaluate's own, which
  would otherwise start an evaluation.
  """

  def __init__(self, stop):
    self._stop = stop

  def after_save(self, session, global_step_value):
    self._stop.check()

  def end(self, session, global_step_value):
    self._stop.check()
