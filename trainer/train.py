"""The training run as a library: train, evaluate, export, report.

`trainer.task` is its command line; `trainer.sweep`, the scripts and the
tests call `run` directly. Importing this module parses no flags and
registers none. Each task of a job does its role's part (a function per
part, as tensorflow_estimator's _TrainingExecutor runs one per task type;
workers and parameter servers share one, as train_and_evaluate serves both):
the chief (or a local run) trains, evaluates the final checkpoint, exports
and writes results.json; a worker trains; a ps serves the variables; an
evaluator evaluates new checkpoints for TensorBoard.

With MultiWorkerMirroredStrategy (--distribute multiworker) the Estimator
can only train_and_evaluate, and evaluates only on an evaluator listed in
the cluster; so the chief evaluates and exports the final checkpoint itself,
with a second estimator of the same model and no strategy.
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
from trainer import laststep
from trainer import model
from trainer import peers
from trainer import preemption
from trainer import progress
from trainer import tensorboard

_POLL_SECS = 0.5  # how often an evaluator looks for a new checkpoint


@dataclasses.dataclass(frozen=True)
class _Job:
  """What every role's part needs, checked and built before any part runs."""
  cfg: config_lib.Config
  role: cluster.Role
  mnist: data.Mnist
  estimator: tf.estimator.Estimator  # trains (train_and_evaluate)
  evaluating: tf.estimator.Estimator  # evaluates and exports
  start_step: int
  started: float  # time.time() when run() began
  placement: cluster.Placement

  @property
  def done(self):
    return self.start_step >= self.cfg.train_steps

  def eval_fn(self):
    return inputs.eval_input_fn(self.mnist.test, 1000, self.cfg.scale_inputs)


def estimator_config(cfg, role=None, placement=None):
  """The tf.estimator.RunConfig of cfg for role (default: a local run), on
  `placement` (default: where --distribute puts it here)."""
  role = role or cluster.Role()
  placement = placement or cluster.place(cfg.distribute, role)
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
      train_distribute=_strategy(placement, role))


def _strategy(placement, role):
  """The tf.distribute strategy of `placement`; None for none and ps (the
  Estimator places variables on parameter servers itself)."""
  if placement.strategy == 'mirrored':
    devices = list(placement.devices)
    # On logical CPU devices the default all-reduce hangs at the first step
    # (TF 2.15, graph mode); GPUs keep the default (NCCL).
    cpus = not any('GPU' in d for d in devices)
    return tf.distribute.MirroredStrategy(
        devices=devices,
        cross_device_ops=tf.distribute.ReductionToOneDevice() if cpus else None)
  if placement.strategy == 'multiworker':
    # Built eagerly, the strategy fails to pickle (tensorflow#46556).
    tf.compat.v1.disable_eager_execution()
    with cluster.shown_to_tensorflow(role):
      return tf.distribute.experimental.MultiWorkerMirroredStrategy()
  return None


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
  say(cluster.describe(job.placement.strategy, job.role,
                       job.placement.devices))
  with tensorboard.synced(job.cfg.job_dir,
                          active=job.role.is_chief or job.role.is_evaluator):
    return _PARTS[_part_name(job.role)](job)


def validate_shape(cfg, role, gpus):
  """The checks of `_placed` for a cluster whose replicas have `gpus` GPUs
  each, offline: what a job submitter can check before the job exists."""
  devices = [f'/device:GPU:{i}' for i in range(gpus)] or ['/device:CPU:0']
  cfg, placement = _placed(cfg, role, devices)
  say(f'ok: the flags fit this job: {placement.strategy}, '
      f'{placement.replicas} replica{"s" * (placement.replicas > 1)}, '
      f'--steps-per-run {cfg.steps_per_run}; the data and job dir are checked '
      'when it starts')


