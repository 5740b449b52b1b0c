"""Every shipped tuning study yields valid trials for every model type.

Trials are drawn from each study's own parameter specs, read from its YAML
(ranges, scale types, discrete values), and appended to the job's arguments
as `--name=value`, as AI Platform and Vertex AI do. Each drawn flag set must
make a valid run of each model type; two of them train end to end.
"""

import glob
import logging
import math
import os
import random
import string

import pytest
import yaml

from tests.support import processes
from trainer import config as config_lib
from trainer import task

ROOT = processes.ROOT
# The README and docs/cloud.md offer each study for every model type.
STUDIES = [os.path.join(ROOT, 'config.yaml')] + sorted(
    glob.glob(os.path.join(ROOT, 'configs', '**', '*.yaml'), recursive=True))


def _load(path):
  with open(path) as f:
    text = f.read()
  # Vertex AI specs hold scripts/submit_vertex.py's placeholders.
  return yaml.safe_load(string.Template(text).safe_substitute(
      IMAGE_URI='"img"', OUTPUT_DIR='"gs://b/j"', TRAINER_ARGS='[]'))


def _legacy_param(p):
  if p['type'] in ('DISCRETE', 'CATEGORICAL'):
    return p.get('discreteValues') or p['categoricalValues'], None, None
  return None, (p['minValue'], p['maxValue'], p['type'] == 'INTEGER'), p.get(
      'scaleType', 'UNIT_LINEAR_SCALE')


def _vertex_param(p):
  for key in ('discreteValueSpec', 'categoricalValueSpec'):
    if key in p:
      return p[key]['values'], None, None
  kind = 'integerValueSpec' if 'integerValueSpec' in p else 'doubleValueSpec'
  spec = p[kind]
  return None, (spec['minValue'], spec['maxValue'],
                kind == 'integerValueSpec'), p.get('scaleType',
                                                   'UNIT_LINEAR_SCALE')


def study(path):
  """{flag name: (values, (low, high, is_int), scale)}, or None: no study."""
  spec = _load(path)
  legacy = (spec.get('trainingInput') or {}).get('hyperparameters')
  if legacy:
    return {p['parameterName']: _legacy_param(p) for p in legacy['params']}
  if 'studySpec' in spec:
    return {p['parameterId']: _vertex_param(p)
            for p in spec['studySpec']['parameters']}
  return None


def draw(param, rng, corner=None):
  """One value as the service picks it; corner 0/1 gives the range's ends."""
  values, bounds, scale = param
  if values is not None:
    return rng.choice(values) if corner is None else values[-corner]
  low, high, is_int = bounds
  if corner is not None:
    value = (low, high)[corner]
  elif scale == 'UNIT_LOG_SCALE':
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
  elif scale == 'UNIT_REVERSE_LOG_SCALE':
    value = high + low - math.exp(rng.uniform(math.log(low), math.log(high)))
  else:
    assert scale == 'UNIT_LINEAR_SCALE', scale
    value = rng.uniform(low, high)
  return int(round(value)) if is_int else value


def trials(params, count=10, seed=0):
  """Both corners of the space, then `count` random trials."""
  rng = random.Random(seed)
  for corner in (0, 1, *[None] * count):
    yield [f'--{name}={draw(param, rng, corner)}'
           for name, param in sorted(params.items())]


SHIPPED = {os.path.relpath(p, ROOT): study(p) for p in STUDIES}
SHIPPED = {path: params for path, params in SHIPPED.items() if params}


def test_the_shipped_studies_are_found_and_agree():
  assert set(SHIPPED) == {'config.yaml', 'configs/vertex/tuning.yaml'}
  legacy, vertex = SHIPPED.values()
  assert legacy == vertex, 'AI Platform and Vertex AI tune the same space'


@pytest.fixture
def parse(monkeypatch):
  """trainer.task's own flags -> Config, in this process."""
  monkeypatch.delenv('TF_CONFIG', raising=False)
  absl_logger = logging.getLogger('absl')
  # Parsing sets absl's log level from --verbosity; later tests read INFO.
  monkeypatch.setattr(absl_logger, 'level', absl_logger.level)

  def config(argv):
    task.FLAGS.unparse_flags()
    task.parse_flags(['trainer.task', *argv])
    try:
      return task.config_from_flags()
    finally:
      task.FLAGS.unparse_flags()
  return config


@pytest.mark.parametrize('model_type', config_lib.MODEL_TYPES)
@pytest.mark.parametrize('path', sorted(SHIPPED))
def test_every_drawn_trial_is_a_valid_run(parse, path, model_type):
  for trial in trials(SHIPPED[path]):
    cfg = parse(['--job-dir', 'job', '--model-type', model_type, *trial])
    cfg.with_train_steps(60000)  # the epochs -> steps the run will do
    if model_type != 'premade':
      assert len(cfg.dropout) == len(cfg.hidden_units), trial


def test_one_dropout_rate_applies_to_every_layer(parse):
  cfg = parse(['--job-dir', 'j', '--model-type', 'custom', '--dropout=0.25'])
  assert cfg.dropout == (0.25, 0.25, 0.25)
  assert parse(['--job-dir', 'j', '--dropout=0.25']).dropout == (0.25,)


@pytest.mark.parametrize('model_type, seed', [('custom', 1), ('keras', 2)])
def test_a_drawn_trial_trains(tmp_path, mnist_dir, model_type, seed):
  trial = list(trials(SHIPPED['configs/vertex/tuning.yaml'], count=1,
                      seed=seed))[-1]  # the random one, not a corner
  results = processes.last_json(processes.run([
      *processes.TASK, '--data-dir', mnist_dir, '--job-dir',
      str(tmp_path / 'job'), '--model-type', model_type, '--train-steps',
      '3', *trial]))
  assert results['global_step'] == 3
  drawn = dict(flag[2:].split('=') for flag in trial)
  settings = results['config']
  assert settings['learning_rate'] == pytest.approx(float(drawn['learning-rate']))
  assert settings['batch_size'] == int(drawn['batch-size'])
  assert settings['hidden_units'][0] == int(drawn['first-layer-units'])
  assert settings['dropout'] == [float(drawn['dropout'])] * len(
      settings['hidden_units'])
