"""When the chief saves a checkpoint: a cadence that follows what a save costs.

The rule (`--help` states it): a checkpoint once --checkpoint-steps steps
have passed, but no sooner after the previous one than BUDGET_FACTOR times
what the recent saves took, so that saving takes about 2% of training or
less at any step rate; and always once --checkpoint-secs have passed, so a
kill loses at most that much. On 2 CPU cores the step count decides (1,000
steps are several seconds; a save takes tens of milliseconds); on a GPU
running thousands of steps a second, or saving to gs://, the measured cost
does, within --checkpoint-secs.

A seconds-only cadence keeps nothing of a short fast run; a steps-only one
saves every second on a GPU. The Estimator's own CheckpointSaverHook takes
one or the other, so the chief gets this one instead: the Estimator
attaches its listeners (evaluation, export, preemption) to the first
CheckpointSaverHook among the training hooks and then adds none of its own.
"""

import collections
import statistics
import time

from absl import logging
import tensorflow as tf

from trainer import config as config_lib

BUDGET = config_lib.SAVE_BUDGET  # the most of training time saving takes
BUDGET_FACTOR = config_lib.SAVE_BUDGET_FACTOR  # least gap, in save times
_WINDOW = 5  # recent saves whose median duration is "what a save costs"


class Cadence:
  """The checkpoint hook's timer (SecondOrStepTimer's interface), fed the
  duration of each save. Pure Python, with an injectable clock, so the rule
  can be tested without TensorFlow's timing.
  """

  def __init__(self, every_secs, every_steps, clock=time.monotonic,
               factor=BUDGET_FACTOR):
    self.every_secs = every_secs
    self.every_steps = every_steps
    self.factor = factor  # 0: the step count alone (for comparisons)
    self._clock = clock
    self._durations = collections.deque(maxlen=_WINDOW)
    self.saves = 0
    self.save_secs = 0.0
    self.started = clock()
    self.reset()

  def reset(self):
    self._last_step = None
    self._last_time = None

  @property
  def least_gap_secs(self):
    """The shortest gap a step count may cause: BUDGET_FACTOR saves' time."""
    if not self._durations:
      return 0.0
    return self.factor * statistics.median(self._durations)

  def saved(self, seconds):
    """Records one save's duration.

    The first (as the session starts) warms the saver up, at 7 times a
    later save's duration here: it would hold back the next saves for no
    reason, so it counts in the totals but not in what a save costs.
    """
    if self.saves:
      self._durations.append(seconds)
    self.saves += 1
    self.save_secs += seconds

  def should_trigger_for_step(self, step):
    if self._last_step is None:
      return True
    if step == self._last_step:
      return False
    elapsed = self._clock() - self._last_time
    if elapsed >= self.every_secs:
      return True
    return (step >= self._last_step + self.every_steps and
            elapsed >= self.least_gap_secs)

  def update_last_triggered_step(self, step):
    now = self._clock()
    elapsed = (None, None) if self._last_step is None else (
        now - self._last_time, step - self._last_step)
    self._last_step, self._last_time = step, now
    return elapsed

  def last_triggered_step(self):
    return self._last_step

  def share(self):
    """Seconds spent saving over seconds since this cadence began."""
    total = self._clock() - self.started
    return self.save_secs / total if total > 0 else 0.0


class _TimedSaver:
  """A tf.compat.v1.train.Saver whose save() reports its duration."""

  def __init__(self, saver, cadence):
    self._saver = saver
    self._cadence = cadence

  def save(self, *args, **kwargs):
    start = time.perf_counter()
    try:
      return self._saver.save(*args, **kwargs)
    finally:
      self._cadence.saved(time.perf_counter() - start)

  def __getattr__(self, name):
    return getattr(self._saver, name)


class CheckpointSaver(tf.compat.v1.train.CheckpointSaverHook):
  """CheckpointSaverHook on a Cadence: times each save, reports the total."""

  def __init__(self, checkpoint_dir, cadence):
    super().__init__(checkpoint_dir, save_secs=cadence.every_secs)
    self._timer = cadence
    self.cadence = cadence

  def _get_saver(self):
    return _TimedSaver(super()._get_saver(), self.cadence)

  def end(self, session):
    super().end(session)
    c = self.cadence
    logging.info('checkpoints: %d saved in %.2f s, %.1f%% of this run '
                 '(least gap now %.1f s)', c.saves, c.save_secs,
                 100 * c.share(), c.least_gap_secs)


def saver_hook(job_dir, secs, steps, steps_per_run=1, factor=BUDGET_FACTOR):
  """A CheckpointSaver for job_dir on the rule above.

  With several steps per Session.run it counts each run as that many steps
  (as TPUEstimator's does), so a step cadence is not one run late.
  """
  hook = CheckpointSaver(job_dir, Cadence(secs, steps, factor=factor))
  hook._set_steps_per_run(steps_per_run)  # pylint: disable=protected-access
  return hook
