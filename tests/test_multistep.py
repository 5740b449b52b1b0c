"""--steps-per-run K: K optimizer steps per Session.run train the same model.

The small training split (600 images) in batches of 64 ends each epoch with
a partial batch of 24, so every run below crosses partial batches.
"""

import dataclasses
import logging
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tests.support import processes
from trainer import config as config_lib
from trainer import data
from trainer import export
from trainer import inputs
from trainer import model
from trainer import multistep
from trainer import progress
from trainer import train

STEPS = 23  # 2 epochs and 3 batches: a remainder for every K below


@pytest.fixture(scope='module')
def mnist(mnist_dir):
  return data.load(mnist_dir)


def _config(job_dir, steps_per_run, **overrides):
  settings = dict(job_dir=str(job_dir), model_type='custom',
                  train_steps=STEPS, batch_size=64, hidden_units=(64, 32),
                  steps_per_run=steps_per_run, summary_steps=1)
  settings.update(overrides)
  return config_lib.Config(**settings)


def _train(cfg, mnist):
  estimator = model.build_estimator(cfg, train.estimator_config(cfg))
  estimator.train(inputs.train_input_fn(mnist.train, cfg.batch_size, cfg.seed,
                                        steps_per_run=cfg.steps_per_run),
                  max_steps=cfg.train_steps)
  return estimator


def _variables(estimator):
  reader = tf.train.load_checkpoint(estimator.latest_checkpoint())
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def _loss_summaries(job_dir):
  found = {}
  for path in tf.io.gfile.glob(os.path.join(job_dir, 'events.out.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'loss':
          found[event.step] = value.simple_value
  return found


@pytest.fixture(scope='module')
def one_step(tmp_path_factory, mnist):
  """The custom model (default dropout) trained one step per run."""
  return _train(_config(tmp_path_factory.mktemp('k1'), 1), mnist)


@pytest.mark.parametrize('steps_per_run, train_steps', [
    (3, STEPS), (10, STEPS), (30, STEPS), (23, STEPS), (4, 8)])
def test_k_steps_per_run_train_the_same_model_as_one(
    one_step, tmp_path, mnist, steps_per_run, train_steps):
  """Same seed and data: identical variables (measured difference: 0.0).

  Covers a remainder (23 = 7 x 3 + 2, 2 x 10 + 3), K above the whole
  run (30), K equal to it and an exact multiple (8 = 2 x 4).
  """
  expected = one_step
  if train_steps != STEPS:
    expected = _train(_config(tmp_path / 'k1', 1, train_steps=train_steps),
                      mnist)
  got = _train(_config(tmp_path / 'k', steps_per_run, train_steps=train_steps),
               mnist)
  want, have = _variables(expected), _variables(got)
  assert have['global_step'] == train_steps
  assert set(have) == set(want)
  for name in want:
    np.testing.assert_array_equal(have[name], want[name], err_msg=name)


def test_loss_summaries_are_the_loss_of_the_step_they_name(one_step, tmp_path,
                                                           mnist):
  k = 7
  got = _train(_config(tmp_path, k), mnist)
  steps = _loss_summaries(got.model_dir)
  want = _loss_summaries(one_step.model_dir)
  assert sorted(steps) == [7, 14, 21, 23]
  for step, loss in steps.items():
    assert loss == want[step], step


def test_evaluation_and_export_are_those_of_one_step(one_step, tmp_path, mnist,
                                                     mnist_arrays):
  got = _train(_config(tmp_path, 10), mnist)
  eval_fn = inputs.eval_input_fn(mnist.test, 50)
  assert got.evaluate(eval_fn) == one_step.evaluate(eval_fn)

  def exported(estimator, name):
    """(its SignatureDefs, its serving function) of a fresh export."""
    path = estimator.export_saved_model(
        str(tmp_path / name), export.serving_input_fn(True)).decode()
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
      signatures = tf.compat.v1.saved_model.loader.load(
          session, ['serve'], path).signature_def
    loaded = tf.saved_model.load(path)
    return signatures, loaded, loaded.signatures['serving_default']
  want_defs, _, want = exported(one_step, 'k1')
  have_defs, _, have = exported(got, 'k10')
  assert have_defs == want_defs
  pixels = tf.constant(mnist_arrays['test'][0].astype(np.float32))
  for key, value in want(x=pixels).items():
    np.testing.assert_array_equal(have(x=pixels)[key], value)


def test_stacked_input_is_the_same_batches_with_partial_ones_padded(mnist):
  def batches(steps_per_run):
    dataset = inputs.train_input_fn(mnist.train, 64, seed=5, num_epochs=2,
                                    steps_per_run=steps_per_run)()
    return [(f['x'].numpy(), y.numpy()) for f, y in dataset]
  single = batches(1)
  stacked = batches(4)
  assert [len(y) for _, y in single] == [64] * 9 + [24] + [64] * 9 + [24]
  assert [x.shape for x, _ in stacked] == [(4, 64, 784)] * 5
  rows = [(x[j], y[j]) for x, y in stacked for j in range(len(x))]
  assert len(rows) == len(single)
  for (x, y), (want_x, want_y) in zip(rows, single):
    real = y != inputs.PAD_LABEL
    np.testing.assert_array_equal(y[real], want_y)
    np.testing.assert_array_equal(x[real], want_x)
    assert not x[~real].any() and real.sum() == len(want_y)


@pytest.mark.parametrize('steps_per_run', [5, 7])
def test_the_premade_model_trains_k_steps_as_the_canned_one(tmp_path, mnist,
                                                            steps_per_run):
  """The canned network and head in the K-step loop: the variables of the
  canned DNNClassifier's one step per run (measured difference: 0.0), the
  same names in the checkpoint, the same export signatures."""
  canned, got = (_train(_config(tmp_path / f'k{k}', k, model_type='premade'),
                        mnist) for k in (1, steps_per_run))
  want, have = _variables(canned), _variables(got)
  assert have['global_step'] == STEPS
  assert set(have) == set(want)
  for name in want:
    np.testing.assert_array_equal(have[name], want[name], err_msg=name)
  assert _signatures(got, tmp_path / 'got') == _signatures(canned,
                                                           tmp_path / 'want')


def _signatures(estimator, folder):
  path = estimator.export_saved_model(str(folder),
                                      export.serving_input_fn(True)).decode()
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    return tf.compat.v1.saved_model.loader.load(session, ['serve'],
                                                path).signature_def


def _toy_training(stacked_steps, last_step, unrolled):
  """A linear model trained by Adam on 5 fixed batches (the last one
  padded), 5 batches a run (stacked_steps) or one a run; its variables."""
  rng = np.random.RandomState(0)
  x = rng.rand(5, 4, 3).astype(np.float32)
  labels = rng.randint(0, 2, size=(5, 4)).astype(np.int32)
  labels[4, 2:] = inputs.PAD_LABEL
  with tf.Graph().as_default():
    global_step = tf.compat.v1.train.get_or_create_global_step()
    w = tf.Variable(tf.ones([3, 2]), name='w')
    optimizer = tf.keras.optimizers.legacy.Adam(0.1)
    optimizer.iterations = global_step

    def train_step(x, labels):
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=tf.matmul(x, w)))
      return loss, optimizer.get_updates(loss, [w])[0]

    hooks = []
    if stacked_steps:
      loss, train_op, hook = multistep.train_loop(
          tf.constant(x), tf.constant(labels), train_step, 5, last_step,
          unrolled=unrolled)
      hooks.append(hook)
    else:
      step = tf.compat.v1.placeholder(tf.int32, [])
      loss, train_op = train_step(*multistep._real_rows(  # pylint: disable=protected-access
          tf.gather(x, step), tf.gather(labels, step)))
      hooks.append(tf.compat.v1.train.StopAtStepHook(last_step=last_step))
    losses = []
    with tf.compat.v1.train.SingularMonitoredSession(hooks=hooks) as session:
      while not session.should_stop():
        feed = {} if stacked_steps else {step: len(losses)}
        losses.append(session.run([train_op, loss], feed)[1])
      return session.raw_session().run([w, global_step]), losses


