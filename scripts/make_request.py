"""Writes an online-prediction request for the exported model.

From MNIST test images (--data-dir) or from PNG/JPEG files, in the format
TensorFlow Serving's REST API, Vertex AI and AI Platform take:

  --format request  one body, {"instances": [...]}: curl to TF Serving,
                    gcloud ... predict --json-request
  --format jsonl    one instance per line: gcloud ... predict --json-instances

Pixels become {"x": 28 rows of 28 ints 0-255} for `serving_default`; images
(--as png, or files) become {"image_bytes": {"b64": ...}} for
`image:serving_default`. The labels of MNIST images go to stderr.
Online prediction takes at most 1.5 MB per request (about 600 pixel
instances): a bigger request gets a warning that says how to split it.

  .venv/bin/python scripts/make_request.py --data-dir DIR -o request.json
"""

import argparse
import io
import json
import os
import sys

from trainer import cli

if __name__ == '__main__':
  cli.quiet_unless_verbose([])

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

from trainer import data
from trainer import export
from trainer.errors import InputError
from trainer.predict import readers
from trainer.predict import request

# Vertex AI and AI Platform online prediction refuse a bigger request body.
ONLINE_LIMIT_BYTES = 1_500_000
_BODY_OVERHEAD = 100  # {"instances": [...], "signature_name": ...} around them


def mnist_instances(data_dir, start, count, as_png):
  """Instances and labels of test images start..start+count-1."""
  images, labels = data.read_arrays(data.load(data_dir).test)
  if not 0 <= start < len(images):
    raise InputError(f'--start={start}: the test set holds images '
                     f'0-{len(images) - 1}')
  images, labels = images[start:start + count], labels[start:start + count]
  if not as_png:
    return [request.pixels_instance(image) for image in images], labels
  size = data.IMAGE_SIZE
  pngs = [tf.io.encode_png(image.reshape(size, size, 1)).numpy()
          for image in images]
  return [request.image_instance(png) for png in pngs], labels


def size_warning(text, instances, fmt, output):
  """A `warning: ...` line if text passes the online limit, else None.

  The fix is JSON lines split into files of as many instances as surely
  fit (the largest instance sets the count), each file one request
  (`gcloud ... predict --json-instances`).
  """
  size = len(text.encode())
  if size <= ONLINE_LIMIT_BYTES:
    return None
  largest = max(len(json.dumps(instance)) for instance in instances)
  per_file = max(1, (ONLINE_LIMIT_BYTES - _BODY_OVERHEAD) // (largest + 2))
  files = -(-len(instances) // per_file)
  if fmt == 'jsonl':
    lines, convert = output or 'instances.jsonl', ''
  else:
    lines = os.path.splitext(output)[0] + '.jsonl' if output else (
        'instances.jsonl')
    convert = f'write JSON lines (--format jsonl -o {lines}), then '
  return (f'warning: {output or "stdout"} holds {len(instances)} instances, '
          f'{size / 1e6:.1f} MB; online prediction takes at most 1.5 MB per '
          f'request: {convert}split them into {files} requests of at most '
          f'{per_file}: split -l {per_file} {lines} part-')


def parse_args(argv):
  parser = cli.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=__doc__.split('\n\n', 1)[1])
  parser.add_argument('images', nargs='*', metavar='IMAGE',
                      help='PNG/JPEG files (white digit on black)')
  cli.add_data_dir(parser, 'take MNIST test images from this folder')
  parser.add_argument('--start', type=int, default=0,
                      help='first test image (default 0)')
  parser.add_argument('--count', type=int, default=5,
                      help='number of test images (default 5)')
  parser.add_argument('--as', dest='as_', choices=('pixels', 'png'),
                      default='pixels',
                      help='send test images as pixels (serving_default) or '
                      'as PNG bytes (image:serving_default)')
  parser.add_argument('--format', choices=('request', 'jsonl'),
                      default='request')
  parser.add_argument('-o', '--output', help='file to write (default stdout)')
  args = parser.parse_args(argv)
  if bool(args.images) == bool(args.data_dir):
    parser.error('give either image files or --data-dir')
  if args.count < 1:
    parser.error(f'--count={args.count} must be 1 or more')
  return args


def main(argv=None):
  args = parse_args(argv)
  with cli.one_line_errors():
    if args.data_dir:
      instances, labels = mnist_instances(args.data_dir, args.start,
                                          args.count, args.as_ == 'png')
      print('labels: ' + ' '.join(map(str, labels)), file=sys.stderr)
    else:
      instances = [request.image_instance(readers.read_image(path))
                   for path in args.images]
  images = bool(args.images) or args.as_ == 'png'
  signature = export.IMAGE_SIGNATURE if images else export.DEFAULT_SIGNATURE
  print(f'signature: {signature}', file=sys.stderr)
  text = io.StringIO()
  request.write_instances(instances, text, args.format, signature)
  warning = size_warning(text.getvalue(), instances, args.format,
                         args.output)
  if warning:
    print(warning, file=sys.stderr)
  if args.output:
    with tf.io.gfile.GFile(args.output, 'w') as out:
      out.write(text.getvalue())
  else:
    sys.stdout.write(text.getvalue())


if __name__ == '__main__':
  main()
