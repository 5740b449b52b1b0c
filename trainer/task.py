"""`python -m trainer.task`: train, evaluate and export an MNIST classifier.

Flags use gcloud's spelling (--job-dir, --train-steps); the underscore forms
work too. A rerun with the same --job-dir resumes from its newest checkpoint;
the job dir is never deleted or cleared.
"""

import json
import re
import signal
import sys
import textwrap
import warnings

from trainer import cli

if __name__ == '__main__':
  cli.quiet_unless_verbose(sys.argv[1:])

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import tensorflow as tf

from trainer import cloud
from trainer import cluster
from trainer import config as config_lib
from trainer import errors
from trainer import jobdir
from trainer import preemption
from trainer import train

FLAGS = flags.FLAGS
_DEFAULTS = config_lib.Config(job_dir='unused')
# Warnings from inside Keras that a user of this trainer cannot act on.
_KERAS_DEPRECATIONS = (
    r'`tf\.keras\.backend\.set_learning_phase` is deprecated',
    r'`Model\.state_updates` will be removed')

flags.DEFINE_string('job_dir', None,
                    'Folder or gs://bucket/path for checkpoints, event files, '
                    'exports and results.json. Reruns resume from it. In a '
                    'tuning trial, its <trial id>/ subfolder. Default on '
                    'Vertex AI: $AIP_CHECKPOINT_DIR.')
flags.DEFINE_string('data_dir', None, cli.DATA_DIR_HELP)
flags.DEFINE_string('model_type', _DEFAULTS.model_type,
                    f'One of {", ".join(config_lib.MODEL_TYPES)}.')
flags.DEFINE_integer('train_steps', None,
                     'Global step to train to. Exclusive with --num-epochs.')
flags.DEFINE_float('num_epochs', None,
                   'Passes over the training set when --train-steps is not '
                   'given (default: '
                   f'{config_lib.describe_defaults("num_epochs")}).')
flags.DEFINE_integer('batch_size', None,
                     'Training batch size (default: '
                     f'{config_lib.describe_defaults("batch_size")}).')
flags.DEFINE_float('learning_rate', None,
                   'Initial learning rate (default: '
                   f'{config_lib.describe_defaults("learning_rate")}).')
flags.DEFINE_string('lr_schedule', _DEFAULTS.lr_schedule,
                    f'One of {", ".join(config_lib.LR_SCHEDULES)} (cosine decays '
                    'to 1% of the rate over the training steps).')
flags.DEFINE_string('optimizer', _DEFAULTS.optimizer,
                    f'One of {", ".join(config_lib.OPTIMIZERS)}.')
flags.DEFINE_string('activation', _DEFAULTS.activation,
                    f'One of {", ".join(config_lib.ACTIVATIONS)}.')
flags.DEFINE_list('hidden_units',
                  [str(u) for u in _DEFAULTS.hidden_units],
                  'Widths of the hidden layers, comma separated.')
flags.DEFINE_integer('first_layer_units', None,
                     'Width of the first hidden layer; the others keep their '
                     'ratio to it from --hidden-units (512,256,128 with 1024 '
                     'gives 1024,512,256). One number for a tuning job.')
flags.DEFINE_list('dropout', None,
                  'Dropout rate after each hidden layer: one rate for all '
                  'layers, or (custom and keras) one per layer. Default: '
                  f'{config_lib.describe_defaults("dropout")}.')
flags.DEFINE_float('input_dropout', None,
                   'Dropout rate on the input pixels, custom and keras models '
                   'only (default: ' + config_lib.describe_defaults(
                       'input_dropout', config_lib.INPUT_DROPOUT_MODELS) +
                   ').')
flags.DEFINE_boolean('batch_norm', _DEFAULTS.batch_norm,
                     'Batch normalization in the premade model.')
flags.DEFINE_boolean('scale_inputs', _DEFAULTS.scale_inputs,
                     'Scale pixels from 0-255 to 0-1 (--noscale-inputs keeps '
                     'raw values, as in the chapter\'s comparison).')
flags.DEFINE_integer('seed', _DEFAULTS.seed,
                     'Seed for weights, dropout and shuffling.')
flags.DEFINE_integer('checkpoint_secs', _DEFAULTS.checkpoint_secs,
                     'Most seconds between checkpoints.')
flags.DEFINE_integer('checkpoint_steps', _DEFAULTS.checkpoint_steps,
                     'Most steps between checkpoints: one is saved after '
                     'this many steps or --checkpoint-secs, whichever ends '
                     'first.')