def _prepare(cfg, role, validate_only, started):
  """The checks every role makes before it trains, and what they build."""
  cfg, placement = _placed(cfg, role)
  cloud.check_bucket(cfg.job_dir)
  mnist = data.load(data.resolve_data_dir(cfg.data_dir))
  cfg = cfg.with_train_steps(mnist.train.size)
  jobdir.prepare(cfg)
  if placement.strategy == 'multiworker':
    # Graph mode before any model is built: Keras gives Sequential a v1 or
    # v2 base class, for the whole process, by the mode each model is built
    # in, so a model built eagerly here lost its attributes once the
    # strategy's graph mode rebuilt the class.
    tf.compat.v1.disable_eager_execution()
    # Evaluates and exports on this task alone: no strategy, no cluster.
    alone = cluster.Placement('none', placement.devices, 1)
    evaluating = model.build_estimator(
        cfg, estimator_config(cfg, placement=alone))
    estimator = (model.build_estimator(
        cfg, estimator_config(cfg, role, placement))
                 if role.trains and not validate_only else evaluating)
  else:
    estimator = evaluating = model.build_estimator(
        cfg, estimator_config(cfg, role, placement))
  if role.is_chief or validate_only:
    # Other tasks of a cluster leave the checkpoints to the chief (they may
    # rotate while another task reads them).
    jobdir.check_checkpoint_fits(cfg.job_dir, evaluating)
  return _Job(cfg, role, mnist, estimator, evaluating,
              jobdir.global_step(cfg.job_dir), started, placement)


def _placed(cfg, role, devices=None):
  """cfg with --distribute and --steps-per-run resolved for this task, and
  its Placement (on `devices`, default this machine's): the one place they
  are decided, before anything is built."""
  placement = cluster.place(cfg.distribute, role, devices)
  cfg = cfg.with_strategy(placement.strategy).with_steps_per_run()
  _check_batch_shares(cfg, placement.replicas)
  return cfg, placement


def _check_batch_shares(cfg, replicas):
  """Replicas in step must share the global batch equally."""
  if cfg.distribute in ('mirrored', 'multiworker') and (
      cfg.batch_size % replicas):
    raise errors.UsageError(
        f'--batch-size={cfg.batch_size} must be a multiple of the '
        f'{replicas} replicas --distribute {cfg.distribute} trains here: '
        'each takes an equal share of a batch; give for example '
        f'--batch-size={cfg.batch_size // replicas * replicas or replicas}')


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
    with _watching_peers(job):
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
      'strategy': cfg.distribute,
      'replicas': job.placement.replicas,
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
  # Under a strategy, the input_fn gives each replica its share of the
  # global batch; with ps each task trains whole batches.
  with preemption.StopOnSigterm(active=role.is_chief) as stop, (
      cluster.shown_to_tensorflow(role)), _watching_peers(job) as peer_watch:
    train_spec = tf.estimator.TrainSpec(
        inputs.train_input_fn(job.mnist.train, cfg.batch_size, cfg.seed,
                              cfg.scale_inputs, shard=role.shard,
                              steps_per_run=cfg.steps_per_run,
                              input_dropout=model.input_dropout_in_pipeline(
                                  cfg)),
        max_steps=cfg.train_steps,
        hooks=[stop.hook(),
               progress.ProgressHook(speed, cfg.train_steps,
                                     cfg.log_every_steps, cfg.steps_per_run)] +
        ([checkpoints.saver_hook(cfg.job_dir, cfg.checkpoint_secs,
                                 cfg.checkpoint_steps, cfg.steps_per_run)]
         if role.is_chief else []) +
        laststep.hooks(role, cfg.train_steps) +
        [peer_watch.hook(cfg.train_steps)],
        saving_listeners=[stop.listener(), progress.PauseListener(speed)])
    eval_spec = tf.estimator.EvalSpec(
        job.eval_fn(), steps=None,
        exporters=export.exporters(cfg.scale_inputs),
        start_delay_secs=0, throttle_secs=cfg.eval_secs)
    result = tf.estimator.train_and_evaluate(estimator, train_spec, eval_spec)
    stop.check()
  return result[0] if result else None


def _watching_peers(job):
  """Ends this task if one it needs is lost (trainer/peers.py)."""
  def finished():
    results = jobdir.read_results(job.cfg.job_dir) or {}
    return results.get('global_step', 0) >= job.cfg.train_steps
  return peers.watching(job.role, job.cfg.lost_task_secs, finished)


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
      metrics = job.evaluating.evaluate(eval_fn, name=None,
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
  cfg, estimator = job.cfg, job.evaluating
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
