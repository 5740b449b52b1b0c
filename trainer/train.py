"""The training run as a library: train, evaluate, export, report.

`trainer.task` is its command line; `trainer.sweep`, the scripts and the
tests call `run` directly. Importing this module parses no flags and
registers none. Each task of a job does its role's part (a function per
part, as tensorflow_estimator's _TrainingExecutor runs one per task type;
workers and parameter servers share one, as train_and_evaluate serves both):
the chief (or a local run) trains, evaluates the final checkpoint, exports
and writes results.json; a worker trains; a ps serves the variables; an
evaluator evaluates new checkpoints for TensorBoard.
"""

import dataclasses
import os
import sys
import time

from absl import logging
import tensorflow as tf

from trainer import checkpoints
from trainer import cloud
from trainer import cluster
from trainer import config as config_lib
from trainer import data
from trainer import errors
from trainer import export
from trainer import inputs
from trainer import jobdir
from trainer import model
from trainer import preemption
from trainer import progress

_POLL_SECS = 0.5  # how often an evaluator looks for a new checkpoint


@dataclasses.dataclass(frozen=True)
class _Job:
  """What every role's part needs, checked and built before any part runs."""
  cfg: config_lib.Config
  role: cluster.Role
  mnist: data.Mnist
  estimator: tf.estimator.Estimator
  start_step: int
  started: float  # time.time() when run() began

  @property
  def done(self):
    return self.start_step >= self.cfg.train_steps

  def eval_fn(self):
    return inputs.eval_input_fn(self.mnist.test, 1000, self.cfg.scale_inputs)


def estimator_config(cfg, role=None):
  """The tf.estimator.RunConfig of cfg for role (default: a local run)."""
  role = role or cluster.Role()
  strategy = None
  if cfg.distribute == 'mirrored':
    if not role.is_local:
      raise errors.UsageError(
          '--distribute mirrored uses the devices of one machine, but '
          f'TF_CONFIG makes this {role.name} of a cluster that trains with '
          'parameter servers; drop --distribute or TF_CONFIG')
    strategy = tf.distribute.MirroredStrategy()
    if cfg.batch_size % strategy.num_replicas_in_sync:
      raise errors.UsageError(
          f'--batch-size={cfg.batch_size} must be a multiple of the '
          f'{strategy.num_replicas_in_sync} devices --distribute mirrored '
          'uses here: each device takes an equal share of a batch')
  return cluster.run_config(
      role,
      model_dir=cfg.job_dir,
      tf_random_seed=cfg.seed,
      save_checkpoints_secs=cfg.checkpoint_secs,
      keep_checkpoint_max=cfg.keep_checkpoints,
      # progress.ProgressHook logs step, loss and speed; the Estimator's own
      # step counter and loss logger would add two hooks to every step.
      log_step_count_steps=None,
      save_summary_steps=cfg.summary_steps,
      train_distribute=strategy)


def run(cfg, role=None, validate_only=False):
  """Trains to cfg's target step (resuming), evaluates, exports; returns results.

  Every task of a cluster calls this; only the chief evaluates the final
  checkpoint, exports and returns results; the others return None. With
  validate_only, it returns after the checks, having trained nothing.
  """
  job = _prepare(cfg, role or cluster.Role(), validate_only, time.time())
  if validate_only:
    say(f'ok: the flags, data and job dir are valid; next: {_plan(job)}')
    return None
  return _PARTS[_part_name(job.role)](job)


def _prepare(cfg, role, validate_only, started):
  """The checks every role makes before it trains, and what they build."""
  cfg = cfg.with_steps_per_run(in_cluster=not role.is_local)
  cloud.check_bucket(cfg.job_dir)
  mnist = data.load(data.resolve_data_dir(cfg.data_dir))
  cfg = cfg.with_train_steps(mnist.train.size)
  jobdir.prepare(cfg)
  estimator = model.build_estimator(cfg, estimator_config(cfg, role))
  if role.is_chief or validate_only:
    # Other tasks of a cluster leave the checkpoints to the chief (they may
    # rotate while another task reads them).
    jobdir.check_checkpoint_fits(cfg.job_dir, estimator)
  return _Job(cfg, role, mnist, estimator, jobdir.global_step(cfg.job_dir),
              started)


def _part_name(role):
  return 'chief' if role.is_chief else role.task_type


def _run_chief(job):
  """The chief's (or a local run's) part: train, then evaluate and export the
  final checkpoint unless train_and_evaluate did, then write results.json.

  A job dir already at the target step with its export reports the
  results.json it holds.
  """
  cfg = job.cfg
  jobdir.record(cfg, job.start_step)
  say(_plan(job))
  results = _finished_results(job) if job.done else None
  if results is None:
    speed = progress.Throughput(cfg.batch_size)
    metrics = None if job.done else _train_and_evaluate(job, speed)
    if metrics is None:  # the Estimator did not evaluate the final checkpoint
      metrics = _evaluate_and_export(
          job, not job.done or not export.newest_export(cfg.job_dir))
    results = _results(job, metrics, speed)
    _publish(results)
    jobdir.write_results(cfg.job_dir, results)
  cloud.report_metric(results)
  return results


def _run_worker_or_ps(job):
  """A worker trains its share until a checkpoint reaches the target step; a
  parameter server serves the variables until the job ends. train_and_evaluate
  tells the two apart from the RunConfig."""
  if not job.done:
    _train_and_evaluate(job, progress.Throughput(job.cfg.batch_size))
  return _leave_to_chief(job)


def _run_evaluator(job):
  """An evaluator evaluates each new checkpoint, for TensorBoard."""
  if not job.done:
    _evaluate_new_checkpoints(job)
  return _leave_to_chief(job)


