"""Checks on the job dir before a run touches it, and what it already holds.

A job dir is only ever added to: checkpoints resume, exports rotate, and a
run that would not fit the checkpoints already there is refused up front
rather than failing mid-restore: by the settings in trainer_config.json when
it is there (the clearer message), and always by comparing the variables the
settings build with those in the newest checkpoint.
"""

import dataclasses
import json
import os
import uuid

import tensorflow as tf

from trainer import data
from trainer import inputs
from trainer.config import UsageError

CONFIG_FILE = 'trainer_config.json'

# Settings that decide the variables in a checkpoint; a resumed run must match.
_ARCHITECTURE = ('model_type', 'hidden_units', 'batch_norm')


def config_dict(cfg):
  return {k: list(v) if isinstance(v, tuple) else v
          for k, v in dataclasses.asdict(cfg).items()}


def prepare(cfg):
  """Creates the job dir if needed, proves it writable, checks it fits cfg.

  Before an estimator is built: a Keras one writes into the job dir.
  """
  _check_writable(cfg.job_dir)
  _check_same_architecture(cfg)


def adopt(cfg, estimator):
  """Checks the newest checkpoint fits `estimator`, then records cfg.

  For the chief only: other tasks of a cluster leave the checkpoints to it
  (they may rotate while another task reads them).
  """
  _check_checkpoint_fits(cfg.job_dir, estimator)
  path = os.path.join(cfg.job_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    write_json(path, config_dict(cfg))


def write_json(path, value):
  """Writes whole then renames: a reader (another task, a rerun) never sees
  half a file, and two writers never share a temporary name."""
  tmp = f'{path}.tmp-{uuid.uuid4().hex}'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(value, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, path, overwrite=True)
  return path


def _check_writable(path):
  if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
    raise UsageError(f'--job-dir {path} is a file; give a folder path')
  try:
    tf.io.gfile.makedirs(path)
    probe = os.path.join(path, f'.write-test-{uuid.uuid4().hex}')
    with tf.io.gfile.GFile(probe, 'w') as f:
      f.write('ok')
    tf.io.gfile.remove(probe)
  except tf.errors.OpError as e:
    raise UsageError(f'--job-dir {path} is not writable ({e.message}); give '
                     'a folder you can write to') from None


def _check_same_architecture(cfg):
  saved_path = os.path.join(cfg.job_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(saved_path):
    return
  with tf.io.gfile.GFile(saved_path) as f:
    saved = json.load(f)
  wanted = config_dict(cfg)
  differ = [k for k in _ARCHITECTURE if saved.get(k) != wanted[k]]
  if differ:
    have = ', '.join(f'{k}={saved.get(k)}' for k in differ)
    want = ', '.join(f'{k}={wanted[k]}' for k in differ)
    raise UsageError(
        f'--job-dir {cfg.job_dir} holds checkpoints of a model with {have}, '
        f'not {want}; use a new --job-dir or the same settings')


def _check_checkpoint_fits(job_dir, estimator):
  """Every variable the settings build must be in the checkpoint, same shape."""
  checkpoint = tf.train.latest_checkpoint(job_dir)
  if checkpoint is None:
    return
  try:
    reader = tf.train.load_checkpoint(checkpoint)
    reader.get_tensor('global_step')  # reads the data file too
    saved = reader.get_variable_to_shape_map()
  except tf.errors.OpError as e:
    raise UsageError(f'checkpoint {checkpoint} cannot be read ({e.message}); '
                     'use a new --job-dir') from None
  fix = 'use a new --job-dir or the settings the checkpoints were made with'
  for name, shape in _variables_built_by(estimator).items():
    if name not in saved:
      raise UsageError(f'--job-dir {job_dir} holds checkpoints without the '
                       f'variable {name} that these settings build; {fix}')
    if saved[name] != shape:
      raise UsageError(f'--job-dir {job_dir} holds checkpoints where {name} '
                       f'has shape {saved[name]}, but these settings build '
                       f'{shape}; {fix}')


def _variables_built_by(estimator):
  """{name: shape} of what a training graph of `estimator` would restore."""
  with tf.Graph().as_default():
    tf.compat.v1.train.get_or_create_global_step()
    pixels = tf.compat.v1.placeholder(tf.uint8, [None, data.PIXELS])
    labels = tf.compat.v1.placeholder(tf.int32, [None])
    estimator.model_fn(inputs.pixels_to_features(pixels, True), labels,
                       tf.estimator.ModeKeys.TRAIN, estimator.config)
    return {v.op.name: v.shape.as_list()
            for v in tf.compat.v1.global_variables()}


def global_step(job_dir):
  """The global step of the newest checkpoint in job_dir, 0 if none."""
  checkpoint = tf.train.latest_checkpoint(job_dir)
  if checkpoint is None:
    return 0
  return int(tf.train.load_variable(checkpoint, 'global_step'))
