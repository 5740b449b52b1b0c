"""A sweep's plan: experiments to runs, each with its own job dir.

Equal settings share one job dir, whose name spells the settings
(`run_id`); a run whose results.json exists is done, so a stopped sweep
resumes where it stopped.
"""

import dataclasses
import hashlib
import itertools
import json
import math
import os

import tensorflow as tf

from trainer import config as config_lib
from trainer import jobdir
from trainer.errors import UsageError
from trainer.sweep import chapter
from trainer.sweep import tables

RUNS_DIR = 'runs'
# Sweep runs checkpoint, and so evaluate, this often (and not every
# --checkpoint-steps): points of the test-accuracy curves.
CHECKPOINT_SECS = 20
# Settings that change how a run is watched, not what it learns.
_OPERATIONAL = ('job_dir', 'data_dir', 'checkpoint_secs', 'checkpoint_steps',
                'eval_secs', 'keep_checkpoints', 'log_every_steps',
                'summary_steps')


@dataclasses.dataclass(frozen=True)
class Run:
  """One row of the results: an experiment and the config that trains it."""
  experiment: chapter.Experiment
  config: config_lib.Config  # job_dir set, budget applied
  chapter_budget: str
  steps: int

  @property
  def examples(self):
    return self.steps * self.config.batch_size


def experiments_for(presets, grid_path=None):
  """The chapter's experiments of the named groups, then a grid file's."""
  found = []
  for name in presets:
    if name == 'chapter':
      found.extend(chapter.EXPERIMENTS)
    elif name in chapter.GROUPS:
      found.extend(chapter.group(name))
    else:
      raise UsageError(
          f'--preset={name} is not a preset; choose chapter or one of '
          f'{", ".join(chapter.GROUPS)}')
  if grid_path:
    found.extend(load_grid(grid_path))
  return found


def load_grid(path):
  """Experiments from a JSON grid file: every combination of its values.

  {"name": "lr", "base": {"model_type": "keras", "num_epochs": 3},
   "grid": {"optimizer": ["sgd", "adam"], "learning_rate": [0.01, 0.001]}}
  """
  try:
    with tf.io.gfile.GFile(path) as f:
      spec = json.load(f)
    name = spec.get('name') or os.path.splitext(os.path.basename(path))[0]
    base, grid = spec.get('base', {}), dict(spec.get('grid', {}))
  except (tf.errors.OpError, ValueError, AttributeError, TypeError) as e:
    raise UsageError(
        f'--grid {path} is not a readable grid file ({e}); see '
        '`python -m trainer.sweep --help` for the format') from None
  for key, values in grid.items():
    if not isinstance(values, list) or not values:
      raise UsageError(
          f'--grid {path}: "{key}" must be a list of the values to try, '
          f'e.g. [{json.dumps(values)}], not {json.dumps(values)}')
  keys = list(grid)
  rows = [dict(zip(keys, values))
          for values in itertools.product(*(grid[k] for k in keys))]
  return [chapter.Experiment(name, _label(row) or name, {**base, **row})
          for row in rows]


def _label(row):
  return ', '.join(
      f'{k}={",".join(map(str, v)) if isinstance(v, list) else v}'
      for k, v in row.items())


def plan(experiments, sweep_dir, data_dir, train_size, max_epochs=None,
         seed=None):
  """A Run per experiment; equal settings share one job dir."""
  runs = []
  for e in experiments:
    settings = dict(e.settings, **({} if seed is None else {'seed': seed}))
    try:
      cfg = config_lib.Config(job_dir=sweep_dir, data_dir=data_dir, **settings)
    except TypeError as err:
      raise UsageError(
          f'experiment {e.group}: {e.label}: {err}; settings are the fields '
          'of trainer.config.Config') from None
    chapter_budget = tables.budget(cfg)
    cfg = _within_budget(cfg, max_epochs, train_size)
    steps = cfg.with_train_steps(train_size).train_steps
    cfg = dataclasses.replace(
        cfg, job_dir=os.path.join(sweep_dir, RUNS_DIR, run_id(cfg)),
        checkpoint_secs=CHECKPOINT_SECS, checkpoint_steps=steps, eval_secs=0,
        log_every_steps=max(1, steps // 10),
        summary_steps=max(1, steps // 100))
    runs.append(Run(e, cfg, chapter_budget, steps))
  return runs


def _within_budget(cfg, max_epochs, train_size):
  if max_epochs is None:
    return cfg
  if cfg.train_steps:
    most = math.ceil(max_epochs * train_size / cfg.batch_size)
    return dataclasses.replace(cfg, train_steps=min(cfg.train_steps, most))
  return dataclasses.replace(cfg, num_epochs=min(cfg.num_epochs, max_epochs))


def run_id(cfg):
  """A job dir name that reads as the settings and differs when they do.

  The digest covers the settings that differ from the model type's
  defaults, so a setting added to Config later leaves existing run ids (and
  finished sweeps) as they are.
  """
  defaults = config_lib.Config(job_dir=cfg.job_dir, model_type=cfg.model_type)
  learned = {f.name: getattr(cfg, f.name)
             for f in dataclasses.fields(cfg)
             if f.name not in _OPERATIONAL and
             getattr(cfg, f.name) != getattr(defaults, f.name)}
  digest = hashlib.sha1(
      json.dumps(learned, sort_keys=True).encode()).hexdigest()[:6]
  length = (f's{cfg.train_steps}' if cfg.train_steps
            else f'e{cfg.num_epochs:g}')
  return '-'.join((
      cfg.model_type, cfg.activation,
      'scaled' if cfg.scale_inputs else 'raw',
      f'{cfg.optimizer}{cfg.learning_rate:g}',
      'h' + 'x'.join(map(str, cfg.hidden_units)), f'b{cfg.batch_size}',
      length, digest))


def pending(runs):
  """Distinct runs, in order, whose job dir holds no results.json yet."""
  seen, todo = set(), []
  for run in runs:
    if run.config.job_dir not in seen:
      seen.add(run.config.job_dir)
      if jobdir.read_results(run.config.job_dir) is None:
        todo.append(run)
  return todo
