"""The two estimators: premade DNNClassifier and a custom `model_fn`.

Both train with a legacy Keras optimizer whose step counter is the global
step (canned estimators in TF 2.15 accept nothing else), so a learning-rate
schedule follows the global step and survives a restart.
"""

import tensorflow as tf

from trainer import data
from trainer.inputs import FEATURE_KEY

OPTIMIZERS = {
    'adam': tf.keras.optimizers.legacy.Adam,
    'adagrad': tf.keras.optimizers.legacy.Adagrad,
    'sgd': tf.keras.optimizers.legacy.SGD,
    'rmsprop': tf.keras.optimizers.legacy.RMSprop,
}

ACTIVATIONS = {
    'relu': tf.nn.relu,
    'elu': tf.nn.elu,
    'gelu': tf.nn.gelu,
    'tanh': tf.nn.tanh,
    'sigmoid': tf.nn.sigmoid,
}

LR_SCHEDULES = ('constant', 'cosine')

# What a served model returns, for both model types.
SERVING_OUTPUTS = ('class_ids', 'probabilities', 'logits')


def make_optimizer(hp):
  """A fresh optimizer; the Estimator builds one per graph it creates."""
  rate = hp.learning_rate
  if hp.lr_schedule == 'cosine':
    rate = tf.keras.optimizers.schedules.CosineDecay(
        hp.learning_rate, decay_steps=hp.train_steps, alpha=0.01)
  return OPTIMIZERS[hp.optimizer](learning_rate=rate)


def build_estimator(hp, run_config):
  """The estimator `hp.model_type` names, writing to `run_config.model_dir`."""
  if hp.model_type == 'premade':
    return PremadeClassifier(hp, run_config)
  return tf.estimator.Estimator(model_fn=custom_model_fn, config=run_config,
                                params=hp)


def _pixels_column():
  return tf.feature_column.numeric_column(FEATURE_KEY, shape=(data.PIXELS,))


class PremadeClassifier(tf.estimator.DNNClassifier):
  """`tf.estimator.DNNClassifier` whose export serves raw tensors.

  The canned head's default signature is a classification signature that
  accepts only serialized tf.Example strings; we replace the export outputs
  with a predict signature (class_ids, probabilities, logits) so the export
  takes pixels. Training and evaluation are the canned ones, untouched.
  """

  def __init__(self, hp, run_config):
    super().__init__(
        hidden_units=list(hp.hidden_units),
        feature_columns=[_pixels_column()],
        n_classes=data.NUM_CLASSES,
        optimizer=lambda: make_optimizer(hp),
        activation_fn=ACTIVATIONS[hp.activation],
        dropout=hp.dropout[0] or None,
        batch_norm=hp.batch_norm,
        config=run_config)
    canned_model_fn = self._model_fn

    def model_fn(features, labels, mode, config):
      spec = canned_model_fn(features, labels, mode, config)
      if mode != tf.estimator.ModeKeys.PREDICT:
        return spec
      return spec._replace(export_outputs=_export_outputs(spec.predictions))

    self._model_fn = model_fn


def _export_outputs(predictions):
  """One serving signature for both model types: class_ids is int64 [batch]."""
  outputs = {k: predictions[k] for k in SERVING_OUTPUTS}
  outputs['class_ids'] = tf.reshape(
      tf.cast(outputs['class_ids'], tf.int64), [-1])
  return {tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY:
          tf.estimator.export.PredictOutput(outputs)}


def custom_model_fn(features, labels, mode, params):
  """Dense layers, each followed by its own dropout rate (training only).

  Optional dropout on the pixels themselves (`input_dropout`) regularizes
  the first, widest layer, which holds most of the weights.
  """
  hp = params
  training = mode == tf.estimator.ModeKeys.TRAIN
  x = features[FEATURE_KEY]
  if hp.input_dropout:
    x = tf.keras.layers.Dropout(hp.input_dropout)(x, training=training)
  for units, rate in zip(hp.hidden_units, hp.dropout):
    x = tf.keras.layers.Dense(units, activation=ACTIVATIONS[hp.activation])(x)
    if rate:
      x = tf.keras.layers.Dropout(rate)(x, training=training)
  logits = tf.keras.layers.Dense(data.NUM_CLASSES)(x)
  class_ids = tf.argmax(logits, axis=1, output_type=tf.int32)

  if mode == tf.estimator.ModeKeys.PREDICT:
    predictions = {'class_ids': class_ids,
                   'probabilities': tf.nn.softmax(logits),
                   'logits': logits}
    return tf.estimator.EstimatorSpec(
        mode, predictions=predictions,
        export_outputs=_export_outputs(predictions))

  loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=logits))
  if mode == tf.estimator.ModeKeys.EVAL:
    accuracy = tf.compat.v1.metrics.accuracy(labels, class_ids)
    return tf.estimator.EstimatorSpec(
        mode, loss=loss, eval_metric_ops={'accuracy': accuracy})

  optimizer = make_optimizer(hp)
  optimizer.iterations = tf.compat.v1.train.get_or_create_global_step()
  # A tf.distribute strategy sums the replicas' gradients; scale each
  # replica's mean loss as the canned heads do, so the sum is the batch mean.
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  train_op = optimizer.get_updates(
      loss / replicas, tf.compat.v1.trainable_variables())[0]
  return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)