@pytest.mark.parametrize('unrolled', [True, False])
@pytest.mark.parametrize('last_step', [1, 3, 5])
def test_a_short_run_takes_only_its_steps(last_step, unrolled):
  """Unrolled (as under a strategy) or looped: a run of fewer than K steps
  trains exactly those steps (the unrolled ones after them never execute)
  and reports the last one's loss."""
  (w, step), losses = _toy_training(True, last_step, unrolled)
  (want_w, want_step), want_losses = _toy_training(False, last_step, unrolled)
  assert step == want_step == last_step
  np.testing.assert_array_equal(w, want_w)
  assert losses == [want_losses[-1]]


@pytest.mark.parametrize('steps_per_run', [1, 7])
def test_hooks_stop_at_the_last_step_and_count_every_step(caplog,
                                                          steps_per_run):
  """A stand-in train op that adds the steps it is fed to the global step."""
  with tf.Graph().as_default():
    global_step = tf.compat.v1.train.get_or_create_global_step()
    limit = tf.compat.v1.placeholder_with_default(
        tf.constant(steps_per_run, tf.int64), [])
    train_op = global_step.assign_add(limit)
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.LOSSES,
                                   tf.constant(0.5))
    speed = progress.Throughput(batch_size=10)
    hooks = [multistep.StepsPerRunHook(limit, steps_per_run, 40),
             progress.ProgressHook(speed, 40, 10, steps_per_run)]
    caplog.set_level(logging.INFO)
    runs = 0
    with tf.compat.v1.train.MonitoredSession(hooks=hooks) as session:
      while not session.should_stop():
        step = session.run(train_op)
        runs += 1
  assert step == 40
  assert runs == -(-40 // steps_per_run)
  assert speed.steps == 40 - steps_per_run, 'all but the warm-up run'
  logged = [r.getMessage().split()[1] for r in caplog.records
            if r.getMessage().startswith('step ')]
  assert logged == {1: ['1/40', '10/40', '20/40', '30/40', '40/40'],
                    7: ['7/40', '14/40', '21/40', '35/40', '40/40']}[
                        steps_per_run]


def test_default_is_several_steps_for_the_custom_model_by_shape(tmp_path):
  def resolved(model_type, strategy='none', **overrides):
    cfg = config_lib.Config(job_dir=str(tmp_path), model_type=model_type,
                            **overrides)
    return cfg.with_strategy(strategy).with_steps_per_run().steps_per_run
  # 5,120 examples a run, with or without dropout.
  assert resolved('custom') == 20, 'at the default batch size, 256'
  assert resolved('custom', dropout=(0.0,), input_dropout=0.0) == 20
  assert resolved('custom', batch_size=128) == 40
  assert resolved('custom', batch_size=1000) == 5
  assert resolved('custom', batch_size=8192) == 1
  assert resolved('custom', batch_size=32, log_every_steps=10) == 10
  assert resolved('custom', steps_per_run=3) == 3
  assert resolved('premade') == 40, 'at its default batch size, 128'
  assert resolved('premade', batch_norm=True) == resolved('keras') == 1
  # Unrolled under a strategy: at most MAX_UNROLLED_STEPS.
  assert resolved('custom', 'mirrored',
                  batch_size=128) == config_lib.MAX_UNROLLED_STEPS == 10
  assert resolved('custom', 'multiworker', batch_size=1024) == 5
  assert resolved('custom', 'ps') == 1


@pytest.mark.parametrize('overrides, message', [
    (dict(model_type='keras', steps_per_run=5),
     '--steps-per-run=5 is supported by the custom model and the premade one '
     'without --dropout or --batch-norm: the keras model function runs one '
     'step per Session.run; drop --steps-per-run'),
    (dict(model_type='premade', steps_per_run=2, dropout=(0.1,)),
     '--steps-per-run=2 is supported by the custom model and the premade one '
     'without --dropout or --batch-norm: the premade model\'s K-step path has '
     'no dropout or batch normalization; drop --steps-per-run'),
    (dict(model_type='custom', steps_per_run=11, distribute='mirrored'),
     '--steps-per-run=11 is more than 10, the most steps a run unrolls under '
     '--distribute mirrored (one copy of the step per step); give at most 10'),
    (dict(model_type='custom', steps_per_run=0),
     '--steps-per-run=0 must be greater than 0'),
])
def test_unsupported_steps_per_run_is_refused(tmp_path, overrides, message):
  with pytest.raises(config_lib.UsageError, match='^' + re.escape(message)):
    config_lib.Config(job_dir=str(tmp_path), **overrides)


def test_cli_ends_at_exactly_train_steps_and_reports_speed(tmp_path,
                                                           mnist_dir):
  result = processes.run([
      *processes.TASK, '--model-type', 'custom', '--data-dir', mnist_dir,
      '--job-dir', str(tmp_path / 'job'), '--train-steps', '40',
      '--steps-per-run', '7', '--hidden-units', '64,32', '--batch-size', '32',
      '--eval-secs', '0', '--log-every-steps', '10'])
  results = processes.last_json(result)
  assert results['global_step'] == 40 and results['accuracy'] > 0.9
  assert results['config']['steps_per_run'] == 7
  assert results['examples_per_sec'] > 0
  for step in (7, 14, 21, 35, 40):
    assert f'step {step}/40 ' in result.stderr


def test_cli_refuses_several_steps_with_parameter_servers(tmp_path, mnist_dir):
  tf_config = ('{"cluster": {"chief": ["127.0.0.1:1"], "worker": '
               '["127.0.0.1:2"], "ps": ["127.0.0.1:3"]}, "task": {"type": '
               '"chief", "index": 0}}')
  result = processes.run([
      *processes.TASK, '--model-type', 'custom', '--data-dir', mnist_dir,
      '--job-dir', str(tmp_path / 'job'), '--steps-per-run', '5'],
      TF_CONFIG=tf_config)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      'error: --steps-per-run=5 is not supported in a TF_CONFIG cluster with '
      'parameter servers: its workers step on their own, so none knows how '
      'many steps are left; drop --steps-per-run']
  assert not (tmp_path / 'job').exists()


def test_resume_with_another_k_trains_as_one_step_does(tmp_path, mnist):
  """To step 10, then on to 23, in two estimators (as a rerun does)."""
  def resumed(name, first_k, then_k):
    first = _config(tmp_path / name, first_k, train_steps=10)
    _train(first, mnist)
    return _variables(_train(dataclasses.replace(
        first, steps_per_run=then_k, train_steps=STEPS), mnist))
  want, have = resumed('k1', 1, 1), resumed('k4-k6', 4, 6)
  assert have['global_step'] == STEPS
  for name in want:
    np.testing.assert_array_equal(have[name], want[name], err_msg=name)
