"""`python -m trainer.predict`: classify digits with an exported SavedModel.

The model is a SavedModel folder or a job dir (its newest export), local or
gs://. Inputs: PNG/JPEG files, a .npy array of pixels, a JSON file of
instances (a request body or JSON lines, as sent to TensorFlow Serving or
Vertex AI), or the MNIST test set of a data dir, with accuracy; --report
draws what the model gets wrong on that test set (trainer/report.py). Each
input goes through the signature a server would use for it, so what this
prints is what a server returns. An input that does not look like an MNIST
digit gets a warning line (trainer/mnist_like.py).
"""

import base64
import dataclasses
import io
import itertools
import json
import os
import sys
from typing import List, Optional

from trainer import cli

if __name__ == '__main__':
  cli.quiet_unless_verbose([])

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf

from trainer import cloud
from trainer import config as config_lib
from trainer import data
from trainer import export
from trainer import mnist_like
from trainer import model
from trainer import report

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
NPY_SUFFIXES = ('.npy',)
JSON_SUFFIXES = ('.json', '.jsonl')
FORMATS = ('table', 'json')
_CHUNK = 1000  # images per call of the model


class InputError(ValueError):
  """A bad input or model path; the message names it and the fix."""


@dataclasses.dataclass
class Batch:
  """What one signature gets: a name per row, its input, labels if known."""
  names: List[str]
  signature: str
  values: np.ndarray
  labels: Optional[np.ndarray] = None


# --- Instances: the JSON that TF Serving, Vertex AI and gcloud take. -------

def pixels_instance(image):
  """{"x": 28 rows of 28 ints 0-255}, for `serving_default`."""
  rows = np.asarray(image).reshape(data.IMAGE_SIZE, data.IMAGE_SIZE)
  return {export.SERVING_INPUT: rows.tolist()}


def image_instance(content):
  """{"image_bytes": {"b64": ...}}: servers decode b64 for *_bytes inputs."""
  return {export.IMAGE_INPUT: {'b64': base64.b64encode(content).decode()}}


def write_instances(instances, out, fmt='request', signature=None):
  """`request`: one {"instances": [...]} body; `jsonl`: one per line."""
  if fmt == 'jsonl':
    for instance in instances:
      out.write(json.dumps(instance) + '\n')
    return
  body = {'instances': list(instances)}
  if signature and signature != export.DEFAULT_SIGNATURE:
    body['signature_name'] = signature
  out.write(json.dumps(body) + '\n')


def read_instances(text, source):
  """Instances from a request body or from JSON lines."""
  try:
    body = json.loads(text)
  except json.JSONDecodeError:
    body = None
  if isinstance(body, dict) and 'instances' in body:
    return body['instances']
  if body is not None:
    return [body]
  found = []
  for number, line in enumerate(text.splitlines(), 1):
    if line.strip():
      try:
        found.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise InputError(f'{source} line {number} is not JSON ({e.msg}); '
                         'give a {"instances": [...]} body or one instance '
                         'per line') from None
  return found


def _parse_instance(instance, source):
  """('image', bytes) or ('pixels', nested list) for one instance."""
  if isinstance(instance, dict) and set(instance) == {export.IMAGE_INPUT}:
    instance = instance[export.IMAGE_INPUT]
  if isinstance(instance, dict) and set(instance) == {'b64'}:
    try:
      return 'image', base64.b64decode(instance['b64'], validate=True)
    except (TypeError, ValueError):
      raise InputError(f'{source} holds a "b64" value that is not '
                       'base64') from None
  if isinstance(instance, dict) and set(instance) == {export.SERVING_INPUT}:
    instance = instance[export.SERVING_INPUT]
  if isinstance(instance, list):
    return 'pixels', instance
  raise InputError(
      f'{source} holds an instance that is neither pixels ([...] or '
      f'{{"{export.SERVING_INPUT}": [...]}}) nor an image '
      f'({{"{export.IMAGE_INPUT}": {{"b64": "..."}}}}): {str(instance)[:60]}')


