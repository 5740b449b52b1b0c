"""One immutable value holding a run's hyper-parameters and paths.

Built once (from flags, a sweep or a test) and validated on construction, so
every bad value is reported before any file is read or written. Each setting
is declared once, here: its Config field carries its default, its kind and
its --help, and trainer.task's flags, jobdir's refusals and the sweep's run
ids are made from the fields, and so is the check that a count is positive.
A new flag is a field here and a row in the docs' flags table
(tests/test_config.py checks the row); a rule beyond "positive" goes in
_validate.
"""

import dataclasses
import math
from typing import Optional, Tuple

from trainer.cli import DATA_DIR_HELP
from trainer.errors import UsageError  # also config.UsageError, as before

MODEL_TYPES = ('premade', 'custom', 'keras')
# Model types that take one dropout rate per hidden layer.
PER_LAYER_DROPOUT_MODELS = ('custom', 'keras')
# Model types with dropout on the input pixels (--input-dropout).
INPUT_DROPOUT_MODELS = ('custom', 'keras')
# --distribute; trainer.cluster resolves auto where the job runs.
DISTRIBUTE = ('auto', 'none', 'mirrored', 'multiworker', 'ps')
# Names only: trainer.model maps them to TensorFlow's optimizers and
# functions, so that this value object needs no TensorFlow.
OPTIMIZERS = ('adam', 'adagrad', 'sgd', 'rmsprop')
ACTIVATIONS = ('relu', 'elu', 'gelu', 'tanh', 'sigmoid')
LR_SCHEDULES = ('constant', 'cosine')

# Per model type: the values of settings left unset (None). Chosen by
# measurement on the MNIST test set (README, "What you get"; docs/performance.md). The custom
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

# When --steps-per-run is not given, the custom and premade models train
# about this many examples per Session.run (20 steps at batch size 256; 40
# at 128, 5 at 1024; at most --log-every-steps): enough steps to amortize a
# run's cost, few enough that stacked batches stay small and progress lines
# and checkpoints fine-grained. Chosen by measurement (docs/performance.md,
# "--steps-per-run"). Elsewhere (default_steps_per_run) K is 1.
EXAMPLES_PER_RUN = 5120
STEPS_PER_RUN_MODELS = ('custom', 'premade')
# Strategies whose K steps are unrolled (one copy of the step, all-reduce
# included, per step; trainer/multistep.py), and the most steps a run so
# builds (the default there, and the most --steps-per-run may give): K
# copies of the model per replica, so the graph stays small.
UNROLLED_STRATEGIES = ('mirrored', 'multiworker')
MAX_UNROLLED_STEPS = 10

# Checkpoints: the most of training time that saving should take, and so the
# least gap between two saves caused by a step count, in save durations
# (trainer/checkpoints.py times each save).
SAVE_BUDGET = 0.02
SAVE_BUDGET_FACTOR = round(1 / SAVE_BUDGET)


# What a setting is for, which decides where a changed value is allowed:
# - architecture: decides the variables in a checkpoint; a resumed job dir
#   must match (jobdir.py);
# - learned: decides what the checkpoints learn; a resumed job dir must
#   match, and a sweep's run id spells it (sweep/plan.py);
# - length: how long the run trains; may grow when a job dir resumes;
# - operational: where data and checkpoints go, how often to save, evaluate
#   and log, how to run; changes freely between runs (segments) and leaves
#   a sweep's run id alone.
KINDS = ('architecture', 'learned', 'length', 'operational')


def _setting(default, kind, help_text, flag=True, positive=False):
  """A Config field with its kind, its --help, whether it is a flag.

  trainer.task defines one absl flag per field with flag=True (its name
  hyphenated, its type from the annotation, `default` as its default);
  a default of None means MODEL_DEFAULTS or a later step decides.
  `positive`: a value given must be greater than 0.
  """
  assert kind in KINDS, kind
  return dataclasses.field(default=default, metadata={
      'kind': kind, 'help': help_text, 'flag': flag, 'positive': positive})


def _one_of(values):
  return f'One of {", ".join(values)}.'


