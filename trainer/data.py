"""Find, validate and (when no folder is given) download the MNIST IDX files.

Everything goes through `tf.io.gfile`, so a data dir may be a local folder or
`gs://bucket/prefix`. Validation streams each file once, so a bad file fails
before training with a message that names the file and the problem, instead
of failing minutes later inside a `tf.data` pipeline.
"""

import dataclasses
import gzip
import hashlib
import os
import struct
import tempfile
import urllib.request
import zlib

import numpy as np
import tensorflow as tf

from trainer import cloud
from trainer.errors import DataError  # also data.DataError, as before

IMAGE_SIZE = 28
PIXELS = IMAGE_SIZE * IMAGE_SIZE
NUM_CLASSES = 10

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_CHUNK = 1 << 20

FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}

# Where the standard files can be downloaded, tried in order.
MIRRORS = (
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
)

# SHA-256 of the *decompressed* files: mirrors re-wrap the gzip, the payload is
# what must match.
CHECKSUMS = {
    'train-images-idx3-ubyte':
        'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
    'train-labels-idx1-ubyte':
        '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
    't10k-images-idx3-ubyte':
        '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
    't10k-labels-idx1-ubyte':
        'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
}

_FIX = ('pass --data-dir a folder (or gs://bucket/prefix) holding the four '
        'MNIST files, or set MNIST_DATA_DIR')


_READ_FIX = ('give your user read access to it, or pass --data-dir a folder '
             'you can read')


@dataclasses.dataclass(frozen=True)
class IdxFile:
  """One validated IDX file, described well enough for a tf.data reader."""
  path: str
  count: int
  header_bytes: int
  record_bytes: int

  @property
  def compression(self):
    return 'GZIP' if self.path.endswith('.gz') else ''


@dataclasses.dataclass(frozen=True)
class Split:
  images: IdxFile
  labels: IdxFile

  @property
  def size(self):
    return self.images.count


@dataclasses.dataclass(frozen=True)
class Mnist:
  train: Split
  test: Split


def load(data_dir):
  """Locates and validates the train and test splits under `data_dir`."""
  cloud.check_readable(data_dir, '--data-dir', 'the four MNIST files')
  if not tf.io.gfile.isdir(data_dir):
    raise DataError(f'data dir {data_dir} does not exist or is not a folder; '
                    f'{_FIX}')
  try:
    tf.io.gfile.listdir(data_dir)  # else a folder we may not read looks empty
  except tf.errors.PermissionDeniedError:
    raise DataError(f'data dir {data_dir}: permission denied; {_READ_FIX}'
                    ) from None
  return Mnist(**{split: _load_split(data_dir, *names)
                  for split, names in FILES.items()})


def _load_split(data_dir, images_name, labels_name):
  images = read_idx(_find(data_dir, images_name), _IMAGES_MAGIC)
  labels = read_idx(_find(data_dir, labels_name), _LABELS_MAGIC)
  if images.count != labels.count:
    raise DataError(f'{images.path} holds {images.count} images but '
                    f'{labels.path} holds {labels.count} labels; the two files '
                    'must come from the same split')
  return Split(images, labels)


def _find(data_dir, name):
  for candidate in (name, name + '.gz'):
    path = os.path.join(data_dir, candidate)
    if tf.io.gfile.exists(path):
      return path
  raise DataError(f'{name}[.gz] not found in {data_dir}; {_FIX}')


def read_idx(path, magic):
  """Validates one IDX file end to end and returns how to read its records."""
  try:
    with _open(path) as f:
      header = _read_header(f, path, magic)
      count, dims = header[0], header[1:]
      record_bytes = int(np.prod(dims, dtype=np.int64)) if dims else 1
      _check_payload(f, path, count, record_bytes, check_labels=not dims)
  except tf.errors.PermissionDeniedError:
    raise DataError(f'{path}: permission denied; {_READ_FIX}') from None
  except tf.errors.OpError as e:
    raise DataError(f'{path} could not be read ({e.message}); {_FIX}') from e
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f'{path} is not a readable gzip file ({e}); download or '
                    'stage it again') from e
  return IdxFile(path, count, 4 * len(header) + 4, record_bytes)


def _open(path):
  raw = tf.io.gfile.GFile(path, 'rb')
  return gzip.GzipFile(fileobj=raw, mode='rb') if path.endswith('.gz') else raw