# --- Reading inputs. --------------------------------------------------------

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
  parsed = [_parse_instance(instance, path)
            for instance in read_instances(text, path)]
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
  """`warning: ...` lines for inputs unlike MNIST digits (trainer.mnist_like).

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


# --- The model. -------------------------------------------------------------

def resolve_model(path, which='latest'):
  """A SavedModel folder as given, or a job dir's newest export/<which>."""
  cloud.check_readable(path, '--model', 'a SavedModel or a job dir')
  if tf.io.gfile.exists(os.path.join(path, 'saved_model.pb')):
    return path
  if not tf.io.gfile.isdir(path):
    if tf.io.gfile.exists(path):
      raise InputError(_file_as_model(path))
    raise InputError(f'model {path} does not exist; give a SavedModel folder '
                     'or a job dir')
  found = export.newest_export(path, which)
  if found is None:
    raise InputError(
        f'{path} holds no saved_model.pb and no {export.EXPORT_DIR}/{which}/'
        '<timestamp>/; give a SavedModel folder or the job dir of a finished '
        'run')
  return found


def _file_as_model(path):
  """What a file given as --model is, and what to give instead."""
  folder = os.path.dirname(path) or '.'
  if tf.io.gfile.exists(os.path.join(folder, 'saved_model.pb')):
    return (f'model {path} is a file inside the SavedModel folder {folder}; '
            f'give the folder: --model {folder}')
  if tf.io.gfile.isdir(os.path.join(folder, export.EXPORT_DIR)):
    return (f'model {path} is a file inside the job dir {folder}; give the '
            f'job dir: --model {folder}')
  what = (f'a {os.path.splitext(path)[1]} file (Keras), not a SavedModel'
          if path.endswith(('.h5', '.keras')) else
          f'a file ({tf.io.gfile.stat(path).length:,} bytes), not a folder')
  return (f'model {path} is {what}; give a SavedModel folder (one holding '
          'saved_model.pb) or a job dir (one holding export/)')


def load_model(path):
  """The loaded SavedModel; keep it alive while its signatures are used."""
  try:
    return tf.saved_model.load(path)
  except (OSError, ValueError, tf.errors.OpError) as e:
    raise InputError(f'could not load a SavedModel from {path}: '
                     f'{_first_line(e)}') from None


def predict(loaded, batch):
  """{output: array} for every row of the batch, in chunks of _CHUNK."""
  if batch.signature not in loaded.signatures:
    raise InputError(
        f'the model has no signature {batch.signature!r} (it has '
        f'{", ".join(sorted(loaded.signatures))}); export it again with this '
        'trainer')
  serve = loaded.signatures[batch.signature]
  (name,) = serve.structured_input_signature[1]
  outputs = {key: [] for key in model.SERVING_OUTPUTS}
  for start in range(0, len(batch.values), _CHUNK):
    chunk = tf.constant(batch.values[start:start + _CHUNK])
    try:
      got = serve(**{name: chunk})
    except tf.errors.OpError as e:
      raise InputError(f'{batch.names[start]}: the model refused the input: '
                       f'{_first_line(e)}') from None
    for key, values in outputs.items():
      values.append(got[key].numpy())
  return {key: np.concatenate(values) for key, values in outputs.items()}


def _first_line(error):
  """The line of a TensorFlow error that says what went wrong."""
  text = getattr(error, 'message', None) or str(error)
  lines = [line.strip() for line in text.splitlines()
           if line.strip() and not line.startswith((' ', '\t'))]
  noise = ('Graph execution error', 'Detected at node', '<stack traces')
  useful = [line for line in lines if not line.startswith(noise)]
  return (useful or lines or ['unknown error'])[0]


# --- Output. ----------------------------------------------------------------

def rows_of(batch, outputs):
  for i, name in enumerate(batch.names):
    row = {'input': name,
           'class_ids': int(outputs['class_ids'][i]),
           'probabilities': outputs['probabilities'][i].tolist(),
           'logits': outputs['logits'][i].tolist()}
    if batch.labels is not None:
      row['label'] = int(batch.labels[i])
    yield row


def accuracy(rows):
  """{'accuracy', 'correct', 'count'} over the rows with labels, or None."""
  labelled = [row for row in rows if 'label' in row]
  if not labelled:
    return None
  correct = sum(row['class_ids'] == row['label'] for row in labelled)
  return {'accuracy': correct / len(labelled), 'correct': correct,
          'count': len(labelled)}


