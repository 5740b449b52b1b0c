"""The checkpoint cadence: steps, held back by what saves cost, bounded by secs.

The rule is tested on a fake clock with save durations fed in; one real
run at a high step rate checks that the hook times its saves and that the
step count is held back by them.
"""

import os

import tensorflow as tf

from trainer import checkpoints


class Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def cadence(every_secs=60, every_steps=1000):
  clock = Clock()
  return checkpoints.Cadence(every_secs, every_steps, clock=clock), clock


def saved_at(c, clock, step, seconds):
  """What the hook does: trigger, then a save that takes `seconds`."""
  assert c.should_trigger_for_step(step)
  c.update_last_triggered_step(step)
  clock.now += seconds
  c.saved(seconds)


def started(c, clock, first_save=0.3):
  """The session's first save (warm-up, not what a save costs)."""
  saved_at(c, clock, 0, first_save)
  assert c.least_gap_secs == 0.0
  clock.now += 1


def test_first_step_always_saves_and_a_step_saves_once():
  c, clock = cadence()
  assert c.should_trigger_for_step(0)
  saved_at(c, clock, 0, 0.01)
  clock.now += 3600
  assert not c.should_trigger_for_step(0), 'that step is saved already'


def test_cheap_saves_follow_the_step_count():
  """2 CPU cores: 1,000 steps take seconds, a save 40 ms (least gap 2 s)."""
  c, clock = cadence()
  started(c, clock)
  saved_at(c, clock, 1000, 0.04)
  assert c.least_gap_secs == 50 * 0.04
  clock.now += 5  # 1,000 steps at 200 steps/s
  assert not c.should_trigger_for_step(1999)
  assert c.should_trigger_for_step(2000)


def test_saves_at_a_high_step_rate_take_at_most_2_percent():
  """A GPU: 1,000 steps in 0.25 s, a 0.5 s save to gs://: every 25 s."""
  c, clock = cadence(every_secs=60, every_steps=1000)
  started(c, clock, first_save=0.5)
  saved_at(c, clock, 1000, 0.5)
  start, step, saves = clock.now, 1000, 0
  while clock.now < start + 600:  # ten minutes of training
    clock.now += 0.25
    step += 1000
    if c.should_trigger_for_step(step):
      saved_at(c, clock, step, 0.5)
      saves += 1
  assert saves == 600 // 25  # 2% of the ten minutes
  assert c.saves == saves + 2
  assert 0.02 <= c.share() <= 0.022, 'the first two saves too'


def test_checkpoint_secs_bounds_the_gap_whatever_a_save_costs():
  """Saves of 2 s would ask for 100 s between them; --checkpoint-secs wins."""
  c, clock = cadence(every_secs=60, every_steps=1000)
  started(c, clock)
  saved_at(c, clock, 1000, 2.0)  # the gap counts from the save's start
  clock.now += 57
  assert not c.should_trigger_for_step(10**6)
  clock.now += 1
  assert c.should_trigger_for_step(10**6)
  assert c.should_trigger_for_step(1), 'seconds alone suffice'


def test_the_cost_is_the_median_of_the_recent_saves():
  """One slow save (a busy bucket) does not hold the next ones back."""
  c, clock = cadence(every_secs=3600, every_steps=10)
  started(c, clock)
  for step, seconds in enumerate([0.1, 0.1, 5.0, 0.1, 0.1], start=1):
    saved_at(c, clock, step * 10, seconds)
    clock.now += 10
  assert c.least_gap_secs == 50 * 0.1
  for _ in range(5):  # five more slow ones: the median follows
    saved_at(c, clock, step * 10 + 10, 1.0)
    step += 1
    clock.now += 60
  assert c.least_gap_secs == 50 * 1.0


def test_real_saves_are_timed_and_hold_back_a_fast_step_count(tmp_path):
  """Thousands of steps a second, a checkpoint every 10 steps asked for:
  trains until 4 saves are timed, which takes far more than 40 steps."""
  every = 10
  with tf.Graph().as_default():
    global_step = tf.compat.v1.train.get_or_create_global_step()
    weights = tf.compat.v1.get_variable('w', [256, 256])
    train_op = tf.group(tf.compat.v1.assign_add(global_step, 1),
                        tf.compat.v1.assign_add(weights, 0.001 * weights))
    hook = checkpoints.saver_hook(str(tmp_path), 3600, every)
    with tf.compat.v1.train.MonitoredSession(hooks=[
        hook, tf.compat.v1.train.StopAtStepHook(last_step=10**6)]) as sess:
      while hook.cadence.saves < 4 and not sess.should_stop():
        sess.run(train_op)
  c = hook.cadence
  assert c.saves == 4, 'none as it closed: the last step is saved'
  newest = tf.train.latest_checkpoint(str(tmp_path))
  steps = tf.train.load_variable(newest, 'global_step')
  assert os.path.basename(newest) == f'model.ckpt-{steps}'
  assert steps > 4 * 10 * every, 'held back by what the saves cost'
  assert c.save_secs > 0 and c.least_gap_secs > 0