flags.DEFINE_integer('eval_secs', _DEFAULTS.eval_secs,
                     'Least seconds between evaluations; one runs at a '
                     'checkpoint once this much time has passed, and always '
                     'at the end.')
flags.DEFINE_integer('keep_checkpoints', _DEFAULTS.keep_checkpoints,
                     'Newest checkpoints to keep.')
flags.DEFINE_integer('log_every_steps', _DEFAULTS.log_every_steps,
                     'Steps between progress lines.')
flags.DEFINE_integer('steps_per_run', None,
                     'Optimizer steps per Session.run, for speed; the model '
                     'is the same. Default: for the custom model, '
                     f'{config_lib.EXAMPLES_PER_RUN} examples per run (20 '
                     'steps at --batch-size 256), at most --log-every-steps; '
                     '1 for premade, keras, --distribute mirrored and '
                     'TF_CONFIG clusters. Progress lines, loss summaries and '
                     'checkpoints may then fall on a multiple of it; the run '
                     'still ends at exactly --train-steps.')
flags.DEFINE_string('distribute', _DEFAULTS.distribute,
                    'none: one device, or the parameter-server cluster that '
                    'TF_CONFIG describes; mirrored: every GPU of this machine '
                    '(MirroredStrategy; one device where there is none).')
flags.DEFINE_boolean('validate_only', False,
                     'Check the flags, TF_CONFIG, the data and the job dir, '
                     'then exit without training or writing anything but '
                     'the job dir itself.')


def normalize_argv(argv):
  """Maps --foo-bar[=v] to --foo_bar[=v], as gcloud passes --job-dir."""
  out = []
  for arg in argv:
    if arg.startswith('--') and len(arg) > 2:
      name, eq, value = arg[2:].partition('=')
      arg = '--' + name.replace('-', '_') + eq + value
    out.append(arg)
  return out


_HELP = ('-h', '-?', '--help', '--helpshort', '--helpfull')
_VERBOSITY_HELP = ('0 (default): progress lines and one-line errors; 1 also '
                   'TensorFlow\'s INFO log, its C++ log (as '
                   'TF_CPP_MIN_LOG_LEVEL sets it) and tracebacks.')


def parse_flags(argv):
  if any(arg in _HELP for arg in argv[1:]):
    print(help_text())
    sys.exit(0)
  try:
    rest = FLAGS(normalize_argv(argv))
  except flags.Error as e:
    cli.fail(f'error: {_hyphenated(str(e))} (see --help)')
  if len(rest) > 1:
    cli.fail(f'error: unexpected argument {rest[1]!r}; flags start with --')
  return rest


def _hyphenated(message):
  """absl's message with the flag names spelled as users type them."""
  unknown = re.match(r"Unknown command line flag '(\w+)'(?:\. Did you mean: "
                     r'(.*) \?)?$', message)
  if unknown:
    message = f'unknown flag --{unknown.group(1)}'
    if unknown.group(2):
      message += '; did you mean ' + ' or '.join(
          f'--{name.strip()}' for name in unknown.group(2).split(',')) + '?'
  return re.sub(r'--\w+', lambda m: m.group().replace('_', '-'), message)


def help_text():
  """--help: this module's flags (and --verbosity) as users spell them."""
  lines = ['usage: python -m trainer.task --job-dir DIR [flags]', '',
           __doc__.split('\n\n', maxsplit=1)[0], '', 'flags:']
  ours = FLAGS.get_flags_for_module(sys.modules[__name__])
  for flag in sorted(ours + [FLAGS['verbosity']], key=lambda f: f.name):
    name = ('[no]' if flag.boolean else '') + flag.name.replace('_', '-')
    text = _VERBOSITY_HELP if flag.name == 'verbosity' else flag.help
    if flag.default is not None and flag.name != 'verbosity':
      default = flag.default
      if isinstance(default, list):
        default = ','.join(default)
      text += f' (default: {str(default).lower() if flag.boolean else default})'
    lines.append(f'  --{name}')
    lines.extend(textwrap.wrap(text, 76, break_on_hyphens=False,
                               initial_indent='      ',
                               subsequent_indent='      '))
  return '\n'.join(lines)


def _parse_numbers(name, values, kind):
  try:
    return tuple(kind(v) for v in values)
  except ValueError:
    raise errors.UsageError(
        f'--{name}={",".join(values)} must be a comma-separated list of '
        f'{kind.__name__} values') from None