def _read_header(f, path, magic):
  """Returns (count, *dims) after checking the magic number and dimensions."""
  head = f.read(4)
  if not head:
    raise DataError(f'{path} is empty; download or stage it again')
  kind = 'image' if magic == _IMAGES_MAGIC else 'label'
  if len(head) < 4 or struct.unpack('>I', head)[0] != magic:
    found = head.hex() if len(head) == 4 else 'too short'
    raise DataError(f'{path} is not an MNIST {kind} file: magic number '
                    f'{found}, expected {magic:08x}; check that the file names '
                    'match their contents')
  ndims = magic & 0xFF
  raw = f.read(4 * ndims)
  if len(raw) < 4 * ndims:
    raise DataError(f'{path} is truncated inside its header; download or '
                    'stage it again')
  header = struct.unpack(f'>{ndims}I', raw)
  if header[1:] not in ((), (IMAGE_SIZE, IMAGE_SIZE)):
    rows, cols = header[1:]
    raise DataError(f'{path} holds {rows}x{cols} images; this trainer expects '
                    f'MNIST\'s {IMAGE_SIZE}x{IMAGE_SIZE}')
  if header[0] == 0:
    raise DataError(f'{path} holds no records; download or stage it again')
  return header


def _check_payload(f, path, count, record_bytes, check_labels):
  """Reads the records once: catches truncation, extra bytes, bad labels."""
  expected = count * record_bytes
  seen = 0
  while True:
    chunk = f.read(_CHUNK)
    if not chunk:
      break
    if check_labels:
      values = np.frombuffer(chunk, np.uint8)
      bad = np.flatnonzero(values >= NUM_CLASSES)
      if bad.size:
        raise DataError(f'{path} holds label {values[bad[0]]} at index '
                        f'{seen + bad[0]}; MNIST labels are 0-9')
    seen += len(chunk)
  if seen < expected:
    raise DataError(f'{path} is truncated: its header promises {count} '
                    f'records ({expected} bytes) but only {seen} bytes follow; '
                    'download or stage it again')
  if seen > expected:
    raise DataError(f'{path} has {seen - expected} bytes after its {count} '
                    'records; check that it is an unmodified MNIST file')


def read_arrays(split):
  """(uint8 images [n, 784], uint8 labels [n]) of a validated split.

  For small in-memory uses (benchmarks, prediction); training reads the files
  with tf.data instead, so the pixels never enter a graph.
  """
  arrays = []
  for idx in (split.images, split.labels):
    with _open(idx.path) as f:
      payload = f.read()[idx.header_bytes:]
    arrays.append(np.frombuffer(payload, np.uint8).reshape(idx.count, -1))
  return arrays[0], arrays[1].ravel()


def resolve_data_dir(data_dir=None):
  """The folder to read: the flag, else MNIST_DATA_DIR, else a download cache."""
  return data_dir or os.environ.get('MNIST_DATA_DIR') or download()


def default_cache_dir():
  base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return os.path.join(base, 'mnist-estimator-trainer', 'mnist')


def download(cache_dir=None, mirrors=MIRRORS, checksums=None, timeout=60):
  """Downloads the four files once into `cache_dir`; later calls reuse them.

  A file reaches its final name only after its checksum matched, so whatever
  sits in the cache under the standard name is complete and verified.
  """
  cache_dir = cache_dir or default_cache_dir()
  checksums = checksums or CHECKSUMS
  os.makedirs(cache_dir, exist_ok=True)
  for name, sha256 in checksums.items():
    target = os.path.join(cache_dir, name + '.gz')
    if not os.path.exists(target):
      _fetch_verified(name, sha256, target, mirrors, timeout)
  return cache_dir


def _fetch_verified(name, sha256, target, mirrors, timeout):
  errors = []
  for mirror in mirrors:
    url = mirror + name + '.gz'
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), suffix='.part')
    try:
      with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(
          url, timeout=timeout) as response:
        while chunk := response.read(_CHUNK):
          out.write(chunk)
      digest = _sha256_of_payload(tmp)
      if digest == sha256:
        os.replace(tmp, target)
        return
      errors.append(f'{url}: checksum {digest[:12]}... does not match')
    except (OSError, EOFError, zlib.error) as e:
      errors.append(f'{url}: {getattr(e, "reason", e)}')
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
  raise DataError(f'could not download MNIST file {name} '
                  f'({"; ".join(errors)}); {_FIX}')


def _sha256_of_payload(path):
  digest = hashlib.sha256()
  with gzip.open(path, 'rb') as f:
    while chunk := f.read(_CHUNK):
      digest.update(chunk)
  return digest.hexdigest()
