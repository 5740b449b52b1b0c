"""`input_fn` builders: MNIST IDX files to batches of features {'x': ...}.

Each split is read from its files by `tf.data` as one uint8 record (so the
pixels never become graph constants, which slowed Estimators 3-7x), cached in
memory as uint8, and cut into batches by gathering shuffled indices. All
float work (cast, scaling) happens per batch, not per example: per-element
`tf.data` work competes with the model for the CPU.
"""

import tensorflow as tf

from trainer import data
from trainer import dropout

FEATURE_KEY = 'x'
# Label of the rows that pad an epoch's partial last batch when batches are
# stacked (steps_per_run > 1); real labels are 0-9. Whatever consumes
# stacked batches (trainer/multistep.py) drops these rows.
PAD_LABEL = -1


def pixels_to_features(pixels, scale_inputs):
  """Raw 0-255 pixels -> the model's features; also used by the export."""
  x = tf.reshape(tf.cast(pixels, tf.float32), [-1, data.PIXELS])
  if scale_inputs:
    x = x / 255.0
  return {FEATURE_KEY: x}


def _whole_split(split):
  """A dataset of one element: (uint8 images [n, 784], int32 labels [n])."""
  def read(idx):
    return tf.data.FixedLengthRecordDataset(
        idx.path, record_bytes=idx.count * idx.record_bytes,
        header_bytes=idx.header_bytes, compression_type=idx.compression)

  def decode(images, labels):
    images = tf.reshape(tf.io.decode_raw(images, tf.uint8), [-1, data.PIXELS])
    labels = tf.cast(tf.io.decode_raw(labels, tf.uint8), tf.int32)
    return images, labels

  return tf.data.Dataset.zip((read(split.images), read(split.labels))).map(
      decode)


