"""Input files and the test set, as batches for the export's signatures.

Each input goes to the signature a server would use for it: images to the
bytes signature, uint8 pixels to the uint8 one, other numbers to float32,
so what prediction prints is what a server returns.
"""

import dataclasses
import io
import itertools
from typing import List, Optional

import numpy as np
import tensorflow as tf

from trainer import data
from trainer import export
from trainer.errors import InputError
from trainer.predict import mnist_like
from trainer.predict import request

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
NPY_SUFFIXES = ('.npy',)
JSON_SUFFIXES = ('.json', '.jsonl')


@dataclasses.dataclass
class Batch:
  """What one signature gets: a name per row, its input, labels if known."""
  names: List[str]
  signature: str
  values: np.ndarray
  labels: Optional[np.ndarray] = None


def _read_bytes(path):
  if not tf.io.gfile.exists(path):
    raise InputError(f'input {path} does not exist')
  with tf.io.gfile.GFile(path, 'rb') as f:
    return f.read()


def check_image(content, source):
  """Raises unless TF's decoder, the one the export runs, reads the image."""
  try:
    decoded(content)
  except tf.errors.InvalidArgumentError:
    raise InputError(f'{source} is not a PNG or JPEG image') from None
  return content


def read_image(path):
  return check_image(_read_bytes(path), path)


def decoded(content):
  """The image as TensorFlow decodes it: grayscale, at its own size."""
  return tf.io.decode_image(content, channels=1,
                            expand_animations=False).numpy()[:, :, 0]


def images_batch(names, contents):
  return Batch(list(names), export.IMAGE_SIGNATURE,
               np.array(contents, dtype=object))


def check_pixels(array, source):
  """The array as a batch of 0-255 pixels, or an InputError saying why not."""
  if array.dtype.kind not in 'uif':
    raise InputError(f'{source} holds {array.dtype} values; pixels must be '
                     'numbers from 0 to 255')
  if array.shape in ((data.PIXELS,), (data.IMAGE_SIZE, data.IMAGE_SIZE)):
    array = array[np.newaxis]
  if array.shape[1:] not in ((data.PIXELS,),
                             (data.IMAGE_SIZE, data.IMAGE_SIZE)):
    raise InputError(
        f'{source} has shape {list(array.shape)}; give images as [n, '
        f'{data.PIXELS}] or [n, {data.IMAGE_SIZE}, {data.IMAGE_SIZE}] '
        'pixels (or one image)')
  if not array.size:
    raise InputError(f'{source} holds no images')
  if not np.isfinite(array).all():
    raise InputError(f'{source} holds NaN or infinite values; pixels must '
                     'be 0-255')
  low, high = array.min(), array.max()
  if low < 0 or high > 255:
    raise InputError(f'{source} holds values from {low} to {high}; pixels '
                     'must be 0-255')
  if array.dtype.kind == 'f' and 0 < high <= 1:
    raise InputError(f'{source} holds values in [0, 1]; the model takes raw '
                     '0-255 pixels and scales them itself: multiply by 255')
  return array


def pixels_batch(array, source, labels=None):
  """uint8 pixels go to the uint8 signature, any other numbers to float32."""
  array = check_pixels(array, source)
  names = [f'{source}[{i}]' for i in range(len(array))]
  if array.dtype == np.uint8:
    return Batch(names, export.UINT8_SIGNATURE, array, labels)
  return Batch(names, export.DEFAULT_SIGNATURE, array.astype(np.float32),
               labels)


def npy_batch(path):
  try:
    array = np.load(io.BytesIO(_read_bytes(path)), allow_pickle=False)
  except (ValueError, OSError) as e:
    raise InputError(f'{path} is not a NumPy .npy array ({e})') from None
  return pixels_batch(array, path)


def instances_batch(path):
  text = _read_bytes(path).decode('utf-8', errors='replace')
  parsed = [request.parse_instance(instance, path)
            for instance in request.read_instances(text, path)]
  kinds = {kind for kind, _ in parsed}
  if not parsed:
    raise InputError(f'{path} holds no instances')
  if len(kinds) > 1:
    raise InputError(f'{path} mixes pixel and image instances; a request '
                     'goes to one signature, so give one kind per file')
  values = [value for _, value in parsed]
  if kinds == {'image'}:
    names = [f'{path}[{i}]' for i in range(len(values))]
    return images_batch(names, [check_image(v, n)
                                for n, v in zip(names, values)])
  try:
    array = np.array(values, dtype=np.float64)
  except (TypeError, ValueError):
    raise InputError(f'{path} holds instances of different shapes or with '
                     'values that are not numbers') from None
  return pixels_batch(array, path)


def test_set_batch(data_dir):
  """The MNIST test split of `data_dir`, with its labels."""
  images, labels = data.read_arrays(data.load(data_dir).test)
  return pixels_batch(images, 'test', labels)


def input_warnings(batches):
  """`warning: ...` lines for inputs unlike MNIST digits (mnist_like.py).

  Checks what the user gave, not the labelled test set.
  """
  named = []
  for batch in batches:
    if batch.labels is not None:
      continue
    if batch.signature == export.IMAGE_SIGNATURE:
      images = map(decoded, batch.values)
    else:
      images = batch.values.reshape(-1, data.IMAGE_SIZE, data.IMAGE_SIZE)
    named.extend(zip(batch.names, images))
  return mnist_like.warnings(named)


def _kind(path):
  lower = path.lower()
  for kind, suffixes in (('image', IMAGE_SUFFIXES), ('npy', NPY_SUFFIXES),
                         ('json', JSON_SUFFIXES)):
    if lower.endswith(suffixes):
      return kind
  raise InputError(f'input {path}: give .png/.jpg/.jpeg images, a .npy '
                   'array or a .json/.jsonl file of instances')


def read_inputs(paths, data_dir=None):
  """Batches in the order given; neighbouring image files share one batch."""
  batches = []
  for kind, group in itertools.groupby(paths, _kind):
    group = list(group)
    if kind == 'image':
      batches.append(images_batch(group, [read_image(p) for p in group]))
    else:
      reader = npy_batch if kind == 'npy' else instances_batch
      batches.extend(reader(path) for path in group)
  if data_dir:
    batches.append(test_set_batch(data_dir))
  return batches
