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
