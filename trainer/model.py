"""The three estimators: premade DNNClassifier, a custom `model_fn` and a
Keras `Sequential` MLP turned into an Estimator.

All train with a legacy Keras optimizer whose step counter is the global
step (canned estimators and `model_to_estimator` in TF 2.15 accept nothing
else), so a learning-rate schedule follows the global step and survives a
restart. All export the same serving signature.
"""

import contextlib

import tensorflow as tf
# The canned DNNClassifier's own network and head, for its K-step path.
from tensorflow_estimator.python.estimator.canned import dnn as canned_dnn
from tensorflow_estimator.python.estimator.head import base_head
from tensorflow_estimator.python.estimator.head import head_utils

from trainer import data
from trainer import dropout
from trainer import multistep
from trainer.inputs import FEATURE_KEY

# TensorFlow's side of the option names in trainer.config.
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

# Name of the Keras model's output layer (its logits).
KERAS_OUTPUT = 'logits'

# What a served model returns, for every model type.
SERVING_OUTPUTS = ('class_ids', 'probabilities', 'logits')


def make_optimizer(cfg):
  """A fresh optimizer; the Estimator builds one per graph it creates."""
  rate = cfg.learning_rate
  if cfg.lr_schedule == 'cosine':
    rate = tf.keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=cfg.train_steps, alpha=0.01)
  return OPTIMIZERS[cfg.optimizer](learning_rate=rate)


def build_estimator(cfg, run_config):
  """The estimator `cfg.model_type` names, writing to `run_config.model_dir`."""
  if cfg.model_type == 'premade':
    return PremadeClassifier(cfg, run_config)
  if cfg.model_type == 'keras':
    return keras_estimator(cfg, run_config)
  return tf.estimator.Estimator(model_fn=custom_model_fn, config=run_config,
                                params=cfg)


def _pixels_column():
  return tf.feature_column.numeric_column(FEATURE_KEY, shape=(data.PIXELS,))


class PremadeClassifier(tf.estimator.DNNClassifier):
  """`tf.estimator.DNNClassifier` whose export serves raw tensors.

  The canned head's default signature is a classification signature that
  accepts only serialized tf.Example strings; we replace the export outputs
  with a predict signature (class_ids, probabilities, logits) so the export
  takes pixels. Evaluation and prediction are the canned ones, untouched,
  and so is training one step per Session.run; with stacked input
  (--steps-per-run K > 1) the canned network and head train K steps per
  run (_premade_steps).
  """

  def __init__(self, cfg, run_config):
    super().__init__(
        hidden_units=list(cfg.hidden_units),
        feature_columns=[_pixels_column()],
        n_classes=data.NUM_CLASSES,
        optimizer=lambda: make_optimizer(cfg),
        activation_fn=ACTIVATIONS[cfg.activation],
        dropout=cfg.dropout[0] or None,
        batch_norm=cfg.batch_norm,
        config=run_config)
    self._model_fn = _serving_predictions(
        _premade_steps(self._model_fn, cfg), lambda p: p)


def _premade_steps(canned_model_fn, cfg):
  """The canned model function, but K steps per run on stacked input.

  The canned function builds its train op itself, one optimizer step on
  one batch, inside TensorFlow's code. Here the same pieces it is made of,
  the canned network (`dnn` with its variable names) and the canned
  multi-class head's loss and train op, are built into the K-step loop of
  trainer.multistep, so checkpoints, evaluation and the export are the
  canned ones. The network's own summaries (activation histograms, zero
  fractions) are left out: they cannot read tensors inside the loop.
  """
  def model_fn(features, labels, mode, config):
    x = features[FEATURE_KEY]
    if mode != tf.estimator.ModeKeys.TRAIN or not multistep.is_stacked(x):
      return canned_model_fn(features, labels, mode, config)
    network = canned_dnn._DNNModelV2(  # pylint: disable=protected-access
        units=data.NUM_CLASSES, hidden_units=list(cfg.hidden_units),
        feature_columns=[_pixels_column()],
        activation_fn=ACTIVATIONS[cfg.activation], dropout=None,
        batch_norm=False, name='dnn')
    head = head_utils.binary_or_multi_class_head(  # DNNClassifier's defaults
        data.NUM_CLASSES, weight_column=None, label_vocabulary=None,
        loss_reduction=tf.losses.Reduction.SUM_OVER_BATCH_SIZE)
    optimizer = make_optimizer(cfg)
    optimizer.iterations = tf.compat.v1.train.get_or_create_global_step()

    def logits(x):
      with _without_new_summaries():
        return network({FEATURE_KEY: x}, mode)

    def train_step(x, labels):
      loss = head.loss(labels, logits(x), {FEATURE_KEY: x}, mode)
      return loss, base_head.create_estimator_spec_train_op(
          head.name, optimizer, network.trainable_variables,
          regularized_training_loss=loss)

    logits(x[0])  # builds the variables before the loop; never runs
    loss, train_op, hook = multistep.train_loop(
        x, labels, train_step, cfg.steps_per_run, cfg.train_steps)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op,
                                      training_hooks=[hook])
  return model_fn


