"""`python -m trainer.task`: train, evaluate and export an MNIST classifier.

Flags use gcloud's spelling (--job-dir, --train-steps); the underscore forms
work too. A rerun with the same --job-dir resumes from its newest checkpoint;
the job dir is never deleted or cleared.
"""

import json
import os
import re
import signal
import sys
import textwrap
import time
import traceback
import warnings

from trainer import tflog

if __name__ == '__main__':
  tflog.quiet_unless_verbose(sys.argv[1:])

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from trainer import checkpoints
from trainer import cloud
from trainer import cluster
from trainer import config as config_lib
from trainer import data
from trainer import export
from trainer import inputs
from trainer import jobdir
from trainer import model
from trainer import preemption
from trainer import progress

FLAGS = flags.FLAGS
_DEFAULTS = config_lib.Config(job_dir='unused')
_POLL_SECS = 0.5  # how often an evaluator looks for a new checkpoint
# Warnings from inside Keras that a user of this trainer cannot act on.
_KERAS_DEPRECATIONS = (
    r'`tf\.keras\.backend\.set_learning_phase` is deprecated',
    r'`Model\.state_updates` will be removed')

flags.DEFINE_string('job_dir', None,
                    'Folder or gs://bucket/path for checkpoints, event files, '
                    'exports and results.json. Reruns resume from it. In a '
                    'tuning trial, its <trial id>/ subfolder. Default on '
                    'Vertex AI: $AIP_CHECKPOINT_DIR.')
flags.DEFINE_string('data_dir', None,
                    'Folder or gs://bucket/prefix with the four MNIST files '
                    '(.gz or not). Default: $MNIST_DATA_DIR, else downloaded '
                    'once into ~/.cache/mnist-estimator-trainer.')
flags.DEFINE_string('model_type', _DEFAULTS.model_type,
                    f'One of {", ".join(config_lib.MODEL_TYPES)}.')
flags.DEFINE_integer('train_steps', None,
                     'Global step to train to. Exclusive with --num-epochs.')
flags.DEFINE_float('num_epochs', None,
                   'Passes over the training set when --train-steps is not '
                   'given (default: premade 20, custom and keras 30).')
flags.DEFINE_integer('batch_size', None,
                     'Training batch size (default: premade 128, custom and '
                     'keras 256).')
flags.DEFINE_float('learning_rate', None,
                   'Initial learning rate (default: premade 0.001, custom and '
                   'keras 0.002).')
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
                  'premade 0, custom and keras 0.3.')
flags.DEFINE_float('input_dropout', None,
                   'Dropout rate on the input pixels (custom and keras; default '
                   '0.2).')
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
    sys.exit(f'error: {_hyphenated(str(e))} (see --help)')
  if len(rest) > 1:
    sys.exit(f'error: unexpected argument {rest[1]!r}; flags start with --')
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
    raise config_lib.UsageError(
        f'--{name}={",".join(values)} must be a comma-separated list of '
        f'{kind.__name__} values') from None


def _scale_layers(hidden_units, first_layer_units):
  """--hidden-units resized so that the first layer is first_layer_units wide."""
  if first_layer_units is None or not hidden_units or hidden_units[0] <= 0:
    return hidden_units
  if first_layer_units <= 0:
    raise config_lib.UsageError(
        f'--first-layer-units={first_layer_units} must be greater than 0')
  return tuple(max(1, round(u * first_layer_units / hidden_units[0]))
               for u in hidden_units)


