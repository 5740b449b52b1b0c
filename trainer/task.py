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
import typing
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
# Warnings from inside Keras that a user of this trainer cannot act on.
_KERAS_DEPRECATIONS = (
    r'`tf\.keras\.backend\.set_learning_phase` is deprecated',
    r'`Model\.state_updates` will be removed')


def _flag_type(field):
  """(absl's DEFINE_* name, element type for lists) from a field's type."""
  kind = field.type
  if typing.get_origin(kind) is typing.Union:  # Optional[X]
    (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
  if typing.get_origin(kind) is tuple:
    return 'list', typing.get_args(kind)[0]
  return {str: 'string', int: 'integer', float: 'float',
          bool: 'boolean'}[kind], None


def _define_flags():
  """One flag per Config setting that is a flag (trainer/config.py)."""
  for field in config_lib.flag_fields():
    define, _ = _flag_type(field)
    default = field.default
    if define == 'list' and default is not None:
      default = [str(v) for v in default]
    getattr(flags, f'DEFINE_{define}')(field.name, default,
                                       field.metadata['help'])


_define_flags()
# Flags of the command, not settings of a run.
flags.DEFINE_integer('first_layer_units', None,
                     'Width of the first hidden layer; the others keep their '
                     'ratio to it from --hidden-units (512,256,128 with 1024 '
                     'gives 1024,512,256). One number for a tuning job.')
flags.DEFINE_boolean('validate_only', False,
                     'Check the flags, TF_CONFIG, the data and the job dir, '
                     'then exit without training or writing anything but '
                     'the job dir itself.')
flags.DEFINE_integer('validate_gpus', None,
                     'With --validate-only: check only the flags against the '
                     'cluster in TF_CONFIG (or CLUSTER_SPEC) as if each '
                     'replica had this many GPUs, offline: no data, job dir '
                     'or bucket is read. scripts/submit_vertex.py runs it '
                     'before it submits.', lower_bound=0)


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
  """The Config of the flags: every flag setting, lists parsed."""
  if FLAGS.train_steps is not None and FLAGS.num_epochs is not None:
    raise errors.UsageError(
        'give either --train-steps or --num-epochs, not both')
  values = {}
  for field in config_lib.flag_fields():
    value = FLAGS[field.name].value
    define, element = _flag_type(field)
    if define == 'list' and value is not None:
      value = _parse_numbers(field.name.replace('_', '-'), value, element)
    values[field.name] = value
  values['job_dir'] = cloud.resolve_job_dir(values['job_dir'])
  values['hidden_units'] = _scale_layers(values['hidden_units'],
                                         FLAGS.first_layer_units)
  return config_lib.Config(**values)


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
    if FLAGS.validate_gpus is not None:
      if not FLAGS.validate_only:
        raise errors.UsageError('--validate-gpus checks the flags without '
                                'training; add --validate-only')
      train.validate_shape(cfg, role, FLAGS.validate_gpus)
      return
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