def write_rows(rows, fmt, out):
  summary = accuracy(rows)
  if fmt == 'json':
    for row in rows:
      out.write(json.dumps(row) + '\n')
    if summary:
      out.write(json.dumps(summary) + '\n')
    return
  width = max([len('input')] + [len(row['input']) for row in rows])
  out.write(f'{"input":<{width}}  class  probability  label\n')
  for row in rows:
    probability = row['probabilities'][row['class_ids']]
    label = row.get('label', '-')
    out.write(f'{row["input"]:<{width}}  {row["class_ids"]:>5}  '
              f'{probability:>11.4f}  {label:>5}\n')
  if summary:
    out.write(f'accuracy {summary["accuracy"]:.4f} ({summary["correct"]}/'
              f'{summary["count"]})\n')


# --- Command line. ----------------------------------------------------------

def parse_args(argv):
  parser = cli.ArgumentParser(prog='python -m trainer.predict',
                   description=__doc__.split('\n\n')[0])
  parser.add_argument('inputs', nargs='*', metavar='INPUT',
                      help='PNG/JPEG images (white digit on black, any size: '
                      'scaled to 28x28), .npy arrays of 0-255 pixels '
                      '[n, 784] or [n, 28, 28], .json/.jsonl files of '
                      'instances')
  parser.add_argument('--model', '--model-dir', '--model_dir', required=True,
                      help='SavedModel folder, or a job dir (its newest '
                      'export); local or gs://')
  parser.add_argument('--export', choices=('latest', 'best'),
                      default='latest',
                      help='for a job dir: export/latest (the last '
                      'evaluated checkpoint, as in results.json) or '
                      'export/best')
  cli.add_data_dir(parser, 'also predict the MNIST test set in this folder '
                      'and print the accuracy; with --report, the test set '
                      'to report on (default $MNIST_DATA_DIR, else the '
                      'download cache, as for trainer.task)')
  parser.add_argument('--report', metavar='OUT',
                      help='write what the model gets wrong on the test set '
                      'into this folder: confusion.png, mistakes.png, '
                      'report.md (precision and recall per digit, also '
                      'printed), report.json')
  parser.add_argument('--format', choices=FORMATS, default='table',
                      help='a table, or JSON lines (one object per input, '
                      'then the accuracy when labels are known)')
  args = parser.parse_args(argv)
  if not args.inputs and not args.data_dir and not args.report:
    parser.error('give input files, --data-dir or --report')
  return args


def check_report_folder(folder):
  """Fails before predicting, not after, if the report has nowhere to go."""
  if tf.io.gfile.exists(folder) and not tf.io.gfile.isdir(folder):
    raise InputError(f'--report {folder} is a file; give a folder for the '
                     'report')
  try:
    tf.io.gfile.makedirs(folder)
  except tf.errors.OpError as e:
    raise InputError(f'--report {folder} cannot be made ({e.message}); give '
                     'a folder you can write to') from None


def write_report(folder, test, outputs, source, fmt):
  """The report on the test set (trainer.report); its class table, printed."""
  summary = report.summarize(test.labels, outputs, source)
  try:
    paths = report.write(folder, summary, test.values)
  except tf.errors.OpError as e:
    cli.fail(f'error: --report {folder} could not be written ({e.message}); '
             'give a folder you can write to')
  if fmt == 'json':
    print(json.dumps(summary))
  else:
    print(report.class_table(summary))
    print('wrote ' + ', '.join(paths))


def main(argv=None):
  args = parse_args(argv)
  tf.get_logger().setLevel('ERROR')
  data_dir = args.data_dir
  try:
    path = resolve_model(args.model, args.export)
    if args.report:
      check_report_folder(args.report)
      data_dir = data.resolve_data_dir(data_dir)
    batches = read_inputs(args.inputs, data_dir)
    loaded = load_model(path)
    outputs = [predict(loaded, batch) for batch in batches]
  except (InputError, data.DataError, config_lib.UsageError) as e:
    cli.fail(f'error: {e}')
  for line in input_warnings(batches):
    print(line, file=sys.stderr)
  if args.report:  # the test set, last: reported, not listed
    test, test_outputs = batches.pop(), outputs.pop()
  rows = [row for batch, output in zip(batches, outputs)
          for row in rows_of(batch, output)]
  if rows:
    write_rows(rows, args.format, sys.stdout)
  if args.report:
    write_report(args.report, test, test_outputs,
                 {'model': path, 'data_dir': data_dir}, args.format)


if __name__ == '__main__':
  main()
