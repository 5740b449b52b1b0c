"""mnist_like: the thresholds hold on the real data and its inverse."""

import numpy as np

from trainer import data
from trainer.predict import mnist_like


def test_no_real_digit_warns_and_every_inverted_one_does(real_mnist_dir):
  mnist = data.load(real_mnist_dir)
  for split in (mnist.train, mnist.test):
    images = data.read_arrays(split)[0].reshape(-1, 28, 28)
    assert not [i for i, image in enumerate(images)
                if mnist_like.problem(f'{i}', image)]
    inverted = [mnist_like.problem(f'{i}', 255 - image) for i, image in
                enumerate(images)]
    assert all('invert it: 255 - pixels' in line for line in inverted)


def test_the_border_scales_with_the_image():
  """A 56x56 photo's frame is 4 pixels: a light frame there is a background."""
  image = np.zeros((56, 56), np.uint8)
  image[:4] = image[-4:] = image[:, :4] = image[:, -4:] = 255
  assert mnist_like.border_mean(image) == 255
  image[3] = 0
  assert mnist_like.border_mean(image) == 255 * (1 - 56 / (56 * 56 - 48 * 48))


def test_faint_and_small_digits_count_as_blank(mnist_arrays):
  digit = mnist_arrays['test'][0][0]
  faint = (digit // 3).astype(np.uint8)  # strokes under 90: no contrast
  assert 'is almost blank' in mnist_like.problem('faint', faint)
  dot = np.zeros((28, 28), np.uint8)
  dot[14, 14:20] = 255  # 6 of 784 pixels: under 1%
  assert 'is almost blank (0.8% of pixels' in mnist_like.problem('dot', dot)
  dot[15, 14:20] = 255
  assert mnist_like.problem('dot', dot) is None