@contextlib.contextmanager
def _without_new_summaries():
  """Drops the summaries made inside: a loop's tensors cannot be fetched."""
  summaries = tf.compat.v1.get_collection_ref(tf.compat.v1.GraphKeys.SUMMARIES)
  before = len(summaries)
  yield
  del summaries[before:]


def _serving_predictions(model_fn, to_predictions):
  """Wraps a model_fn so PREDICT yields our predictions and signature.

  `to_predictions` maps the wrapped model_fn's predictions to a dict with
  (at least) SERVING_OUTPUTS.
  """
  def wrapped(features, labels, mode, config):
    spec = model_fn(features, labels, mode, config)
    if mode == tf.estimator.ModeKeys.TRAIN:
      return _batch_mean_loss(spec)
    if mode != tf.estimator.ModeKeys.PREDICT:
      return spec
    predictions = to_predictions(spec.predictions)
    return spec._replace(predictions=predictions,
                         export_outputs=_export_outputs(predictions))
  return wrapped


def _batch_mean_loss(spec):
  """The spec with its loss this replica's share of the batch mean.

  A strategy sums the replicas' losses for the progress lines and summaries,
  and the canned and Keras model functions report each replica's own mean
  (they scale only the loss they train on); shared out, the sum is the mean
  of the global batch, as on one device. The train op is already built.
  """
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  if replicas == 1:
    return spec
  return spec._replace(loss=spec.loss / replicas)


def _predictions(logits):
  return {'class_ids': tf.argmax(logits, axis=1, output_type=tf.int32),
          'probabilities': tf.nn.softmax(logits),
          'logits': logits}


def _export_outputs(predictions):
  """One serving signature for all model types: class_ids is int64 [batch]."""
  outputs = {k: predictions[k] for k in SERVING_OUTPUTS}
  outputs['class_ids'] = tf.reshape(
      tf.cast(outputs['class_ids'], tf.int64), [-1])
  return {tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY:
          tf.estimator.export.PredictOutput(outputs)}


def _initializer(cfg, layer):
  """Glorot-uniform weights seeded from cfg.seed, one seed per layer.

  Unseeded Keras initializers ignore the graph seed (RunConfig.tf_random_seed)
  and draw from Python's `random`, so two runs would start differently.
  """
  return tf.keras.initializers.GlorotUniform(seed=cfg.seed + layer)


def _network(cfg):
  """The custom model's layers; returns logits(x, masks=None).

  `masks` (training) holds one dropout mask or None per hidden layer, each
  applied after its layer's activation (the pixels arrive with their
  dropout done). The layers are created here, in one order, so their
  variable names do not depend on where they are first called.
  """
  hidden = [tf.keras.layers.Dense(units, kernel_initializer=_initializer(cfg, i))
            for i, units in enumerate(cfg.hidden_units, 1)]
  output = tf.keras.layers.Dense(data.NUM_CLASSES,
                                 kernel_initializer=_initializer(cfg, 0))
  activation = ACTIVATIONS[cfg.activation]

  def activated(x, mask, rate):
    if mask is None:
      return activation(x)
    if cfg.activation == 'relu':
      return dropout.relu_dropped(x, mask, dropout.keep_scale(rate))
    return activation(x) * mask

  def logits(x, masks=None):
    for layer, mask, rate in zip(hidden, masks or [None] * len(hidden),
                                 cfg.dropout):
      x = activated(layer(x), mask, rate)
    return output(x)
  logits.layers = hidden + [output]
  return logits


def _run_masks(cfg, x, step):
  """Per hidden layer, its dropout masks ([K, rows, units]; None at rate 0)
  for a run's batches x ([K, rows, 784]) from global step `step` on
  (trainer.dropout; the pixels' own dropout is done by the input pipeline,
  see input_dropout_in_pipeline).
  """
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  replica = tf.distribute.get_replica_context().replica_id_in_sync_group
  shape = tf.shape(x)
  return tuple(dropout.step_masks(
      shape[0], shape[1], cfg.hidden_units, cfg.dropout, cfg.seed, step,
      batch_rows=cfg.batch_size // replicas, replica=replica))


def input_dropout_in_pipeline(cfg):
  """The pixels' dropout rate the train input_fn applies: the custom
  model's (the Keras model has a Dropout layer of its own)."""
  return cfg.input_dropout if cfg.model_type == 'custom' else 0.0


def _train_step(cfg, network):
  """train_step((pixels, masks), labels) -> (loss, update op), on one
  optimizer.

  The optimizer is built once, outside any training loop; its step counter
  is the global step, so a schedule and Adam's bias correction follow it.
  """
  optimizer = make_optimizer(cfg)
  optimizer.iterations = tf.compat.v1.train.get_or_create_global_step()
  # A tf.distribute strategy sums the replicas' gradients; scale each
  # replica's mean loss as the canned heads do, so the sum is the batch mean.
  replicas = tf.distribute.get_strategy().num_replicas_in_sync

  def train_step(features, labels):
    # This replica's share of the batch mean: the strategy sums the shares
    # (gradients and the loss the Estimator reports).
    x, masks = features
    loss = _loss(labels, network(x, masks)) / replicas
    variables = [w for layer in network.layers for w in layer.trainable_weights]
    return loss, optimizer.get_updates(loss, variables)[0]
  return train_step


def _loss(labels, logits):
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=logits))