def config_from_flags():
  if FLAGS.train_steps is not None and FLAGS.num_epochs is not None:
    raise config_lib.UsageError(
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


def run_config(cfg, role=None):
  role = role or cluster.Role()
  strategy = None
  if cfg.distribute == 'mirrored':
    if not role.is_local:
      raise config_lib.UsageError(
          '--distribute mirrored uses the devices of one machine, but '
          f'TF_CONFIG makes this {role.name} of a cluster that trains with '
          'parameter servers; drop --distribute or TF_CONFIG')
    strategy = tf.distribute.MirroredStrategy()
    if cfg.batch_size % strategy.num_replicas_in_sync:
      raise config_lib.UsageError(
          f'--batch-size={cfg.batch_size} must be a multiple of the '
          f'{strategy.num_replicas_in_sync} devices --distribute mirrored '
          'uses here: each device takes an equal share of a batch')
  return cluster.run_config(
      role,
      model_dir=cfg.job_dir,
      tf_random_seed=cfg.seed,
      save_checkpoints_secs=cfg.checkpoint_secs,
      keep_checkpoint_max=cfg.keep_checkpoints,
      log_step_count_steps=cfg.log_every_steps,
      save_summary_steps=cfg.summary_steps,
      train_distribute=strategy)


def run(cfg, role=None, validate_only=False):
  """Trains to cfg's target step (resuming), evaluates, exports; returns results.

  Every task of a cluster calls this; only the chief evaluates the final
  checkpoint, exports and returns results; the others return None. With
  validate_only, it returns after the checks, having trained nothing.
  """
  started = time.time()
  role = role or cluster.Role()
  cfg = cfg.with_steps_per_run(in_cluster=not role.is_local)
  cloud.check_bucket(cfg.job_dir)
  mnist = data.load(data.resolve_data_dir(cfg.data_dir))
  cfg = cfg.with_train_steps(mnist.train.size)
  jobdir.prepare(cfg)
  estimator = model.build_estimator(cfg, run_config(cfg, role))
  if role.is_chief or validate_only:
    # Other tasks of a cluster leave the checkpoints to the chief (they may
    # rotate while another task reads them).
    jobdir.check_checkpoint_fits(cfg.job_dir, estimator)
  start_step = jobdir.global_step(cfg.job_dir)
  if validate_only:
    _say(f'ok: the flags, data and job dir are valid; next: '
         f'{_plan(cfg, start_step)}')
    return None
  if role.is_chief:
    jobdir.record(cfg, start_step)
    _say(_plan(cfg, start_step))
  eval_fn = inputs.eval_input_fn(mnist.test, 1000, cfg.scale_inputs)
  speed = progress.Throughput(cfg.batch_size)

  metrics = results = None
  if start_step < cfg.train_steps and role.is_evaluator:
    _evaluate_new_checkpoints(cfg, estimator, eval_fn)
  elif start_step < cfg.train_steps:  # chief, worker, ps, or a local run
    metrics = _train_and_evaluate(cfg, role, estimator, mnist.train, eval_fn,
                                  speed)
  elif role.is_chief:
    results = _finished_results(cfg, start_step)
  if not role.is_chief:
    logging.info('%s done; the chief reports the results', role.name)
    return None
  if results is None:
    if metrics is None:  # the Estimator did not evaluate the final checkpoint
      metrics = _evaluate_and_export(
          estimator, cfg, eval_fn, start_step < cfg.train_steps or
          not export.newest_export(cfg.job_dir))
    results = _write_results(cfg, metrics, start_step, speed, started)
  cloud.report_metric(results)
  return results


def _plan(cfg, start_step):
  """What this run does, in a few words: said before it does it."""
  if start_step == 0:
    return f'starting {cfg.job_dir} from step 0 of {cfg.train_steps:,}'
  if start_step < cfg.train_steps:
    return (f'resuming from step {start_step:,} of {cfg.train_steps:,} in '
            f'{cfg.job_dir}')
  return (f'{cfg.job_dir} already holds step {start_step:,} of '
          f'{cfg.train_steps:,}: reporting its results')


def _say(line):
  """A line for the user on stderr, beside the progress lines."""
  print(line, file=sys.stderr, flush=True)


def _finished_results(cfg, step):
  """results.json of a job done at `step` whose export exists, else None."""
  previous = export.read_results(cfg.job_dir)
  if (previous and previous.get('global_step') == step and
      export.newest_export(cfg.job_dir)):
    logging.info('%s already holds step %d >= --train-steps %d: reporting '
                 'its results', cfg.job_dir, step, cfg.train_steps)
    return previous
  return None


def _write_results(cfg, metrics, start_step, speed, started):
  results = {
      'model_type': cfg.model_type,
      'global_step': int(metrics['global_step']),
      'resumed_from_step': start_step,
      'accuracy': float(metrics['accuracy']),
      'loss': float(metrics['loss']),
      'export_dir': export.newest_export(cfg.job_dir),
      'best_export_dir': export.newest_export(cfg.job_dir, 'best'),
      'examples_per_sec': speed.examples_per_sec,
      'wall_time_secs': round(time.time() - started, 1),
      'job_dir': cfg.job_dir,
      'trial': cloud.trial_id(),
      'config': jobdir.config_dict(cfg),
  }
  published = cloud.publish_model(results['best_export_dir'] or
                                  results['export_dir'])
  if published:
    logging.info('copied the best SavedModel to %s', published)
  export.write_results(cfg.job_dir, results)
  return results


def _train_and_evaluate(cfg, role, estimator, train, eval_fn, speed):
  """Runs this task's part; returns the final metrics if it evaluated them.

  Only a local run gets them back: in a cluster train_and_evaluate returns
  nothing, whatever the task evaluated.
  """
  logging.info('%s: %s %s model to step %d in %s', role.name,
               'training' if role.trains else 'serving the variables of a',
               cfg.model_type, cfg.train_steps, cfg.job_dir)
  strategy = estimator.config.train_distribute
  # Each device of a strategy takes its own share of --batch-size.
  batch_size = cfg.batch_size // (strategy.num_replicas_in_sync if strategy
                                  else 1)
  with preemption.StopOnSigterm(active=role.is_chief) as stop:
    train_spec = tf.estimator.TrainSpec(
        inputs.train_input_fn(train, batch_size, cfg.seed, cfg.scale_inputs,
                              shard=role.shard,
                              steps_per_run=cfg.steps_per_run),
        max_steps=cfg.train_steps,
        hooks=[stop.hook(),
               progress.ProgressHook(speed, cfg.train_steps,
                                     cfg.log_every_steps, cfg.steps_per_run)] +
        ([checkpoints.saver_hook(cfg.job_dir, cfg.checkpoint_secs,
                                 cfg.checkpoint_steps, cfg.steps_per_run)]
         if role.is_chief else []),
        saving_listeners=[stop.listener(), progress.PauseListener(speed)])
    eval_spec = tf.estimator.EvalSpec(
        eval_fn, steps=None, exporters=export.exporters(cfg.scale_inputs),
        start_delay_secs=0, throttle_secs=cfg.eval_secs)
    result = tf.estimator.train_and_evaluate(estimator, train_spec, eval_spec)
    stop.check()
  return result[0] if result else None


