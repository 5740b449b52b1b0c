"""input_fn builders: shapes, dtypes, scaling, batching, shuffling."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import data
from trainer import inputs


@pytest.fixture(scope='module')
def mnist(mnist_dir):
  return data.load(mnist_dir)


def _batches(input_fn, limit=None):
  dataset = input_fn()
  if limit:
    dataset = dataset.take(limit)
  return [(f['x'].numpy(), y.numpy()) for f, y in dataset]


def test_train_batches_are_scaled_float_features(mnist):
  (x, y), = _batches(inputs.train_input_fn(mnist.train, 32, seed=1), 1)
  assert x.shape == (32, 784) and x.dtype == np.float32
  assert y.shape == (32,) and y.dtype == np.int32
  assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5


def test_noscale_keeps_raw_pixels(mnist, mnist_arrays):
  (x, _), = _batches(inputs.eval_input_fn(mnist.test, 5, scale_inputs=False),
                     1)
  np.testing.assert_array_equal(
      x, mnist_arrays['test'][0][:5].reshape(5, 784).astype(np.float32))


def test_eval_is_one_ordered_pass_with_a_partial_last_batch(mnist,
                                                            mnist_arrays):
  batches = _batches(inputs.eval_input_fn(mnist.test, 64))
  assert [len(y) for _, y in batches] == [64, 64, 64, 8]
  labels = np.concatenate([y for _, y in batches])
  np.testing.assert_array_equal(labels, mnist_arrays['test'][1])
  images = np.concatenate([x for x, _ in batches])
  np.testing.assert_allclose(
      images, mnist_arrays['test'][0].reshape(-1, 784) / 255.0, rtol=1e-6)


def test_predict_yields_features_only_in_file_order(mnist, mnist_arrays):
  features = list(inputs.predict_input_fn(mnist.test, 50)())
  assert len(features) == 4 and set(features[0]) == {'x'}
  np.testing.assert_allclose(
      features[0]['x'].numpy(),
      mnist_arrays['test'][0][:50].reshape(-1, 784) / 255.0, rtol=1e-6)


def _epoch_labels_and_rows(mnist, seed, batch_size=100):
  """Two epochs of training batches, as (labels, images) per epoch."""
  batches = _batches(
      inputs.train_input_fn(mnist.train, batch_size, seed=seed,
                            scale_inputs=False, num_epochs=2))
  x = np.concatenate([b[0] for b in batches])
  y = np.concatenate([b[1] for b in batches])
  return (y[:600], x[:600]), (y[600:], x[600:])


def test_each_epoch_is_a_permutation_of_the_split(mnist, mnist_arrays):
  (y1, x1), (y2, x2) = _epoch_labels_and_rows(mnist, seed=7)
  images, labels = mnist_arrays['train']
  flat = images.reshape(-1, 784).astype(np.float32)
  for y, x in ((y1, x1), (y2, x2)):
    np.testing.assert_array_equal(np.sort(y), np.sort(labels))
    # every row of the epoch is the file's row with the same label
    index = {row.tobytes(): label for row, label in zip(flat, labels)}
    assert all(index[row.tobytes()] == label for row, label in zip(x, y))
  assert not np.array_equal(y1, y2), 'each epoch should be reshuffled'
  assert not np.array_equal(y1, labels), 'training order should be shuffled'


def test_shuffling_is_deterministic_per_seed(mnist):
  first = _epoch_labels_and_rows(mnist, seed=3)[0][0]
  again = _epoch_labels_and_rows(mnist, seed=3)[0][0]
  other = _epoch_labels_and_rows(mnist, seed=4)[0][0]
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


def test_shards_see_different_orders(mnist):
  def first_batch(index):
    fn = inputs.train_input_fn(mnist.train, 50, seed=3, shard=(index, 2))
    return _batches(fn, 1)[0][1]
  assert not np.array_equal(first_batch(0), first_batch(1))


def test_pixels_stay_out_of_the_graph(mnist):
  """The 47 MB of pixels must not become constants in the Estimator graph."""
  with tf.Graph().as_default() as graph:
    inputs.train_input_fn(mnist.train, 32, seed=1)()
    size = graph.as_graph_def().ByteSize()
  assert size < 100_000, f'graph is {size} bytes: data leaked into it'