def _scale_layers(hidden_units, first_layer_units):
  """--hidden-units resized so that the first layer is first_layer_units wide."""
  if first_layer_units is None or not hidden_units or hidden_units[0] <= 0:
    return hidden_units
  if first_layer_units <= 0:
    raise errors.UsageError(
        f'--first-layer-units={first_layer_units} must be greater than 0')
  return tuple(max(1, round(u * first_layer_units / hidden_units[0]))
               for u in hidden_units)


def config_from_flags():
  if FLAGS.train_steps is not None and FLAGS.num_epochs is not None:
    raise errors.UsageError(
        'give either --train-steps or --num-epochs, not both')
  return config_lib.Config(
      job_dir=cloud.resolve_job_dir(FLAGS.job_dir),
      data_dir=FLAGS.data_dir,
      model_type=FLAGS.model_type,
      train_steps=FLAGS.train_steps,
      num_epochs=FLAGS.num_epochs,
      batch_size=FLAGS.batch_size,
      learning_rate=FLAGS.learning_rate,
      lr_schedule=FLAGS.lr_schedule,
      optimizer=FLAGS.optimizer,
      activation=FLAGS.activation,
      hidden_units=_scale_layers(
          _parse_numbers('hidden-units', FLAGS.hidden_units, int),
          FLAGS.first_layer_units),
      dropout=(None if FLAGS.dropout is None else
               _parse_numbers('dropout', FLAGS.dropout, float)),
      input_dropout=FLAGS.input_dropout,
      batch_norm=FLAGS.batch_norm,
      scale_inputs=FLAGS.scale_inputs,
      seed=FLAGS.seed,
      checkpoint_secs=FLAGS.checkpoint_secs,
      checkpoint_steps=FLAGS.checkpoint_steps,
      eval_secs=FLAGS.eval_secs,
      keep_checkpoints=FLAGS.keep_checkpoints,
      log_every_steps=FLAGS.log_every_steps,
      distribute=FLAGS.distribute,
      steps_per_run=FLAGS.steps_per_run)


def main(argv):
  del argv
  if FLAGS.verbosity < 1:
    tf.get_logger().setLevel('ERROR')
  for message in _KERAS_DEPRECATIONS:
    warnings.filterwarnings('ignore', message=message, category=UserWarning)
  cfg = None
  try:
    role = cluster.from_environment()
    cfg = config_from_flags()
    results = train.run(cfg, role, validate_only=FLAGS.validate_only)
  except errors.Error as e:
    _fail(f'error: {e}')
  except tf.compat.v1.train.NanLossDuringTrainingError:
    _fail('error: the training loss became NaN; the newest checkpoint (step '
          f'{jobdir.global_step(cfg.job_dir)}) in {cfg.job_dir} is kept; rerun '
          f'with a lower --learning-rate (now {cfg.learning_rate}) or a new '
          '--job-dir')
  except preemption.Preempted as e:
    if e.signum == signal.SIGINT:
      _stopped_by_ctrl_c(cfg, e.exit_status)
    _fail('preempted: stopped on SIGTERM; the newest checkpoint in '
          f'{cfg.job_dir} is step {jobdir.global_step(cfg.job_dir)}; rerun the '
          'same command to resume', status=e.exit_status)
  except KeyboardInterrupt:  # Ctrl-C outside training: nothing to save
    _stopped_by_ctrl_c(cfg, preemption.EXIT_STATUSES[signal.SIGINT])
  if results is not None:
    train.say(summary(results))
    print(json.dumps(results, sort_keys=True))


def summary(results):
  """The results in one line, for people; the JSON line follows it."""
  return (f'test accuracy {results["accuracy"]:.2%} after '
          f'{results["global_step"]:,} steps ({results["wall_time_secs"]:.0f} '
          f's); SavedModel: {results["export_dir"]}')


def _stopped_by_ctrl_c(cfg, status):
  if cfg is None or not tf.io.gfile.exists(cfg.job_dir):
    _fail('stopped: Ctrl-C (SIGINT) before training started', status=status)
  _fail('stopped: Ctrl-C (SIGINT); the newest checkpoint in '
        f'{cfg.job_dir} is step {jobdir.global_step(cfg.job_dir)}; rerun the '
        'same command to resume', status=status)


def _fail(line, status=1):
  """One line on stderr; with --verbosity 1 or more, the traceback first."""
  cli.fail(line, status, with_traceback=FLAGS.verbosity > 0)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
