"""When the chief saves a checkpoint: every N steps or S seconds, first wins.

A seconds-only cadence bounds lost time on a slow machine but keeps nothing
of a short fast run (a 30-second laptop run saved only step 0 with the old
default of 60 s); a steps-only cadence saves too often on a fast GPU. The
Estimator's own CheckpointSaverHook takes one or the other, so the chief
gets this one instead: the Estimator attaches its listeners (evaluation,
export, preemption) to the first CheckpointSaverHook among the training
hooks and then adds none of its own.
"""

import tensorflow as tf


class _StepsOrSecs(tf.compat.v1.train.SecondOrStepTimer):
  """SecondOrStepTimer that fires on whichever interval ends first."""

  def __init__(self, every_secs, every_steps):
    super().__init__(every_secs=every_secs)
    self._steps_bound = every_steps

  def should_trigger_for_step(self, step):
    last = self.last_triggered_step()
    if (last is not None and step != last and
        step >= last + self._steps_bound):
      return True
    return super().should_trigger_for_step(step)


def saver_hook(job_dir, secs, steps, steps_per_run=1):
  """A CheckpointSaverHook saving into job_dir every `steps` or `secs`.

  With several steps per Session.run it counts each run as that many steps
  (as TPUEstimator's does), so a step cadence is not one run late.
  """
  hook = tf.compat.v1.train.CheckpointSaverHook(job_dir, save_secs=secs)
  hook._timer = _StepsOrSecs(secs, steps)  # pylint: disable=protected-access
  hook._set_steps_per_run(steps_per_run)  # pylint: disable=protected-access
  return hook