@dataclasses.dataclass(frozen=True)
class Config:
  """A run's settings; each field declares its kind, help and default once."""
  job_dir: str = _setting(
      None, 'operational',
      'Folder or gs://bucket/path for checkpoints, event files, exports and '
      'results.json. Reruns resume from it. In a tuning trial, its <trial '
      'id>/ subfolder. Default on Vertex AI: $AIP_CHECKPOINT_DIR.')
  data_dir: Optional[str] = _setting(None, 'operational', DATA_DIR_HELP)
  model_type: str = _setting('premade', 'architecture', _one_of(MODEL_TYPES))
  # Built here directly (a sweep, a test), train_steps wins over num_epochs;
  # the command line refuses both at once.
  train_steps: Optional[int] = _setting(
      None, 'length', 'Global step to train to. Exclusive with --num-epochs.',
      positive=True)
  num_epochs: Optional[float] = _setting(
      None, 'length', 'Passes over the training set when --train-steps is '
      f'not given (default: {describe_defaults("num_epochs")}).',
      positive=True)
  batch_size: Optional[int] = _setting(
      None, 'learned',
      f'Training batch size (default: {describe_defaults("batch_size")}).',
      positive=True)
  learning_rate: Optional[float] = _setting(
      None, 'learned', 'Initial learning rate (default: '
      f'{describe_defaults("learning_rate")}).',
      positive=True)
  lr_schedule: str = _setting(
      'cosine', 'learned', f'{_one_of(LR_SCHEDULES)[:-1]} (cosine decays to '
      '1% of the rate over the training steps).')
  optimizer: str = _setting('adam', 'learned', _one_of(OPTIMIZERS))
  activation: str = _setting('relu', 'learned', _one_of(ACTIVATIONS))
  hidden_units: Tuple[int, ...] = _setting(
      (512, 256, 128), 'architecture',
      'Widths of the hidden layers, comma separated.')
  dropout: Optional[Tuple[float, ...]] = _setting(
      None, 'learned', 'Dropout rate after each hidden layer: one rate for '
      'all layers, or (custom and keras) one per layer. Default: '
      f'{describe_defaults("dropout")}.')
  input_dropout: Optional[float] = _setting(
      None, 'learned', 'Dropout rate on the input pixels, custom and keras '
      'models only (default: '
      f'{describe_defaults("input_dropout", INPUT_DROPOUT_MODELS)}).')
  batch_norm: bool = _setting(False, 'architecture',
                              'Batch normalization in the premade model.')
  scale_inputs: bool = _setting(
      True, 'learned', 'Scale pixels from 0-255 to 0-1 (--noscale-inputs '
      'keeps raw values, as in the chapter\'s comparison).')
  seed: int = _setting(42, 'learned',
                       'Seed for weights, dropout and shuffling.')
  checkpoint_secs: int = _setting(
      60, 'operational', 'Most seconds between checkpoints: a kill loses at '
      'most this much training.', positive=True)
  checkpoint_steps: int = _setting(
      1000, 'operational', 'Steps between checkpoints, unless saving them '
      f'that often would cost more than {SAVE_BUDGET:.0%} of training: each '
      'save is timed, and a step count saves no sooner than '
      f'{SAVE_BUDGET_FACTOR} times the recent saves\' duration after the '
      'previous one. --checkpoint-secs bounds the gap in any case.',
      positive=True)
  eval_secs: int = _setting(
      60, 'operational', 'Least seconds between evaluations; one runs at a '
      'checkpoint once this much time has passed, and always at the end.')
  keep_checkpoints: int = _setting(
      3, 'operational', 'Newest checkpoints to keep.', positive=True)
  lost_task_secs: int = _setting(
      600, 'operational', 'In a TF_CONFIG cluster, a task exits with status '
      '1 once a task it needs has refused connections this long (TensorFlow '
      'alone would wait hours); a platform restarting the lost one sooner '
      'keeps the job going.', positive=True)
  log_every_steps: int = _setting(
      500, 'operational', 'Steps between progress lines.', positive=True)
  summary_steps: int = _setting(
      100, 'operational', 'Steps between training-loss summaries.',
      flag=False, positive=True)
  distribute: str = _setting(  # resolved by with_strategy
      'auto', 'operational',
      'How to train on several devices or tasks. auto: ps when TF_CONFIG '
      'names parameter servers; multiworker for a chief and workers without '
      'them; mirrored on one machine with several GPUs; else none. none: one '
      'device; mirrored: every GPU of this machine (MirroredStrategy); '
      'multiworker: synchronous all-reduce between the chief and workers '
      '(MultiWorkerMirroredStrategy); ps: asynchronous parameter servers. '
      'With mirrored and multiworker, --batch-size is the global batch, '
      'shared by the replicas. A choice that cannot run where the job runs '
      'is refused (docs/distributed.md).')
  steps_per_run: Optional[int] = _setting(  # None: with_steps_per_run decides
      None, 'operational', 'Optimizer steps per Session.run, for speed; the '
      'model is the same. Default: for the custom and premade models, '
      f'{EXAMPLES_PER_RUN} examples per run (40 steps at --batch-size 128), '
      f'at most --log-every-steps, at most {MAX_UNROLLED_STEPS} with mirrored '
      'and multiworker; 1 for keras, the premade model with --dropout or '
      '--batch-norm and parameter-server clusters (where more is refused). '
      'Progress lines, loss summaries and checkpoints may then fall on a '
      'multiple of it; the run still ends at exactly --train-steps.')

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

  def with_strategy(self, strategy):
    """--distribute resolved to what this task runs (trainer.cluster.choose)."""
    if self.batch_norm and strategy == 'multiworker':
      raise UsageError('--batch-norm is not supported with --distribute '
                       'multiworker (what auto chooses for a chief and '
                       'workers): TensorFlow 2.15 hangs at the first step; '
                       'drop --batch-norm')
    return dataclasses.replace(self, distribute=strategy)

  def with_steps_per_run(self):
    """Resolves the default --steps-per-run for the strategy --distribute
    names (resolved by with_strategy; auto counts as one device here)."""
    k = self.steps_per_run
    if self.distribute == 'ps' and (k or 1) > 1:
      raise UsageError(f'--steps-per-run={k} is not supported in a TF_CONFIG '
                       'cluster with parameter servers: its workers step on '
                       'their own, so none knows how many steps are left; drop '
                       '--steps-per-run')
    if k is not None:
      return self
    return dataclasses.replace(self,
                               steps_per_run=default_steps_per_run(self))


