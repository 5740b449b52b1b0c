"""The job dir's state: checks before a run touches it, what it holds.

Its files are trainer_config.json (the settings of each segment),
results.json (the final evaluation and exports of the newest run) and the
checkpoints; export.py writes the SavedModels under export/.

A job dir is only ever added to: checkpoints resume, exports rotate, and a
run that would not fit the checkpoints already there is refused up front
rather than failing mid-restore: by the settings in trainer_config.json when
it is there (the clearer message), and always by comparing the variables the
settings build with those in the newest checkpoint. Settings that change
what the model learns are refused too, so a job dir holds one experiment;
the training length and operational settings (where data and checkpoints
go, how often to save, evaluate and log) may change from one run (segment)
to the next, and trainer_config.json lists each segment's.
"""

import dataclasses
import json
import os
import uuid

import tensorflow as tf

from trainer import data
from trainer import inputs
from trainer.errors import UsageError

CONFIG_FILE = 'trainer_config.json'
RESULTS_FILE = 'results.json'

# Settings that decide the variables in a checkpoint; a resumed run must match.
_ARCHITECTURE = ('model_type', 'hidden_units', 'batch_norm')
# Settings that decide what the checkpoints learn; a resumed run must match.
# Every other setting belongs to a segment and may change between runs.
_LEARNED = ('batch_size', 'learning_rate', 'lr_schedule', 'optimizer',
            'activation', 'dropout', 'input_dropout', 'scale_inputs', 'seed')


def config_dict(cfg):
  return {k: list(v) if isinstance(v, tuple) else v
          for k, v in dataclasses.asdict(cfg).items()}


def prepare(cfg):
  """Creates the job dir if needed, proves it writable, checks it fits cfg.

  Before an estimator is built: a Keras one writes into the job dir.
  """
  _check_writable(cfg.job_dir)
  saved = _read_config(cfg.job_dir)
  if saved is not None:
    _check_same_architecture(cfg, saved)
    _check_same_learning(cfg, saved)


def record(cfg, start_step):
  """Writes cfg to trainer_config.json; a run that trains adds its segment.

  For the chief only, after check_checkpoint_fits. The top level holds the
  newest segment's settings; "segments" lists, for each run that trained,
  the step it started from and its segment settings. A segment that saved
  no checkpoint (same start step) is replaced.
  """
  saved = _read_config(cfg.job_dir) or {}
  wanted = config_dict(cfg)
  segments = [s for s in saved.get('segments', [])
              if s.get('from_step', 0) < start_step]
  if start_step < cfg.train_steps:
    segments.append({'from_step': start_step,
                     **{k: v for k, v in wanted.items()
                        if k not in _ARCHITECTURE + _LEARNED}})
  elif saved:
    return  # a finished job: this run trains nothing
  write_json(os.path.join(cfg.job_dir, CONFIG_FILE),
             {**wanted, 'segments': segments})


def _read_config(job_dir):
  return _read_json(os.path.join(job_dir, CONFIG_FILE))


def write_results(job_dir, results):
  return write_json(os.path.join(job_dir, RESULTS_FILE), results)


def read_results(job_dir):
  """results.json of job_dir, or None before a run finished there."""
  return _read_json(os.path.join(job_dir, RESULTS_FILE))


def _read_json(path):
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


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


def _check_same_architecture(cfg, saved):
  wanted = config_dict(cfg)
  differ = [k for k in _ARCHITECTURE if saved.get(k) != wanted[k]]
  if differ:
    have = ', '.join(f'{k}={saved.get(k)}' for k in differ)
    want = ', '.join(f'{k}={wanted[k]}' for k in differ)
    raise UsageError(
        f'--job-dir {cfg.job_dir} holds checkpoints of a model with {have}, '
        f'not {want}; use a new --job-dir or the same settings')


def _check_same_learning(cfg, saved):
  """Refuses settings that would change what the checkpoints learn.

  Only those the file records: a setting added later is not a change.
  """
  wanted = config_dict(cfg)
  differ = [k for k in _LEARNED if k in saved and saved[k] != wanted[k]]
  if differ:
    have = ' '.join(_flag(k, saved[k]) for k in differ)
    want = ' '.join(_flag(k, wanted[k]) for k in differ)
    raise UsageError(
        f'--job-dir {cfg.job_dir} holds a model trained with {have}, not '
        f'{want}; use a new --job-dir to train with these settings, or the '
        'job dir\'s to resume it')


def _flag(name, value):
  name = name.replace('_', '-')
  if isinstance(value, bool):
    return f'--{"" if value else "no"}{name}'
  if isinstance(value, list):
    value = ','.join(map(str, value))
  return f'--{name}={value}'


def check_checkpoint_fits(job_dir, estimator):
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
