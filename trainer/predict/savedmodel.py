"""The export: find it (a SavedModel folder or a job dir), load it, run it."""

import os

import numpy as np
import tensorflow as tf

from trainer import cloud
from trainer import export
from trainer import model
from trainer.errors import InputError

_CHUNK = 1000  # images per call of the model


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