_PARTS = {'chief': _run_chief, 'worker': _run_worker_or_ps,
          'ps': _run_worker_or_ps, 'evaluator': _run_evaluator}


def _leave_to_chief(job):
  logging.info('%s done; the chief reports the results', job.role.name)
  return None


def _plan(job):
  """What this run does, in a few words: said before it does it."""
  cfg, start_step = job.cfg, job.start_step
  if start_step == 0:
    return f'starting {cfg.job_dir} from step 0 of {cfg.train_steps:,}'
  if start_step < cfg.train_steps:
    return (f'resuming from step {start_step:,} of {cfg.train_steps:,} in '
            f'{cfg.job_dir}')
  return (f'{cfg.job_dir} already holds step {start_step:,} of '
          f'{cfg.train_steps:,}: reporting its results')


def say(line):
  """A line for the user on stderr, beside the progress lines."""
  print(line, file=sys.stderr, flush=True)


def _finished_results(job):
  """results.json of a job done at its step whose export exists, else None.

  _plan has already told the user that the run reports these results.
  """
  previous = jobdir.read_results(job.cfg.job_dir)
  if (previous and previous.get('global_step') == job.start_step and
      export.newest_export(job.cfg.job_dir)):
    return previous
  return None


def _results(job, metrics, speed):
  """What results.json holds after a run."""
  cfg = job.cfg
  return {
      'model_type': cfg.model_type,
      'global_step': int(metrics['global_step']),
      'resumed_from_step': job.start_step,
      'accuracy': float(metrics['accuracy']),
      'loss': float(metrics['loss']),
      'export_dir': export.newest_export(cfg.job_dir),
      'best_export_dir': export.newest_export(cfg.job_dir, 'best'),
      'examples_per_sec': speed.examples_per_sec,
      'wall_time_secs': round(time.time() - job.started, 1),
      'job_dir': cfg.job_dir,
      'trial': cloud.trial_id(),
      'config': jobdir.config_dict(cfg),
  }


def _publish(results):
  """Copies the best SavedModel where the cloud job asks for it, if it does."""
  published = cloud.publish_model(results['best_export_dir'] or
                                  results['export_dir'])
  if published:
    logging.info('copied the best SavedModel to %s', published)


def _train_and_evaluate(job, speed):
  """Runs this task's part; returns the final metrics if it evaluated them.

  Only a local run gets them back: in a cluster train_and_evaluate returns
  nothing, whatever the task evaluated.
  """
  cfg, role, estimator = job.cfg, job.role, job.estimator
  logging.info('%s: %s %s model to step %d in %s', role.name,
               'training' if role.trains else 'serving the variables of a',
               cfg.model_type, cfg.train_steps, cfg.job_dir)
  strategy = estimator.config.train_distribute
  # Each device of a strategy takes its own share of --batch-size.
  batch_size = cfg.batch_size // (strategy.num_replicas_in_sync if strategy
                                  else 1)
  with preemption.StopOnSigterm(active=role.is_chief) as stop:
    train_spec = tf.estimator.TrainSpec(
        inputs.train_input_fn(job.mnist.train, batch_size, cfg.seed,
                              cfg.scale_inputs, shard=role.shard,
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
        job.eval_fn(), steps=None,
        exporters=export.exporters(cfg.scale_inputs),
        start_delay_secs=0, throttle_secs=cfg.eval_secs)
    result = tf.estimator.train_and_evaluate(estimator, train_spec, eval_spec)
    stop.check()
  return result[0] if result else None


def _evaluate_new_checkpoints(job):
  """Each new checkpoint, at most every --eval-secs, until the target step.

  train_and_evaluate's own evaluator loop would sleep --eval-secs after the
  final evaluation and poll without pause when it is 0; tf.train's
  checkpoints_iterator would sleep out --eval-secs before it looked at the
  final checkpoint. This one polls, and evaluates the target step's
  checkpoint as soon as it exists.
  """
  cfg, eval_fn = job.cfg, job.eval_fn()
  logging.info('evaluator: evaluating new checkpoints in %s until step %d',
               cfg.job_dir, cfg.train_steps)
  evaluated, last = None, None
  while True:
    checkpoint = tf.train.latest_checkpoint(cfg.job_dir)
    final = checkpoint and _step_of(checkpoint) >= cfg.train_steps
    due = last is None or time.monotonic() - last >= cfg.eval_secs
    if checkpoint and checkpoint != evaluated and (final or due):
      evaluated, last = checkpoint, time.monotonic()
      metrics = job.estimator.evaluate(eval_fn, name=None,
                                       checkpoint_path=checkpoint)
      logging.info('evaluator: step %d accuracy %.4f',
                   metrics['global_step'], metrics['accuracy'])
      if metrics['global_step'] >= cfg.train_steps:
        return
    time.sleep(_POLL_SECS)


def _step_of(checkpoint):
  """The step in a checkpoint path, model.ckpt-<step>."""
  return int(checkpoint.rsplit('-', 1)[1])


def _evaluate_and_export(job, run_exporters):
  """Evaluates the newest checkpoint; exports it as train_and_evaluate does."""
  cfg, estimator = job.cfg, job.estimator
  checkpoint = estimator.latest_checkpoint()
  metrics = estimator.evaluate(job.eval_fn(), name=None,
                               checkpoint_path=checkpoint)
  if run_exporters:
    logging.info('exporting step %d', metrics['global_step'])
    for exporter in export.exporters(cfg.scale_inputs):
      exporter.export(estimator,
                      os.path.join(cfg.job_dir, export.EXPORT_DIR,
                                   exporter.name),
                      checkpoint, metrics, is_the_final_export=True)
  return metrics
