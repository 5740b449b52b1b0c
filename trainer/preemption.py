"""Stop cleanly on SIGTERM (cloud preemption, `kill`) and SIGINT (Ctrl-C).

While training, either signal no longer kills the process: the current step
ends, the Estimator's checkpoint hook saves a final checkpoint as the
session closes, and the run raises Preempted instead of evaluating and
exporting, which would outlast the short grace period before SIGKILL. A
rerun of the same command resumes from that checkpoint. A second signal
stops the process at once: the checkpoints already written are complete.
"""

import os
import signal
import sys

from absl import logging
import tensorflow as tf

# What a shell reports for a process that the signal ended.
EXIT_STATUS = 128 + signal.SIGTERM
EXIT_STATUSES = {signal.SIGTERM: EXIT_STATUS,
                 signal.SIGINT: 128 + signal.SIGINT}
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """Training stopped on a signal; the newest checkpoint is complete."""

  def __init__(self, signum=signal.SIGTERM):
    super().__init__(signal.Signals(signum).name)
    self.signum = signum

  @property
  def exit_status(self):
    return EXIT_STATUSES[self.signum]


class StopOnSigterm:
  """Context manager: while inside, SIGTERM or SIGINT asks training to stop.

  Inactive (the signals act as before) in tasks with nothing to save:
  workers, parameter servers and evaluators; the chief writes every
  checkpoint.

  Give `hook()` to the training hooks and `listener()` first among the
  checkpoint listeners; on leaving, call `check()`.
  """

  def __init__(self, active=True):
    self.signum = None
    self._active = active
    self._previous = {}

  @property
  def requested(self):
    return self.signum is not None

  def __enter__(self):
    if self._active:
      self._previous = {s: signal.signal(s, self._handle) for s in _SIGNALS}
    return self

  def __exit__(self, *exc_info):
    if self.requested:
      return  # stopping: a second signal still stops at once, until exit
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.requested:  # a second signal: the user will not wait
      print(f'stopped at once on a second {name}; the checkpoints already '
            'written are complete; rerun the same command to resume',
            file=sys.stderr, flush=True)
      os._exit(EXIT_STATUSES[signum])  # pylint: disable=protected-access
    self.signum = signum
    logging.warning('%s: stopping after this step to save a checkpoint '
                    '(%s again stops at once)', name,
                    'Ctrl-C' if signum == signal.SIGINT else name)

  def hook(self):
    return _StopHook(self)

  def listener(self):
    return _AfterSave(self)

  def check(self):
    """Raises Preempted if a signal came."""
    if self.requested:
      raise Preempted(self.signum)


class _StopHook(tf.compat.v1.train.SessionRunHook):

  def __init__(self, stop):
    self._stop = stop

  def after_run(self, run_context, run_values):
    if self._stop.requested:
      run_context.request_stop()


class _AfterSave(tf.estimator.CheckpointSaverListener):
  """Raises once a checkpoint is saved after a signal.

  First among the listeners, it runs before train_and_evaluate's own, which
  would otherwise start an evaluation.
  """

  def __init__(self, stop):
    self._stop = stop

  def after_save(self, session, global_step_value):
    self._stop.check()

  def end(self, session, global_step_value):
    self._stop.check()