def _evaluate_new_checkpoints(cfg, estimator, eval_fn):
  """An evaluator's part: each new checkpoint, at most every --eval-secs.

  train_and_evaluate's own evaluator loop would sleep --eval-secs after the
  final evaluation and poll without pause when it is 0; tf.train's
  checkpoints_iterator would sleep out --eval-secs before it looked at the
  final checkpoint. This one polls, and evaluates the target step's
  checkpoint as soon as it exists.
  """
  logging.info('evaluator: evaluating new checkpoints in %s until step %d',
               cfg.job_dir, cfg.train_steps)
  evaluated, last = None, None
  while True:
    checkpoint = tf.train.latest_checkpoint(cfg.job_dir)
    final = checkpoint and _step_of(checkpoint) >= cfg.train_steps
    due = last is None or time.monotonic() - last >= cfg.eval_secs
    if checkpoint and checkpoint != evaluated and (final or due):
      evaluated, last = checkpoint, time.monotonic()
      metrics = estimator.evaluate(eval_fn, name=None,
                                   checkpoint_path=checkpoint)
      logging.info('evaluator: step %d accuracy %.4f',
                   metrics['global_step'], metrics['accuracy'])
      if metrics['global_step'] >= cfg.train_steps:
        return
    time.sleep(_POLL_SECS)


def _step_of(checkpoint):
  """The step in a checkpoint path, model.ckpt-<step>."""
  return int(checkpoint.rsplit('-', 1)[1])


def _evaluate_and_export(estimator, cfg, eval_fn, run_exporters):
  """Evaluates the newest checkpoint; exports it as train_and_evaluate does."""
  checkpoint = estimator.latest_checkpoint()
  metrics = estimator.evaluate(eval_fn, name=None, checkpoint_path=checkpoint)
  if run_exporters:
    logging.info('exporting step %d', metrics['global_step'])
    for exporter in export.exporters(cfg.scale_inputs):
      exporter.export(estimator,
                      os.path.join(cfg.job_dir, export.EXPORT_DIR,
                                   exporter.name),
                      checkpoint, metrics, is_the_final_export=True)
  return metrics


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
    results = run(cfg, role, validate_only=FLAGS.validate_only)
  except (config_lib.UsageError, data.DataError) as e:
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
    _say(summary(results))
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
  if FLAGS.verbosity > 0:
    traceback.print_exc()
  print(line, file=sys.stderr)
  sys.exit(status)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
