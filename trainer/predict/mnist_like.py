"""Does an input look like an MNIST digit? A warning line for those that do not.

A model answers every input with a confident-looking probability, even a
photo of a dark digit on white paper or an empty canvas. These two tests
catch those before a user trusts the answer. Their thresholds come from the
70,000 real MNIST images (train and test):

- Background: the mean of the border frame (the outer 2 rows and columns of
  a 28x28 image, 208 of its 784 pixels; 1/14 of each side for other sizes).
  MNIST's is 0 for the median image, 6.3 at the 99.9th percentile and 10.2
  at most; after `255 - pixels` it is at least 244.8. A border mean above
  128, halfway, means a light background: the digit needs inverting.
- Ink: the share of pixels that differ from that background by more than
  127. MNIST's digits cover 1.9% (15 pixels) to 40% of the image. Under 1%,
  about half the faintest real digit, the image is almost blank (or so faint
  that the model sees nothing).
"""

import numpy as np

BORDER_FRACTION = 2 / 28
LIGHT_BORDER = 128
MIN_INK = 0.01
INK_CONTRAST = 127
MAX_WARNINGS = 10


def border_mean(image):
  """Mean of the outer frame: 2 pixels of a 28x28 image, 1/14 of a side."""
  image = np.asarray(image, np.float64)
  width = max(1, round(min(image.shape) * BORDER_FRACTION))
  inner = image[width:-width, width:-width]
  return (image.sum() - inner.sum()) / (image.size - inner.size)


def ink_fraction(image, background):
  image = np.asarray(image, np.float64)
  return float((np.abs(image - background) > INK_CONTRAST).mean())


def problem(name, image):
  """The warning (without `warning: `) for one 2-D image, or None."""
  background = border_mean(image)
  ink = ink_fraction(image, background)
  if ink < MIN_INK:
    return (f'{name} is almost blank ({ink:.1%} of pixels stand out from '
            'the background; MNIST digits: 2-40%); give one digit drawn '
            'large and thick, white (255) on black (0), filling the middle '
            '20x20 of 28x28')
  if background > LIGHT_BORDER:
    return (f'{name} has a light background (border mean {background:.0f} '
            'of 255; MNIST\'s is under 11): the model expects a white digit '
            'on black; invert it: 255 - pixels')
  return None


def warnings(named_images, limit=MAX_WARNINGS):
  """`warning: ...` lines for the (name, 2-D image) pairs that fail a test.

  At most `limit` of them, then one line that counts the rest, so that an
  array of thousands of inverted images does not bury the output.
  """
  found = [line for line in (problem(name, image)
                             for name, image in named_images) if line]
  lines = [f'warning: {line}' for line in found[:limit]]
  if len(found) > limit:
    lines.append(f'warning: {len(found) - limit} more inputs do not look '
                 f'like MNIST digits (first {limit} shown)')
  return lines
