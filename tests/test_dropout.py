"""trainer.dropout: masks from a few random bits keep the rate they promise."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import dropout

SEED = tf.constant([7, 3], tf.int64)


@pytest.mark.parametrize('rate, bits, realized', [
    (0.3, 8, 77 / 256), (0.2, 8, 51 / 256), (0.5, 8, 0.5),
    (0.1, 16, 6554 / 65536), (0.001, 16, 66 / 65536)])
def test_resolution_gives_the_rate_to_within_one_percent_of_it(rate, bits,
                                                               realized):
  assert dropout.resolution_bits(rate) == bits
  assert dropout.realized_rate(rate) == realized
  assert abs(realized - rate) <= 0.01 * rate


@pytest.mark.parametrize('widths, rates', [
    ((784, 512, 256, 128), (0.2, 0.3, 0.3, 0.3)),
    ((7, 33, 5), (0.1, 0.0, 0.45))])  # widths no word holds exactly; 16 bits
def test_masks_drop_the_realized_rate_and_keep_the_expected_value(widths,
                                                                  rates):
  rows = 2000
  masks = dropout.masks(tf.constant(rows), widths, rates, SEED)
  assert len(masks) == len(widths)
  for mask, width, rate in zip(masks, widths, rates):
    if not rate:
      assert mask is None
      continue
    mask = mask.numpy()
    assert mask.shape == (rows, width)
    realized = dropout.realized_rate(rate)
    kept = 1 / (1 - realized)
    np.testing.assert_allclose(np.unique(mask), [0, kept], rtol=1e-6)
    dropped = (mask == 0).mean()
    # Within 4 standard deviations of a binomial share.
    assert abs(dropped - realized) < 4 * np.sqrt(
        realized * (1 - realized) / mask.size), (rate, dropped)
    assert abs(mask.mean() - 1) < 4 * kept * np.sqrt(
        realized * (1 - realized) / mask.size)


def test_masks_depend_on_the_seed_only_and_differ_between_layers():
  def draw(seed):
    return [m.numpy() for m in dropout.masks(
        tf.constant(64), (128, 128), (0.5, 0.5), tf.constant(seed, tf.int64))]
  first, second = draw([1, 2])
  np.testing.assert_array_equal(draw([1, 2])[0], first)
  assert (first != second).mean() > 0.4
  assert (draw([1, 3])[0] != first).mean() > 0.4
