"""Checks on the job dir before a run touches it, and what it already holds.

A job dir is only ever added to: checkpoints resume, exports rotate, and a
run that would not fit the checkpoints already there is refused up front
rather than failing mid-restore.
"""

import dataclasses
import json
import os
import uuid

import tensorflow as tf

from trainer.config import UsageError

CONFIG_FILE = 'trainer_config.json'

# Settings that decide the variables in a checkpoint; a resumed run must match.
_ARCHITECTURE = ('model_type', 'hidden_units', 'batch_norm')


def config_dict(cfg):
  return {k: list(v) if isinstance(v, tuple) else v
          for k, v in dataclasses.asdict(cfg).items()}


def prepare(cfg):
  """Creates the job dir if needed, proves it writable, checks it fits cfg."""
  path = cfg.job_dir
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
  _check_same_architecture(cfg)


def _check_same_architecture(cfg):
  saved_path = os.path.join(cfg.job_dir, CONFIG_FILE)
  wanted = config_dict(cfg)
  if tf.io.gfile.exists(saved_path):
    with tf.io.gfile.GFile(saved_path) as f:
      saved = json.load(f)
    differ = [k for k in _ARCHITECTURE if saved.get(k) != wanted[k]]
    if differ:
      have = ', '.join(f'{k}={saved.get(k)}' for k in differ)
      want = ', '.join(f'{k}={wanted[k]}' for k in differ)
      raise UsageError(
          f'--job-dir {cfg.job_dir} holds checkpoints of a model with {have}, '
          f'not {want}; use a new --job-dir or the same settings')
    return
  if global_step(cfg.job_dir) > 0:
    raise UsageError(
        f'--job-dir {cfg.job_dir} holds checkpoints this trainer did not '
        f'write (no {CONFIG_FILE}); use a new --job-dir')
  with tf.io.gfile.GFile(saved_path, 'w') as f:
    json.dump(wanted, f, indent=2, sort_keys=True)


def global_step(job_dir):
  """The global step of the newest checkpoint in job_dir, 0 if none."""
  checkpoint = tf.train.latest_checkpoint(job_dir)
  if checkpoint is None:
    return 0
  return int(tf.train.load_variable(checkpoint, 'global_step'))