def custom_model_fn(features, labels, mode, params):
  """Dense layers, each followed by its own dropout rate (training only).

  Optional dropout on the pixels themselves (`input_dropout`, applied by
  the train input_fn) regularizes the first, widest layer, which holds
  most of the weights. Stacked
  training features ([K, batch, 784], see multistep) train K steps per run.
  """
  cfg = params
  network = _network(cfg)
  x = features[FEATURE_KEY]
  if mode == tf.estimator.ModeKeys.TRAIN:
    train_step = _train_step(cfg, network)
    step = tf.compat.v1.train.get_or_create_global_step().read_value()
    if not multistep.is_stacked(x):
      masks = _run_masks(cfg, x[None], step)
      loss, train_op = train_step(
          (x, tuple(m if m is None else m[0] for m in masks)), labels)
      return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)
    network(x[0])  # builds the variables before the loop; never runs
    loss, train_op, hook = multistep.train_loop(
        (x, _run_masks(cfg, x, step)), labels, train_step, cfg.steps_per_run,
        cfg.train_steps)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op,
                                      training_hooks=[hook])

  logits = network(x)
  predictions = _predictions(logits)
  if mode == tf.estimator.ModeKeys.PREDICT:
    return tf.estimator.EstimatorSpec(
        mode, predictions=predictions,
        export_outputs=_export_outputs(predictions))
  accuracy = tf.compat.v1.metrics.accuracy(labels, predictions['class_ids'])
  return tf.estimator.EstimatorSpec(
      mode, loss=_loss(labels, logits),
      eval_metric_ops={'accuracy': accuracy})


def keras_model(cfg):
  """The chapter's Keras MLP: Dense layers, each with its own dropout rate
  (and `input_dropout` on the pixels, as in the custom model).

  Layers are named explicitly: checkpoint variable names must not depend on
  how many Keras models this process built before (a resumed job is built
  in a fresh process). Weights are seeded from cfg.seed.
  The Input is named FEATURE_KEY, which model_to_estimator matches to the
  input_fn's feature key. The model outputs logits. Dropout masks take
  their seeds from the graph seed (the custom model seeds its masks by seed,
  global step and layer, so with dropout the two differ).
  """
  layers = [tf.keras.Input(shape=(data.PIXELS,), name=FEATURE_KEY)]
  if cfg.input_dropout:
    layers.append(tf.keras.layers.Dropout(cfg.input_dropout,
                                          name='input_dropout'))
  for i, (units, rate) in enumerate(zip(cfg.hidden_units, cfg.dropout), 1):
    layers.append(tf.keras.layers.Dense(
        units, activation=cfg.activation, name=f'hidden_{i}',
        kernel_initializer=_initializer(cfg, i)))
    if rate:
      layers.append(tf.keras.layers.Dropout(rate, name=f'dropout_{i}'))
  layers.append(tf.keras.layers.Dense(
      data.NUM_CLASSES, name=KERAS_OUTPUT,
      kernel_initializer=_initializer(cfg, 0)))
  model = tf.keras.Sequential(layers, name='mlp')
  model.compile(
      optimizer=make_optimizer(cfg),
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name='accuracy')])
  return model


def keras_estimator(cfg, run_config):
  """`keras_model(cfg)` as an Estimator, serving like the other model types.

  model_to_estimator stores the Keras initial weights under
  <model_dir>/keras/ and warm-starts from them when no checkpoint exists.
  Name-based (`saver`) checkpoints keep the `global_step` key that resume
  logic reads, as in the other model types.
  """
  estimator = tf.keras.estimator.model_to_estimator(
      keras_model=keras_model(cfg), config=run_config,
      checkpoint_format='saver')
  keras_model_fn = estimator._model_fn  # pylint: disable=protected-access
  estimator._model_fn = _serving_predictions(  # pylint: disable=protected-access
      lambda features, labels, mode, config: keras_model_fn(
          features, labels, mode),
      lambda p: _predictions(p[KERAS_OUTPUT]))
  return estimator
