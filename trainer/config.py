"""One immutable value holding a run's hyper-parameters and paths.

Built once (from flags, a sweep or a test) and validated on construction, so
every bad value is reported before any file is read or written.
"""

import dataclasses
import math
from typing import Optional, Tuple

from trainer.errors import UsageError  # also config.UsageError, as before

MODEL_TYPES = ('premade', 'custom', 'keras')
# Model types that take one dropout rate per hidden layer.
PER_LAYER_DROPOUT_MODELS = ('custom', 'keras')
# Model types with dropout on the input pixels (--input-dropout).
INPUT_DROPOUT_MODELS = ('custom', 'keras')
DISTRIBUTE = ('none', 'mirrored')
# Names only: trainer.model maps them to TensorFlow's optimizers and
# functions, so that this value object needs no TensorFlow.
OPTIMIZERS = ('adam', 'adagrad', 'sgd', 'rmsprop')
ACTIVATIONS = ('relu', 'elu', 'gelu', 'tanh', 'sigmoid')
LR_SCHEDULES = ('constant', 'cosine')

# Per model type: the values of settings left unset (None). Chosen by
# measurement on the MNIST test set (README, "What you get"). The custom
# model's dropout rate applies to every hidden layer. The keras model is the
# custom model written as a Keras Sequential, and shares its defaults.
MODEL_DEFAULTS = {
    'premade': {'num_epochs': 20, 'batch_size': 128, 'learning_rate': 1e-3,
                'dropout': 0.0, 'input_dropout': 0.0},
    'custom': {'num_epochs': 30, 'batch_size': 256, 'learning_rate': 2e-3,
               'dropout': 0.3, 'input_dropout': 0.2},
}
MODEL_DEFAULTS['keras'] = MODEL_DEFAULTS['custom']


def describe_defaults(name, model_types=MODEL_TYPES):
  """`premade 128, custom and keras 256`: MODEL_DEFAULTS[*][name] for help."""
  groups = {}
  for model_type in model_types:
    groups.setdefault(MODEL_DEFAULTS[model_type][name], []).append(model_type)
  return ', '.join(f'{" and ".join(types)} {value:g}'
                   for value, types in groups.items())

# When --steps-per-run is not given, the custom model trains about this many
# examples per Session.run (20 steps at its batch size 256; 40 at 128, 5 at
# 1024; at most --log-every-steps): enough steps to amortize a run's cost,
# few enough that stacked batches stay small and progress lines and
# checkpoints fine-grained. Chosen by measurement (README, "Performance").
# The other model types, and the custom model where K > 1 is not
# supported, take 1.
EXAMPLES_PER_RUN = 5120


