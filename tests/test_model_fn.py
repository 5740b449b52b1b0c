"""Each model type's model_fn in each mode, built without training.

A fresh graph and a few constant examples, as tensorflow/models'
mnist_test.py does: the spec's shapes, dtypes and outputs, in seconds, so a
broken spec shows here before the slower end-to-end tests.
"""

import pytest
import tensorflow as tf

from trainer import config as config_lib
from trainer import data
from trainer import model
from trainer.inputs import FEATURE_KEY

BATCH = 4
MODES = tf.estimator.ModeKeys


def build_spec(tmp_path, model_type, mode):
  """(spec, graph) of model_type's model_fn on BATCH examples in `mode`."""
  cfg = config_lib.Config(job_dir=str(tmp_path), model_type=model_type,
                          train_steps=10, hidden_units=(16, 8))
  estimator = model.build_estimator(
      cfg, tf.estimator.RunConfig(model_dir=str(tmp_path), tf_random_seed=1))
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.train.get_or_create_global_step()
    features = {FEATURE_KEY: tf.random.uniform([BATCH, data.PIXELS])}
    labels = (None if mode == MODES.PREDICT else
              tf.constant([0, 1, 2, 3], tf.int32))
    spec = estimator.model_fn(features, labels, mode, estimator.config)
  return spec, graph


@pytest.mark.parametrize('model_type', config_lib.MODEL_TYPES)
def test_train_spec_has_a_scalar_loss_and_a_train_op(tmp_path, model_type):
  spec, _ = build_spec(tmp_path, model_type, MODES.TRAIN)
  assert spec.mode == MODES.TRAIN
  assert spec.loss.shape.rank == 0 and spec.loss.dtype == tf.float32
  assert spec.train_op is not None


@pytest.mark.parametrize('model_type', config_lib.MODEL_TYPES)
def test_eval_spec_reports_accuracy_and_loss(tmp_path, model_type):
  spec, _ = build_spec(tmp_path, model_type, MODES.EVAL)
  assert spec.loss.shape.rank == 0 and spec.train_op is None
  assert 'accuracy' in spec.eval_metric_ops
  value, update = spec.eval_metric_ops['accuracy']
  assert value.shape.rank == 0 and update is not None


@pytest.mark.parametrize('model_type', config_lib.MODEL_TYPES)
def test_predict_spec_serves_one_signature(tmp_path, model_type):
  spec, graph = build_spec(tmp_path, model_type, MODES.PREDICT)
  assert set(model.SERVING_OUTPUTS) <= set(spec.predictions)
  serving, = spec.export_outputs.values()
  outputs = serving.outputs
  assert {name: (tensor.dtype, tensor.shape.as_list())
          for name, tensor in outputs.items()} == {
              'class_ids': (tf.int64, [BATCH]),
              'probabilities': (tf.float32, [BATCH, data.NUM_CLASSES]),
              'logits': (tf.float32, [BATCH, data.NUM_CLASSES])}
  with tf.compat.v1.Session(graph=graph) as session:
    session.run(tf.compat.v1.global_variables_initializer())
    probabilities, class_ids = session.run(
        [outputs['probabilities'], outputs['class_ids']])
  assert probabilities.sum(axis=1) == pytest.approx([1.0] * BATCH, abs=1e-5)
  assert (class_ids == probabilities.argmax(axis=1)).all()


def test_every_option_name_has_its_tensorflow_side():
  assert tuple(model.OPTIMIZERS) == config_lib.OPTIMIZERS
  assert tuple(model.ACTIVATIONS) == config_lib.ACTIVATIONS