def default_steps_per_run(cfg):
  """K by shape: about EXAMPLES_PER_RUN examples per Session.run, at most
  one run between progress lines, at most MAX_UNROLLED_STEPS under a
  strategy that unrolls them (trainer/multistep.py); 1 where K > 1 cannot
  run."""
  if _why_one_step_per_run(cfg) or cfg.distribute == 'ps':
    return 1
  k = min(EXAMPLES_PER_RUN // cfg.batch_size, cfg.log_every_steps)
  if cfg.distribute in UNROLLED_STRATEGIES:
    k = min(k, MAX_UNROLLED_STEPS)
  return max(1, k)


def _why_one_step_per_run(cfg):
  """Why cfg's model trains one step per Session.run, or None if it can
  train several."""
  if cfg.model_type not in STEPS_PER_RUN_MODELS:
    return (f'the {cfg.model_type} model function runs one step per '
            'Session.run')
  if cfg.model_type == 'premade' and (cfg.batch_norm or any(cfg.dropout)):
    return ('the premade model\'s K-step path has no dropout or batch '
            'normalization')
  return None


def names_of(kind):
  """The Config fields of one kind, in declaration order."""
  return tuple(f.name for f in dataclasses.fields(Config)
               if f.metadata['kind'] == kind)


def flag_fields():
  """The Config fields that are command-line flags, in declaration order."""
  return tuple(f for f in dataclasses.fields(Config) if f.metadata['flag'])


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
  for field in dataclasses.fields(cfg):
    if field.metadata['positive']:
      _positive(field.name.replace('_', '-'), getattr(cfg, field.name))
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
  why = _why_one_step_per_run(cfg)
  if why:
    raise UsageError(f'--steps-per-run={k} is supported by the custom model '
                     f'and the premade one without --dropout or --batch-norm: '
                     f'{why}; drop --steps-per-run')
  if cfg.distribute in UNROLLED_STRATEGIES and k > MAX_UNROLLED_STEPS:
    raise UsageError(
        f'--steps-per-run={k} is more than {MAX_UNROLLED_STEPS}, the '
        f'most steps a run unrolls under --distribute {cfg.distribute} (one '
        'copy of the step per step); give at most '
        f'{MAX_UNROLLED_STEPS}')


def _csv(values):
  return ','.join(str(v) for v in values)
