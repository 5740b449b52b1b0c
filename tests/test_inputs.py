"""input_fn builders: shapes, dtypes, scaling, batching, shuffling."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import data
from trainer import dropout
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


def _stream(mnist, batch_size, steps_per_run=1, **kwargs):
  """Two epochs of training features and labels, flattened to examples."""
  batches = _batches(inputs.train_input_fn(
      mnist.train, batch_size, seed=5, num_epochs=2,
      steps_per_run=steps_per_run, **kwargs))
  x = np.concatenate([b[0].reshape(-1, 784) for b in batches])
  y = np.concatenate([b[1].reshape(-1) for b in batches])
  real = y != inputs.PAD_LABEL
  return x[real], y[real]


def test_input_dropout_drops_pixels_by_their_place_in_the_order(mnist):
  """Pixels are dropped at the rate's realized share and the kept ones
  scaled; an example's mask depends on its place in the epochs' order, not
  on the batch size or --steps-per-run, and differs between epochs."""
  clean, labels = _stream(mnist, 64)
  dropped, again = _stream(mnist, 64, input_dropout=0.2)
  np.testing.assert_array_equal(labels, again)
  lit = clean > 0
  share = (dropped[lit] == 0).mean()
  realized = dropout.realized_rate(0.2)
  assert abs(share - realized) < 4 * np.sqrt(realized * (1 - realized) /
                                             lit.sum())
  kept = dropped != 0
  np.testing.assert_allclose(dropped[kept],
                             clean[kept] * dropout.keep_scale(0.2), rtol=1e-6)
  for batch_size, k in ((100, 1), (64, 3), (37, 4)):
    np.testing.assert_array_equal(
        _stream(mnist, batch_size, k, input_dropout=0.2)[0], dropped)
  # Each example's two epochs (600 examples each) drop other pixels.
  where = {row.tobytes(): i for i, row in enumerate(clean[:600])}
  again = [where[row.tobytes()] for row in clean[600:]]
  masks = dropped == 0
  differ = (masks[600:] != masks[again])[lit[600:]].mean()
  assert abs(differ - 2 * realized * (1 - realized)) < 0.03
