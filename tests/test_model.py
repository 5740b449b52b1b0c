"""All estimators: train, evaluate, predict, export, reload and resume."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from trainer import config as config_lib
from trainer import data
from trainer import export
from trainer import inputs
from trainer import model
from trainer import train

MODEL_TYPES = config_lib.MODEL_TYPES


@pytest.fixture(scope='module')
def mnist(mnist_dir):
  return data.load(mnist_dir)


def _config(tmp_path, model_type, **overrides):
  settings = dict(job_dir=str(tmp_path / model_type), model_type=model_type,
                  train_steps=60, batch_size=32, hidden_units=(64, 32))
  settings.update(overrides)
  return config_lib.Config(**settings)


@pytest.fixture(scope='module', params=MODEL_TYPES)
def trained(request, tmp_path_factory, mnist):
  """(config, estimator) trained for 60 steps on the small data."""
  cfg = _config(tmp_path_factory.mktemp('model'), request.param)
  estimator = model.build_estimator(cfg, train.estimator_config(cfg))
  estimator.train(inputs.train_input_fn(mnist.train, cfg.batch_size, cfg.seed),
                  max_steps=cfg.train_steps)
  return cfg, estimator


def test_premade_is_a_dnn_classifier(tmp_path):
  cfg = _config(tmp_path, 'premade')
  estimator = model.build_estimator(cfg, train.estimator_config(cfg))
  assert isinstance(estimator, tf.estimator.DNNClassifier)


def test_evaluate_reports_accuracy_and_loss(trained, mnist):
  cfg, estimator = trained
  metrics = estimator.evaluate(inputs.eval_input_fn(mnist.test, 50))
  assert metrics['global_step'] == cfg.train_steps
  assert metrics['accuracy'] > 0.9, 'the synthetic digits are easy to learn'
  assert 0 < metrics['loss'] < 1


def test_predict_returns_classes_and_probabilities(trained, mnist,
                                                   mnist_arrays):
  _, estimator = trained
  predictions = list(estimator.predict(inputs.predict_input_fn(mnist.test, 50)))
  assert len(predictions) == 200
  probabilities = np.array([p['probabilities'] for p in predictions])
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  class_ids = np.array([int(p['class_ids']) for p in predictions])
  np.testing.assert_array_equal(class_ids, probabilities.argmax(axis=1))
  assert (class_ids == mnist_arrays['test'][1]).mean() > 0.9


def _predict(estimator, mnist):
  return np.array([p['logits'] for p in estimator.predict(
      inputs.predict_input_fn(mnist.test, 50))])


@pytest.mark.slow
def test_dropout_is_off_when_predicting(tmp_path, mnist):
  """Heavy dropout must not make two predictions of one input differ."""
  for model_type, dropout in (('premade', (0.5,)), ('custom', (0.5, 0.5)),
                              ('keras', (0.5, 0.5))):
    cfg = _config(tmp_path, model_type, dropout=dropout, train_steps=5)
    estimator = model.build_estimator(cfg, train.estimator_config(cfg))
    estimator.train(inputs.train_input_fn(mnist.train, 32, cfg.seed),
                    max_steps=cfg.train_steps)
    np.testing.assert_array_equal(_predict(estimator, mnist),
                                  _predict(estimator, mnist))


@pytest.mark.parametrize('model_type', config_lib.PER_LAYER_DROPOUT_MODELS)
def test_per_layer_dropout_is_active_in_training(tmp_path, mnist, model_type):
  """Same seed, same data: dropout changes the trained weights."""
  def logits(dropout):
    cfg = _config(tmp_path / str(dropout[0]), model_type, dropout=dropout,
                  train_steps=10)
    estimator = model.build_estimator(cfg, train.estimator_config(cfg))
    estimator.train(inputs.train_input_fn(mnist.train, 32, cfg.seed),
                    max_steps=cfg.train_steps)
    return _predict(estimator, mnist)
  assert not np.allclose(logits((0.0, 0.0)), logits((0.5, 0.5)))


@pytest.mark.slow
@pytest.mark.parametrize('model_type', MODEL_TYPES)
def test_same_seed_trains_the_same_model(tmp_path, mnist, model_type):
  """Seeded weights, dropout and shuffle: reruns are identical on one machine."""
  def logits(name, seed):
    cfg = _config(tmp_path / name, model_type, train_steps=10, seed=seed,
                  dropout=(0.3,) if model_type == 'premade' else None)
    estimator = model.build_estimator(cfg, train.estimator_config(cfg))
    estimator.train(inputs.train_input_fn(mnist.train, 32, cfg.seed),
                    max_steps=cfg.train_steps)
    return _predict(estimator, mnist)
  first = logits('a', seed=7)
  np.testing.assert_array_equal(first, logits('b', seed=7))
  assert not np.allclose(first, logits('c', seed=8))


def test_export_reloads_and_matches_estimator_predict(trained, mnist,
                                                     mnist_arrays, tmp_path):
  cfg, estimator = trained
  path = estimator.export_saved_model(
      str(tmp_path / 'export'), export.serving_input_fn(cfg.scale_inputs))
  serve = tf.saved_model.load(path.decode()).signatures['serving_default']
  assert set(serve.structured_outputs) == set(model.SERVING_OUTPUTS)
  expected = list(estimator.predict(inputs.predict_input_fn(mnist.test, 50)))
  pixels = mnist_arrays['test'][0].astype(np.float32)  # raw 0-255, 28x28
  for batch in (pixels, pixels.reshape(-1, 784)):
    got = serve(x=tf.constant(batch))
    np.testing.assert_array_equal(
        got['class_ids'].numpy().ravel(),
        [int(p['class_ids']) for p in expected])
    np.testing.assert_allclose(
        got['probabilities'].numpy(),
        [p['probabilities'] for p in expected], rtol=1e-4, atol=1e-6)


def test_cosine_schedule_follows_the_global_step(tmp_path):
  cfg = _config(tmp_path, 'custom', learning_rate=0.1, train_steps=100)
  optimizer = model.make_optimizer(cfg)
  schedule = optimizer.learning_rate
  assert float(schedule(0)) == pytest.approx(0.1)
  assert float(schedule(100)) == pytest.approx(0.001)


def test_keras_model_is_the_chapters_sequential_mlp(tmp_path):
  cfg = _config(tmp_path, 'keras', dropout=(0.0, 0.5), input_dropout=0.0,
                activation='tanh')
  keras_model = model.keras_model(cfg)
  assert isinstance(keras_model, tf.keras.Sequential)
  assert keras_model.input_names == [inputs.FEATURE_KEY]
  assert [layer.name for layer in keras_model.layers] == [
      'hidden_1', 'hidden_2', 'dropout_2', 'logits']
  assert keras_model.layers[0].activation.__name__ == 'tanh'
  assert isinstance(keras_model.optimizer, tf.keras.optimizers.legacy.Adam)
  with_input_dropout = model.keras_model(
      dataclasses.replace(cfg, input_dropout=0.1))
  assert with_input_dropout.layers[0].name == 'input_dropout'


@pytest.mark.slow
def test_keras_job_resumes_from_its_checkpoint(tmp_path, mnist_dir):
  """Rebuilt in the same process, the Keras model restores the checkpoint."""
  cfg = _config(tmp_path, 'keras', data_dir=mnist_dir, train_steps=20,
                eval_secs=0)
  first = train.run(cfg)
  resumed = train.run(dataclasses.replace(cfg, train_steps=40))
  assert (first['global_step'], resumed['resumed_from_step'],
          resumed['global_step']) == (20, 20, 40)
  assert resumed['accuracy'] > 0.9
