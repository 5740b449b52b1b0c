"""Locating, validating and downloading the MNIST files."""

import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
import threading

import pytest

from tests.support import mnist_files
from trainer import data

TRAIN_LABELS = mnist_files.TRAIN_LABELS


def test_load_reads_counts_and_layout(mnist_dir):
  mnist = data.load(mnist_dir)
  assert (mnist.train.size, mnist.test.size) == (600, 200)
  assert mnist.train.images.header_bytes == 16
  assert mnist.train.images.record_bytes == 784
  assert mnist.train.labels.header_bytes == 8
  assert mnist.train.labels.compression == 'GZIP'


def test_uncompressed_files_work(tmp_path):
  mnist_files.write_mnist(str(tmp_path), n_train=30, n_test=10,
                          compress=False)
  mnist = data.load(str(tmp_path))
  assert mnist.test.images.compression == ''
  assert mnist.test.size == 10


@pytest.fixture
def broken_dir(tmp_path, mnist_dir):
  """A writable copy of the small data set, for a test to break one file."""
  folder = tmp_path / 'mnist'
  shutil.copytree(mnist_dir, folder)
  return folder


@pytest.mark.parametrize('case', sorted(mnist_files.BROKEN))
def test_each_bad_file_gets_its_own_message(broken_dir, case):
  message = mnist_files.break_mnist(str(broken_dir), case)
  with pytest.raises(data.DataError, match=re.escape(message)):
    data.load(str(broken_dir))


def test_missing_data_dir_names_the_flag(tmp_path):
  with pytest.raises(data.DataError, match='does not exist.*--data-dir'):
    data.load(str(tmp_path / 'nowhere'))


def test_resolve_prefers_flag_then_environment(monkeypatch, tmp_path):
  monkeypatch.setenv('MNIST_DATA_DIR', '/from/env')
  assert data.resolve_data_dir('/from/flag') == '/from/flag'
  assert data.resolve_data_dir(None) == '/from/env'


@pytest.fixture
def mirror(tmp_path, mnist_dir):
  """An HTTP server on 127.0.0.1 serving the small files, like a mirror."""
  served = tmp_path / 'served'
  shutil.copytree(mnist_dir, served)
  handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                              directory=str(served))
  handler.log_message = lambda *args: None
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  checksums = {}
  for gz in served.iterdir():
    with gzip.open(gz, 'rb') as f:
      checksums[gz.name[:-3]] = hashlib.sha256(f.read()).hexdigest()
  yield f'http://127.0.0.1:{server.server_port}/', checksums, server
  server.shutdown()
  server.server_close()


def test_download_verifies_then_reuses_cache(tmp_path, mirror):
  url, checksums, server = mirror
  cache = tmp_path / 'cache'
  folder = data.download(str(cache), mirrors=(url,), checksums=checksums)
  assert data.load(folder).train.size == 600
  server.shutdown()  # offline from now on: the cache must be enough
  server.server_close()
  assert data.download(str(cache), mirrors=(url,),
                       checksums=checksums) == folder
  assert sorted(os.listdir(cache)) == sorted(
      name + '.gz' for name in checksums)


def test_download_rejects_wrong_checksum_and_keeps_nothing(tmp_path, mirror):
  url, checksums, _ = mirror
  wrong = dict(checksums, **{TRAIN_LABELS: '0' * 64})
  with pytest.raises(data.DataError, match='checksum .* does not match'):
    data.download(str(tmp_path / 'cache'), mirrors=(url,), checksums=wrong)
  assert TRAIN_LABELS + '.gz' not in os.listdir(tmp_path / 'cache')
  assert not [n for n in os.listdir(tmp_path / 'cache')
              if n.endswith('.part')]


def test_download_offline_names_data_dir(tmp_path, mirror):
  _, checksums, _ = mirror
  dead = 'http://127.0.0.1:9/'  # discard port: nothing listens
  with pytest.raises(data.DataError, match='could not download.*--data-dir'):
    data.download(str(tmp_path / 'cache'), mirrors=(dead,),
                  checksums=checksums, timeout=5)