def train_input_fn(split, batch_size, seed, scale_inputs=True,
                   num_epochs=None, shard=(0, 1), steps_per_run=1,
                   input_dropout=0.0):
  """Shuffled batches, a fresh order each epoch, repeating `num_epochs` times.

  The order depends only on (seed, shard, epoch), so a run is reproducible.
  With `input_dropout`, pixels are dropped here, ahead of the step, with
  masks that depend only on (seed, shard, the example's place in the
  epochs' order): see _dropped_out.
  `shard` = (index, count) gives each replica of an asynchronous cluster its
  own order. With steps_per_run K > 1, each element is K consecutive batches
  of that order, stacked ([K, batch_size, 784]; under a strategy, K of a
  replica's shares); an epoch's partial last batch is padded with
  PAD_LABEL rows.

  Under a tf.distribute strategy (the Estimator passes `input_context`),
  batch_size is the global batch of all replicas in sync: see _replica_slices.
  """
  index, count = shard

  def epoch_batches(whole, epoch, replicas):
    images, labels = whole
    shard_seed = tf.cast(seed, tf.int64) * count + index
    order = tf.random.experimental.stateless_shuffle(
        tf.range(split.size), seed=tf.stack([shard_seed, epoch]))
    batches = _index_batches(order, split.size, batch_size)
    if replicas:
      batches = _replica_slices(batches, *replicas)

    def gather(indices, place):
      pixels = tf.gather(images, indices)
      if input_dropout:
        pixels = _dropped_out(pixels, input_dropout, scale_inputs, shard_seed,
                              epoch * split.size + place)
      return pixels, tf.gather(labels, indices)
    return batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE)

  def input_fn(input_context=None):
    replicas = _replicas(input_context)
    if replicas:
      index, count = 0, 1  # in sync, every replica draws the same order
    epochs = (tf.data.Dataset.counter() if num_epochs is None
              else tf.data.Dataset.range(num_epochs))
    whole = _whole_split(split).cache()
    batches = tf.data.Dataset.zip((whole.repeat(), epochs)).flat_map(
        lambda whole, epoch: epoch_batches(whole, epoch, replicas))
    if steps_per_run > 1:
      local, total = replicas[1:] if replicas else (1, 1)
      batches = _stacked(batches, batch_size // total, steps_per_run, local)
    return _to_features(batches, scale_inputs)

  return input_fn


def _replicas(input_context):
  """(first, local, total) replicas of this input pipeline, or None."""
  if input_context is None or input_context.num_replicas_in_sync <= 1:
    return None
  total = input_context.num_replicas_in_sync
  local = total // input_context.num_input_pipelines
  return input_context.input_pipeline_id * local, local, total


def _dropped_out(pixels, rate, scale_inputs, key, first_row):
  """uint8 pixels [rows, 784] -> float features with dropout: rows
  first_row, ... of the pixel stream (layer 0) of trainer.dropout, the
  mask's scale and 1/255 in one multiply."""
  scale = dropout.keep_scale(rate) / (255.0 if scale_inputs else 1.0)
  return tf.cast(pixels, tf.float32) * dropout.rows_mask(
      key, 0, first_row, tf.shape(pixels)[0], data.PIXELS, rate, scale)


def _replica_slices(batches, first, local, total):
  """Each global batch of indices as this pipeline's replicas' slices.

  Every replica of a synchronous job shuffles alike, so global batch s is
  the batch one device would train at step s; replica r takes its r-th
  slice, and a pipeline yields the slices of its `local` replicas in turn,
  which is how a strategy hands elements to its devices. So N replicas
  train on exactly one device's examples. An epoch's last batch, when it has
  fewer rows than replicas, is dropped (no replica may get an empty slice).
  """
  def slices(indices, place):
    rows = tf.cast(tf.size(indices), tf.int64)
    return tf.data.Dataset.range(first, first + local).map(
        lambda r: (indices[r * rows // total:(r + 1) * rows // total],
                   place + r * rows // total))
  return batches.filter(lambda i, _: tf.size(i) >= total).flat_map(slices)


def _index_batches(order, size, batch_size):
  """`order` cut into batches of indices, the last one partial, each with
  its first index's place in the order.

  Reshaped in one op, not `.batch()`ed: batching passes every index through
  tf.data one by one, which cost a quarter to a third of the input's CPU time per batch
  of 128 (measured by iterating the input alone).
  """
  full = size // batch_size * batch_size
  batches = tf.data.Dataset.from_tensor_slices(
      (tf.reshape(order[:full], [-1, batch_size]),
       tf.range(0, full, batch_size, dtype=tf.int64)))
  if full < size:
    batches = batches.concatenate(tf.data.Dataset.from_tensors(
        (order[full:], tf.constant(full, tf.int64))))
  return batches


def eval_input_fn(split, batch_size, scale_inputs=True):
  """One pass over the split, in file order."""
  def input_fn():
    batches = _whole_split(split).flat_map(
        lambda images, labels: tf.data.Dataset.from_tensor_slices(
            (images, labels)).batch(batch_size))
    return _to_features(batches, scale_inputs)
  return input_fn


def predict_input_fn(split, batch_size, scale_inputs=True):
  """Features only, one pass in file order (for `estimator.predict`)."""
  evaluate = eval_input_fn(split, batch_size, scale_inputs)
  return lambda: evaluate().map(lambda features, labels: features)


def _stacked(batches, rows, count, local=1):
  """`count` batches per element, padded to `rows` rows.

  With `local` replicas on this pipeline its batches arrive in turn (one
  per replica, see _replica_slices); each replica gets `count` of its own.
  """
  stacked = batches.padded_batch(
      count * local, padded_shapes=([rows, data.PIXELS], [rows]),
      padding_values=(tf.constant(0, batches.element_spec[0].dtype),
                      PAD_LABEL))
  if local == 1:
    return stacked

  def per_replica(images, labels):
    return tf.data.Dataset.from_tensor_slices((
        tf.transpose(tf.reshape(images, [-1, local, rows, data.PIXELS]),
                     [1, 0, 2, 3]),
        tf.transpose(tf.reshape(labels, [-1, local, rows]), [1, 0, 2])))
  return stacked.flat_map(per_replica)


def _to_features(batches, scale_inputs):
  def features(images, labels):
    x = images  # float already where dropout made it (_dropped_out)
    if images.dtype == tf.uint8:
      x = pixels_to_features(images, scale_inputs)[FEATURE_KEY]
    # Stacked batches keep their leading [K, batch] shape.
    return {FEATURE_KEY: tf.reshape(x, tf.concat(
        [tf.shape(labels), [data.PIXELS]], 0))}, labels
  return batches.map(features, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
      tf.data.AUTOTUNE)