@dataclasses.dataclass(frozen=True)
class Config:
  job_dir: str
  data_dir: Optional[str] = None
  model_type: str = 'premade'
  # Built here directly (a sweep, a test), train_steps wins over num_epochs;
  # the command line refuses both at once.
  train_steps: Optional[int] = None
  num_epochs: Optional[float] = None
  batch_size: Optional[int] = None
  learning_rate: Optional[float] = None
  lr_schedule: str = 'cosine'
  optimizer: str = 'adam'
  activation: str = 'relu'
  hidden_units: Tuple[int, ...] = (512, 256, 128)
  dropout: Optional[Tuple[float, ...]] = None
  input_dropout: Optional[float] = None
  batch_norm: bool = False
  scale_inputs: bool = True
  seed: int = 42
  checkpoint_secs: int = 60
  # A checkpoint every this many steps or checkpoint_secs, whichever first.
  checkpoint_steps: int = 1000
  eval_secs: int = 60
  keep_checkpoints: int = 3
  log_every_steps: int = 500
  summary_steps: int = 100  # steps between training-loss summaries
  distribute: str = 'none'
  steps_per_run: Optional[int] = None  # None: with_steps_per_run decides

  def __post_init__(self):
    _choice('model-type', self.model_type, MODEL_TYPES)
    defaults = MODEL_DEFAULTS[self.model_type]
    hidden_units = tuple(self.hidden_units)
    layers = 1 if self.model_type == 'premade' else len(hidden_units)
    dropout = self.dropout
    if dropout is None:
      dropout = (defaults['dropout'],)
    if len(dropout) == 1:  # one rate means every layer's (a tuning study's)
      dropout = tuple(dropout) * layers
    resolved = {'hidden_units': hidden_units, 'dropout': tuple(dropout)}
    for name in ('input_dropout', 'batch_size', 'learning_rate'):
      if getattr(self, name) is None:
        resolved[name] = defaults[name]
    if self.train_steps is None and self.num_epochs is None:
      resolved['num_epochs'] = defaults['num_epochs']
    for name, value in resolved.items():
      object.__setattr__(self, name, value)
    _validate(self)

  def with_train_steps(self, train_size):
    """Resolves --num-epochs to steps now that the data size is known."""
    if self.train_steps:
      return self
    steps = math.ceil(self.num_epochs * train_size / self.batch_size)
    return dataclasses.replace(self, train_steps=max(1, steps))

  def with_steps_per_run(self, in_cluster):
    """Resolves the default --steps-per-run now that the role is known."""
    if in_cluster and (self.steps_per_run or 1) > 1:
      raise UsageError(f'--steps-per-run={self.steps_per_run} is not '
                       'supported in a TF_CONFIG cluster: its workers share '
                       'the global step; drop --steps-per-run or TF_CONFIG')
    if self.steps_per_run is not None:
      return self
    several = (self.model_type == 'custom' and self.distribute == 'none' and
               not in_cluster)
    # At most one run between progress lines, so none is skipped.
    auto = min(EXAMPLES_PER_RUN // self.batch_size, self.log_every_steps)
    return dataclasses.replace(self,
                               steps_per_run=max(1, auto) if several else 1)


def _choice(name, value, allowed):
  if value not in allowed:
    raise UsageError(f'--{name}={value} is not supported; choose one of '
                     f'{", ".join(allowed)}')


def _positive(name, value):
  if value is not None and not value > 0:
    raise UsageError(f'--{name}={value} must be greater than 0')


def _validate(cfg):
  if not cfg.job_dir:
    raise UsageError('--job-dir is required: a local folder or '
                     'gs://bucket/path for checkpoints, exports and '
                     'results.json')
  _choice('optimizer', cfg.optimizer, OPTIMIZERS)
  _choice('activation', cfg.activation, ACTIVATIONS)
  _choice('lr-schedule', cfg.lr_schedule, LR_SCHEDULES)
  _choice('distribute', cfg.distribute, DISTRIBUTE)
  for name in ('train_steps', 'num_epochs', 'batch_size', 'learning_rate',
               'checkpoint_secs', 'checkpoint_steps', 'keep_checkpoints',
               'log_every_steps', 'summary_steps'):
    _positive(name.replace('_', '-'), getattr(cfg, name))
  if cfg.eval_secs < 0:
    raise UsageError(f'--eval-secs={cfg.eval_secs} must be 0 or more')
  if not cfg.hidden_units or any(u <= 0 for u in cfg.hidden_units):
    raise UsageError(f'--hidden-units={_csv(cfg.hidden_units)} must list one '
                     'or more positive layer widths, e.g. 512,256,128')
  for rate in cfg.dropout:
    if not 0 <= rate < 1:
      raise UsageError(f'--dropout={_csv(cfg.dropout)}: every rate must be in '
                       '[0, 1)')
  if not 0 <= cfg.input_dropout < 1:
    raise UsageError(f'--input-dropout={cfg.input_dropout} must be in [0, 1)')
  if cfg.input_dropout and cfg.model_type not in INPUT_DROPOUT_MODELS:
    raise UsageError('--input-dropout is not supported by the premade model; '
                     'use --model-type=custom or keras')
  if cfg.model_type == 'premade' and len(cfg.dropout) != 1:
    raise UsageError(f'--dropout={_csv(cfg.dropout)}: the premade model takes '
                     'one rate for all layers')
  if (cfg.model_type in PER_LAYER_DROPOUT_MODELS and
      len(cfg.dropout) != len(cfg.hidden_units)):
    raise UsageError(
        f'--dropout={_csv(cfg.dropout)} has {len(cfg.dropout)} rates but '
        f'--hidden-units={_csv(cfg.hidden_units)} has {len(cfg.hidden_units)} '
        'layers; give one rate for all layers or one per layer')
  _check_steps_per_run(cfg)
  if cfg.batch_norm and cfg.model_type != 'premade':
    raise UsageError('--batch-norm is supported by --model-type=premade only')


def _check_steps_per_run(cfg):
  k = cfg.steps_per_run
  _positive('steps-per-run', k)
  if k is None or k == 1:
    return
  if cfg.model_type != 'custom':
    raise UsageError(f'--steps-per-run={k} is supported by --model-type='
                     f'custom only: the {cfg.model_type} model function runs '
                     'one step per Session.run; drop --steps-per-run')
  if cfg.distribute != 'none':
    raise UsageError(f'--steps-per-run={k} is not supported with '
                     f'--distribute {cfg.distribute}; drop one of them')


def _csv(values):
  return ','.join(str(v) for v in values)
