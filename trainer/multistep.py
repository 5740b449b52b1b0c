"""Several optimizer steps per `Session.run` (--steps-per-run K).

An Estimator pays for every `Session.run` (hooks, feeds, fetches, the run's
own dispatch) once per step; for a small model that is a large share of the
step. With K > 1 the train input_fn hands the model K batches at once
([K, batch, ...]) and the training graph runs K steps in a `tf.while_loop`,
so the cost is paid once per K steps; the global step advances by K per run.

The step accounting is TPUEstimator's (`iterations_per_loop`): a hook knows
the global step and the last step and, for the last run, feeds the loop a
smaller step count, so training ends at exactly the last step. A partial
batch (the epoch's last) arrives padded with inputs.PAD_LABEL rows, which the
loop cuts off, so each step sees exactly the batch it would see with K = 1.
"""

import tensorflow as tf

from trainer import inputs


def run_length(step, steps_per_run, last_step):
  """Optimizer steps one run takes from global step `step`."""
  return max(0, min(steps_per_run, last_step - step))


def is_stacked(x):
  """Whether the input_fn stacked several batches: features [K, batch, ...]."""
  return x.shape.rank == 3


def train_loop(x, labels, train_step, steps_per_run, last_step):
  """Runs train_step over the stacked batches; returns (loss, train_op, hook).

  `train_step(x, labels)` builds one step and returns (loss, update op); the
  variables and optimizer slots it uses must exist before the loop (the
  optimizer creates its slots outside any loop itself). The loss returned is
  the last step's, as K = 1 reports it for that step.
  """
  limit = tf.compat.v1.placeholder_with_default(
      tf.shape(x)[0], [], name='steps_this_run')
  steps = tf.minimum(tf.shape(x)[0], limit)

  def body(i, unused_loss):
    rows = tf.reduce_sum(
        tf.cast(tf.not_equal(labels[i], inputs.PAD_LABEL), tf.int32))
    loss, update = train_step(x[i][:rows], labels[i][:rows])
    # The next step starts after this one's update: it reads the variables.
    with tf.control_dependencies([update]):
      return i + 1, tf.identity(loss)

  done, loss = tf.while_loop(lambda i, _: i < steps, body,
                             (tf.constant(0), tf.constant(0.0)),
                             parallel_iterations=1)
  hook = StepsPerRunHook(limit, steps_per_run, last_step)
  return loss, done.op, hook


class StepsPerRunHook(tf.compat.v1.train.SessionRunHook):
  """Makes the last run take only the steps left, then stops training.

  Counts the global step in Python from its value at session start (one
  process trains; clusters are refused with K > 1), so no run fetches it.
  """

  def __init__(self, limit, steps_per_run, last_step):
    self._limit = limit
    self._steps_per_run = steps_per_run
    self._last_step = last_step
    self._step = None

  def after_create_session(self, session, coord):
    self._step = session.run(tf.compat.v1.train.get_global_step())

  def before_run(self, run_context):
    steps = run_length(self._step, self._steps_per_run, self._last_step)
    if steps < self._steps_per_run:
      return tf.compat.v1.train.SessionRunArgs(
          None, feed_dict={self._limit: steps})
    return None

  def after_run(self, run_context, run_values):
    self._step += run_length(self._step, self._steps_per_run, self._last_step)
    if self._step >= self._last_step:
      run_context.request_stop()
