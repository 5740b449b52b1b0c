"""Asynchronous (parameter-server) jobs end at exactly --train-steps.

Each trainer of an asynchronous job adds to the shared global step on its
own. The Estimator's StopAtStepHook stops a trainer when the step *read
during* its last run reaches the target, and that read misses the other
trainers' concurrent steps, so trainers ran on past the target: a job of
a chief and a worker ended at step 3,001 or 3,002 for 3,000 (each trainer
can add up to two steps after the target is reached).

Here every trainer reads the true step after each run near its end, and
the workers stop MARGIN_PER_TRAINER steps per trainer before the target:
the chief trains the last steps alone, reading the true step after each,
so it stops at the target exactly. Only a worker step still in flight
when the chief has trained all those last steps could add one more (a
worker delayed that long); the checkpoint then holds it, as results.json
reports.
"""

import tensorflow as tf

MARGIN_PER_TRAINER = 10
_WINDOW = 100  # steps before its last in which a trainer reads the true step


def hooks(role, train_steps):
  """The stop hook for `role`, in a list; none outside asynchronous jobs."""
  if role.is_local or not role.cluster.get('ps') or not role.trains:
    return []
  if role.is_chief:
    return [ExactStop(train_steps)]
  return [ExactStop(max(0, train_steps - margin(role)))]


def margin(role):
  """The steps a worker leaves to the chief: MARGIN_PER_TRAINER a trainer."""
  trainers = sum(len(role.cluster.get(t, ())) for t in
                 ('chief', 'master', 'worker'))
  return MARGIN_PER_TRAINER * trainers


class ExactStop(tf.compat.v1.train.SessionRunHook):
  """Stops once the true global step reaches last_step (also at the start)."""

  def __init__(self, last_step):
    self.last_step = last_step

  def begin(self):
    self._global_step = tf.compat.v1.train.get_global_step()

  def after_create_session(self, session, coord):
    self._step = session.run(self._global_step)
    if self._step >= self.last_step:
      coord.request_stop()

  def before_run(self, run_context):
    return tf.compat.v1.train.SessionRunArgs(self._global_step)

  def after_run(self, run_context, run_values):
    if run_values.results + 1 + _WINDOW >= self.last_step:
      if run_context.session.run(self._global_step) >= self.last_step:
        run_context.request_stop()
