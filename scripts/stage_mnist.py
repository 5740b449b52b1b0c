#!/usr/bin/env python3
"""Copies the four MNIST files into gs://bucket/prefix for cloud jobs.

Usage: scripts/stage_mnist.py [--data-dir DIR] gs://BUCKET/PREFIX

The files come from --data-dir, else $MNIST_DATA_DIR, else a one-time
download (as the trainer finds them), and are validated before anything is
uploaded. A file already in the bucket with the same MD5 is skipped, so a
rerun uploads only what changed. Then train with --data-dir gs://BUCKET/PREFIX.
Honours STORAGE_EMULATOR_HOST.
"""

import argparse
import base64
import hashlib
import os

from trainer import cli

if __name__ == '__main__':
  cli.quiet_unless_verbose([])

# pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import cloud
from trainer import data
from trainer.errors import UsageError


def _md5(path):
  digest = hashlib.md5()
  with open(path, 'rb') as f:
    while chunk := f.read(1 << 20):
      digest.update(chunk)
  return base64.b64encode(digest.digest()).decode()


def local_files(data_dir):
  """Paths of the four validated MNIST files under data_dir."""
  mnist = data.load(data_dir)
  return [idx.path for split in (mnist.train, mnist.test)
          for idx in (split.images, split.labels)]


def stage(paths, destination):
  """Uploads each path into destination unless an identical copy is there."""
  bucket_name, _, prefix = destination[len('gs://'):].partition('/')
  bucket = cloud.storage_api()[0].Client().bucket(bucket_name)
  for path in paths:
    name = os.path.join(prefix, os.path.basename(path))
    url = f'gs://{bucket_name}/{name}'
    blob = bucket.get_blob(name)
    if blob is not None and blob.md5_hash == _md5(path):
      print(f'skipped  {url} (same MD5)')
      continue
    bucket.blob(name).upload_from_filename(path, checksum='md5')
    print(f'uploaded {url} ({os.path.getsize(path):,} bytes)')


def main(argv=None):
  parser = cli.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('destination', help='gs://BUCKET/PREFIX')
  cli.add_data_dir(parser, 'local folder with the four files (default: '
                   '$MNIST_DATA_DIR, else a one-time download)')
  args = parser.parse_args(argv)
  with cli.one_line_errors():
    if not args.destination.startswith('gs://') or len(
        args.destination) <= len('gs://'):
      raise UsageError(f'{args.destination} is not a gs://BUCKET/PREFIX '
                       'path; give one, e.g. gs://my-bucket/mnist')
    paths = local_files(data.resolve_data_dir(args.data_dir))
    cloud.check_bucket(args.destination, flag='destination')
    stage(paths, args.destination)
  print(f'train with --data-dir {args.destination.rstrip("/")}')


if __name__ == '__main__':
  main()
