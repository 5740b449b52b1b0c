"""Several optimizer steps per `Session.run` (--steps-per-run K).

An Estimator pays for every `Session.run` (hooks, feeds, fetches, the run's
own dispatch) once per step; for a small model that is a large share of the
step. With K > 1 the train input_fn hands the model K batches at once
([K, batch, ...]) and the training graph runs K steps in a `tf.while_loop`,
so the cost is paid once per K steps; the global step advances by K per run.

Under a tf.distribute strategy every step's gradient all-reduce is a
`merge_call`, which TensorFlow 2.15 refuses inside a `tf.while_loop` (its body
is a graph of its own). There the K steps are unrolled: straight-line graph
code, one copy of the step (and its all-reduce) per step, chained by control
dependencies. A run that takes fewer than K steps gates the steps it skips
with Switch ops, TensorFlow's own conditional primitive, which makes them
dead (never executed) without building a new graph; Merge ops pass on the
loss of the last step taken. Unrolled graphs grow with K, so under a
strategy K is kept small (trainer.config.MAX_UNROLLED_STEPS).

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


def train_loop(x, labels, train_step, steps_per_run, last_step,
               unrolled=None):
  """Runs train_step over the stacked batches; returns (loss, train_op, hook).

  `x` is a stacked tensor, or a nest of them (None leaves stay None), each
  [K, batch, ...]: step i gets the i-th of each, cut to the batch's real
  rows. `train_step(x, labels)` builds one step and returns (loss, update
  op); the variables and optimizer slots it uses must exist before the loop
  (the optimizer creates its slots outside any loop itself). The loss
  returned is the last step's, as K = 1 reports it for that step. `unrolled`
  (default: under a tf.distribute strategy) builds straight-line steps
  instead of a tf.while_loop.
  """
  if unrolled is None:
    unrolled = tf.distribute.has_strategy()
  limit = _steps_this_run(tf.shape(labels)[0])
  steps = tf.minimum(tf.shape(labels)[0], limit)
  build = _unrolled if unrolled else _while_loop
  loss, train_op = build(x, labels, train_step, steps, steps_per_run)
  return loss, train_op, StepsPerRunHook(limit, steps_per_run, last_step)


def _steps_this_run(default):
  """The run's step count, which the hook feeds: one tensor for the graph.

  Under a strategy every replica builds the model, and the Estimator keeps
  only the first replica's hooks: all replicas must read the tensor that
  hook feeds.
  """
  shared = tf.compat.v1.get_collection(_LIMIT)
  if shared:
    return shared[0]
  with tf.device(None):
    limit = tf.compat.v1.placeholder_with_default(default, [],
                                                  name='steps_this_run')
  tf.compat.v1.add_to_collection(_LIMIT, limit)
  return limit


_LIMIT = 'trainer_steps_this_run'


def _each(fn, x):
  """fn applied to every tensor of the nest x."""
  return tf.nest.map_structure(lambda t: None if t is None else fn(t), x)


def _real_rows(x, labels):
  """A padded batch cut back to its real rows (labels not PAD_LABEL)."""
  rows = tf.reduce_sum(tf.cast(tf.not_equal(labels, inputs.PAD_LABEL),
                               tf.int32))
  return _each(lambda t: t[:rows], x), labels[:rows]


def _while_loop(x, labels, train_step, steps, unused_steps_per_run):
  def body(i, unused_loss):
    loss, update = train_step(*_real_rows(_each(lambda t: t[i], x),
                                          labels[i]))
    # The next step starts after this one's update: it reads the variables.
    with tf.control_dependencies([update]):
      return i + 1, tf.identity(loss)

  done, loss = tf.while_loop(lambda i, _: i < steps, body,
                             (tf.constant(0), tf.constant(0.0)),
                             parallel_iterations=1)
  return loss, done.op


def _unrolled(x, labels, train_step, steps, steps_per_run):
  """steps_per_run straight-line steps; those at or past `steps` are dead.

  Step i runs after step i - 1's update (control dependency) on inputs
  passed through Switch(i < steps): a skipped step, and every step after
  it, never executes. `loss` is a Merge chain: step i's loss (alive once
  its update is done) where step i ran, else the one before.
  """
  loss, update = None, None
  for i in range(steps_per_run):
    ran = tf.less(i, steps)
    with tf.control_dependencies([update] if update is not None else []):
      xi = _each(lambda t: tf.raw_ops.Switch(data=t[i], pred=ran).output_true,
                 x)
      yi = tf.raw_ops.Switch(data=labels[i], pred=ran).output_true
      step_loss, update = train_step(*_real_rows(xi, yi))
    with tf.control_dependencies([update]):
      step_loss = tf.identity(step_loss)
    if loss is not None:
      before = tf.raw_ops.Switch(data=loss, pred=ran).output_false
      step_loss = tf.raw_ops.Merge(inputs=[before, step_loss]).output
    loss = step_loss
  return loss, loss


class StepsPerRunHook(tf.compat.v1.train.SessionRunHook):
  """Makes the last run take only the steps left, then stops training.

  Counts the global step in Python from its value at session start, so no
  run fetches it: one process trains, or the replicas of a synchronous job
  move the step together (asynchronous clusters are refused with K > 1).
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
