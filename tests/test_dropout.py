"""trainer.dropout: masks from a few random bits keep the rate they promise,
are independent between layers, steps and rows, and depend only on (seed,
layer, row), never on how many steps one draw covers."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import dropout

SEED = 7
WIDTHS = (512, 256, 128)
RATES = (0.3, 0.3, 0.3)


def _step_masks(steps, rows, step=0, widths=WIDTHS, rates=RATES, seed=SEED,
                batch_rows=None):
  return [None if m is None else m.numpy() for m in dropout.step_masks(
      steps, rows, widths, rates, seed, tf.constant(step, tf.int64),
      batch_rows or rows)]


@pytest.mark.parametrize('rate, bits, realized', [
    (0.3, 8, 77 / 256), (0.2, 8, 51 / 256), (0.5, 8, 0.5),
    (0.1, 16, 6554 / 65536), (0.001, 16, 66 / 65536)])
def test_resolution_gives_the_rate_to_within_one_percent_of_it(rate, bits,
                                                               realized):
  assert dropout.resolution_bits(rate) == bits
  assert dropout.realized_rate(rate) == realized
  assert abs(realized - rate) <= 0.01 * rate


@pytest.mark.parametrize('rate', [0.3, 0.2, 0.1, 0.001])
def test_a_unit_is_dropped_exactly_when_its_value_is_below_the_threshold(
    rate):
  bits, t = dropout.threshold(rate)
  values = np.arange(2**bits, dtype={8: np.uint8, 16: np.uint16}[bits])
  mask = dropout.mask(tf.constant(values), rate).numpy()
  np.testing.assert_array_equal(mask == 0, values < t)
  np.testing.assert_allclose(mask[values >= t], dropout.keep_scale(rate),
                             rtol=1e-7)


@pytest.mark.parametrize('widths, rates', [
    ((512, 256, 128), (0.3, 0.3, 0.3)),
    ((7, 33, 5), (0.1, 0.0, 0.45))])  # widths no word holds exactly; 16 bits
def test_masks_drop_the_realized_rate_and_keep_the_expected_value(widths,
                                                                  rates):
  steps, rows = 3, 700
  masks = _step_masks(steps, rows, widths=widths, rates=rates)
  assert len(masks) == len(widths)
  for mask, width, rate in zip(masks, widths, rates):
    if not rate:
      assert mask is None
      continue
    assert mask.shape == (steps, rows, width)
    realized = dropout.realized_rate(rate)
    kept = 1 / (1 - realized)
    np.testing.assert_allclose(np.unique(mask), [0, kept], rtol=1e-6)
    dropped = (mask == 0).mean()
    # Within 4 standard deviations of a binomial share.
    sd = np.sqrt(realized * (1 - realized) / mask.size)
    assert abs(dropped - realized) < 4 * sd, (rate, dropped)
    assert abs(mask.mean() - 1) < 4 * kept * sd


def _correlation(a, b):
  return np.corrcoef((a == 0).ravel(), (b == 0).ravel())[0, 1]


def test_masks_are_uncorrelated_between_layers_steps_rows_and_units():
  """Pairs that share a layer, step or row index are not alike: for 16,384
  independent pairs a correlation's sd is 1/128; 5 sd is 0.04."""
  first, second, _ = _step_masks(2, 128, widths=(128, 128, 128))
  bound = 5 / np.sqrt(first[0].size)
  assert abs(_correlation(first[0], second[0])) < bound  # layers
  assert abs(_correlation(first[0], first[1])) < bound  # steps
  assert abs(_correlation(first[0][:64], first[0][64:])) < bound  # rows
  assert abs(_correlation(first[0][:, :64], first[0][:, 64:])) < bound  # units
  later, = _step_masks(1, 128, step=10**6, widths=(128,), rates=(0.3,))
  assert abs(_correlation(first[0], later[0])) < bound


def test_a_steps_masks_do_not_depend_on_the_draw_that_made_them():
  """K steps in one draw give each step the masks it gets alone (any
  --steps-per-run), and a partial batch gets the first rows of a full one's;
  another seed gives other masks."""
  together = _step_masks(4, 32, step=10)
  for i in range(4):
    alone = _step_masks(1, 32, step=10 + i)
    for layer, mask in zip(together, alone):
      np.testing.assert_array_equal(layer[i], mask[0])
  partial = _step_masks(1, 5, step=12, batch_rows=32)
  for layer, mask in zip(together, partial):
    np.testing.assert_array_equal(layer[2, :5], mask[0])
  other = _step_masks(4, 32, step=10, seed=SEED + 1)
  assert (other[0] != together[0]).mean() > 0.3


def test_random_values_are_rows_of_one_stream():
  """Any run of rows, from any first row, is the same rows of the stream."""
  def rows(first, count):
    return dropout.random_values(SEED, 0, tf.constant(first, tf.int64), count,
                                 784, 8).numpy()
  np.testing.assert_array_equal(rows(100, 50)[7:], rows(107, 43))
  assert rows(0, 1).dtype == np.uint8
  values = rows(0, 2000)
  counts = np.bincount(values.ravel(), minlength=256)
  expected = values.size / 256
  chi2 = ((counts - expected)**2 / expected).sum()
  assert chi2 < 255 + 6 * np.sqrt(2 * 255)  # 255 degrees of freedom, 6 sd


def test_each_replica_draws_masks_of_its_own():
  """Replicas of a synchronous job train different examples at one step:
  their masks must not repeat each other's."""
  def replica_masks(replica):
    return dropout.step_masks(1, 128, (128,), (0.3,), SEED,
                              tf.constant(3, tf.int64), 128,
                              replica=replica)[0].numpy()
  zero = replica_masks(0)
  np.testing.assert_array_equal(zero, _step_masks(1, 128, step=3,
                                                  widths=(128,),
                                                  rates=(0.3,))[0])
  assert abs(_correlation(zero, replica_masks(1))) < 5 / np.sqrt(zero.size)


def test_relu_dropped_gives_the_value_and_gradient_of_relu_times_mask():
  """Same bits as autodiff through relu(x) * mask, zeros of the relu and of
  the mask included."""
  rng = np.random.default_rng(SEED)
  x = tf.constant(rng.normal(size=(64, 128)).astype(np.float32))
  dy = tf.constant(rng.normal(size=(64, 128)).astype(np.float32))
  mask = dropout.mask(
      tf.constant(rng.integers(0, 256, (64, 128)), tf.uint8), 0.3)
  scale = dropout.keep_scale(0.3)
  results = []
  for fn in (lambda x: tf.nn.relu(x) * mask,
             lambda x: dropout.relu_dropped(x, mask, scale)):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = fn(x)
    results.append((y.numpy(), tape.gradient(y, x, dy).numpy()))
  (y, grad), (y_dropped, grad_dropped) = results
  np.testing.assert_array_equal(y_dropped, y)
  np.testing.assert_array_equal(grad_dropped, grad)
  assert 0 < np.mean(grad == 0) < 1
