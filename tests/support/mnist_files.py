"""Small MNIST-format files for tests: real IDX layout, synthetic digits.

Each class is a fixed random stroke pattern plus noise, so a model learns it
in a few dozen steps and accuracy checks mean something.
"""

import gzip
import os
import struct

import numpy as np

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def idx_bytes(array, magic):
  header = struct.pack('>I', magic) + struct.pack(
      f'>{array.ndim}I', *array.shape)
  return header + array.astype(np.uint8).tobytes()


def write_file(path, payload, compress):
  opener = gzip.open if compress else open
  with opener(path, 'wb') as f:
    f.write(payload)
  return path


def synthetic(n, seed):
  """n images (uint8 [n, 28, 28]) and labels 0-9 drawn from fixed templates."""
  templates = np.random.RandomState(1234).rand(10, 28, 28) > 0.8
  rng = np.random.RandomState(seed)
  labels = np.arange(n) % 10
  rng.shuffle(labels)
  noise = rng.randint(0, 90, size=(n, 28, 28))
  images = np.where(templates[labels], 160 + noise, noise)
  return images.astype(np.uint8), labels.astype(np.uint8)


def write_mnist(folder, n_train=600, n_test=200, compress=True, seed=0):
  """Writes the four standard files; returns the arrays written."""
  os.makedirs(folder, exist_ok=True)
  suffix = '.gz' if compress else ''
  arrays = {}
  for split, prefix, n in (('train', 'train', n_train),
                           ('test', 't10k', n_test)):
    images, labels = synthetic(n, seed + (split == 'test'))
    write_file(os.path.join(folder, f'{prefix}-images-idx3-ubyte{suffix}'),
               idx_bytes(images, IMAGES_MAGIC), compress)
    write_file(os.path.join(folder, f'{prefix}-labels-idx1-ubyte{suffix}'),
               idx_bytes(labels, LABELS_MAGIC), compress)
    arrays[split] = (images, labels)
  return arrays


TRAIN_IMAGES = 'train-images-idx3-ubyte'
TRAIN_LABELS = 'train-labels-idx1-ubyte'


def _train_images(n=600):
  return idx_bytes(synthetic(n, 0)[0], IMAGES_MAGIC)


def _train_labels(n=600):
  return idx_bytes(synthetic(n, 0)[1], LABELS_MAGIC)


def _corrupt_middle(raw):
  middle = len(raw) // 2
  return raw[:middle] + bytes(64) + raw[middle + 64:]


# Ways to break the training files of a write_mnist folder: case -> (file
# name, function from the .gz file's bytes to new bytes (None deletes the
# file), text of the message that names the problem).
BROKEN = {
    'missing file': (TRAIN_IMAGES, None, f'{TRAIN_IMAGES}[.gz] not found'),
    'empty file': (TRAIN_IMAGES, lambda _: gzip.compress(b''), 'is empty'),
    'wrong magic': (TRAIN_IMAGES, lambda _: gzip.compress(
        b'\x00\x00\x08\x01' + _train_images()[4:]),
                    'is not an MNIST image file: magic number 00000801'),
    'labels file where images belong': (
        TRAIN_IMAGES, lambda _: gzip.compress(_train_labels()),
        'is not an MNIST image file'),
    'truncated header': (TRAIN_IMAGES, lambda _: gzip.compress(
        _train_images()[:10]), 'truncated inside its header'),
    'truncated records': (TRAIN_IMAGES, lambda _: gzip.compress(
        _train_images()[:-100]), 'is truncated: its header promises 600 '
                          'records'),
    'extra bytes': (TRAIN_LABELS, lambda _: gzip.compress(
        _train_labels() + b'\x01\x02'), 'has 2 bytes after its 600 records'),
    'count mismatch': (TRAIN_LABELS, lambda _: gzip.compress(
        _train_labels(599)), 'holds 600 images but'),
    'not 28x28': (TRAIN_IMAGES, lambda _: gzip.compress(idx_bytes(
        np.zeros((600, 32, 32)), IMAGES_MAGIC)), 'holds 32x32 images'),
    'label out of range': (TRAIN_LABELS, lambda _: gzip.compress(
        _train_labels()[:20] + b'\x0c' + _train_labels()[21:]),
                           'holds label 12 at index 12; MNIST labels are 0-9'),
    'zero records': (TRAIN_LABELS, lambda _: gzip.compress(idx_bytes(
        np.zeros((0,)), LABELS_MAGIC)), 'holds no records'),
    'corrupt gzip': (TRAIN_IMAGES, _corrupt_middle,
                     'is not a readable gzip file'),
    'not gzip despite suffix': (TRAIN_LABELS, lambda _: _train_labels(),
                                'is not a readable gzip file'),
}


def break_mnist(folder, case):
  """Breaks one file of a write_mnist folder (gzip) as BROKEN[case] says."""
  name, change, message = BROKEN[case]
  path = os.path.join(folder, name + '.gz')
  if change is None:
    os.remove(path)
  else:
    with open(path, 'rb') as f:
      raw = f.read()
    with open(path, 'wb') as f:
      f.write(change(raw))
  return message
