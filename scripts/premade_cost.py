#!/usr/bin/env python
"""Where a premade (DNNClassifier) training step spends its time.

Peels the premade step apart, one layer per variant, all on the same MNIST
input, batch size and step count:

  estimator_ours   Estimator.train with the trainer's hooks (progress,
                   preemption, checkpoints every 1000 steps), summaries
                   every 100 steps and the Estimator's step counter and
                   loss logger (log_step_count_steps), which train.run
                   used to have
  estimator_nolog  the same without the step counter and loss logger, as
                   train.run now
  estimator_nockpt the same without checkpoints or summaries
  estimator        no hooks of ours at all (only the timing one), no
                   checkpoints, summaries or step counter
  estimator_const  the same on one constant batch (no input work at all)
  session          the canned model_fn's train op in a bare Session.run loop
                   (no MonitoredSession, no hooks, no fetches but the op)
  session_custom   the same loop on the custom model_fn without dropout:
                   our own Dense layers, loss and Adam in place of the canned
                   head, feature columns and DNN code

Variants alternate round by round and each reports its fastest round (load
elsewhere only ever slows one). Then one step of `session` is traced
(RunMetadata FULL_TRACE) and its op time summed by name scope. One JSON
line per variant and one for the trace on stdout, a table on stderr.

  python scripts/premade_cost.py --data-dir DIR --batch-size 128 --rounds 3
"""

import collections
import json
import sys
import tempfile
import time

from trainer import cli

cli.quiet_unless_verbose(sys.argv)

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from trainer import checkpoints  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import config  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import data  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import inputs  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import model  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import preemption  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import progress  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import train  # pylint: disable=g-import-not-at-top,wrong-import-position

TRAIN = tf.estimator.ModeKeys.TRAIN
# Estimator variants: (our hooks, checkpoints, summaries, step counter,
# constant input).
ESTIMATOR = {
    'estimator_ours': (True, True, True, True, False),
    'estimator_nolog': (True, True, True, False, False),
    'estimator_nockpt': (True, False, False, False, False),
    'estimator': (False, False, False, False, False),
    'estimator_const': (False, False, False, False, True),
}
VARIANTS = tuple(ESTIMATOR) + ('session', 'session_custom')


def _config(job_dir, args, model_type='premade', **overrides):
  cfg = config.Config(job_dir=job_dir, model_type=model_type,
                      batch_size=args.batch_size, train_steps=args.steps,
                      steps_per_run=1 if model_type == 'custom' else None,
                      **overrides)
  return cfg.with_steps_per_run()


def _constant_input(input_fn):
  """The first batch of input_fn, repeated: the pipeline does no work."""
  return lambda: input_fn().take(1).cache().repeat()


def _estimator_variant(args, mnist, ours, saves, summaries, counter,
                       constant):
  """examples/s of Estimator.train, timed as the trainer times itself."""
  with tempfile.TemporaryDirectory() as job_dir:
    cfg = _config(job_dir, args)
    run_config = train.estimator_config(cfg).replace(
        save_checkpoints_secs=None, save_checkpoints_steps=None)
    if not summaries:
      run_config = run_config.replace(save_summary_steps=0)
    # train.run turns the Estimator's step counter off; put it back to
    # price it.
    run_config = run_config.replace(
        log_step_count_steps=cfg.log_every_steps if counter else None)
    estimator = model.build_estimator(cfg, run_config)
    input_fn = inputs.train_input_fn(mnist.train, cfg.batch_size, cfg.seed)
    if constant:
      input_fn = _constant_input(input_fn)
    speed = progress.Throughput(cfg.batch_size)
    hooks = [progress.ProgressHook(speed, cfg.train_steps, 10**9)]
    stop = preemption.StopOnSigterm()
    if ours:
      hooks.append(stop.hook())
    listeners = []  # the Estimator takes them only with a CheckpointSaverHook
    if saves:
      hooks.append(checkpoints.saver_hook(job_dir, cfg.checkpoint_secs,
                                          cfg.checkpoint_steps))
      listeners = [stop.listener(), progress.PauseListener(speed)]
    estimator.train(input_fn, hooks=hooks, max_steps=cfg.train_steps,
                    saving_listeners=listeners)
    return speed.examples_per_sec


def _session_graph(args, mnist, model_type):
  """(graph, train op) of a model_fn fed by the trainer's input."""
  graph = tf.Graph()
  with graph.as_default(), tempfile.TemporaryDirectory() as job_dir:
    overrides = ({'dropout': (0.0,) * 3, 'input_dropout': 0.0}
                 if model_type == 'custom' else {})
    cfg = _config(job_dir, args, model_type, **overrides)
    estimator = model.build_estimator(cfg, train.estimator_config(cfg))
    tf.compat.v1.set_random_seed(cfg.seed)
    features, labels = tf.compat.v1.data.make_one_shot_iterator(
        inputs.train_input_fn(mnist.train, cfg.batch_size, cfg.seed)()
    ).get_next()
    tf.compat.v1.train.get_or_create_global_step()
    spec = estimator._call_model_fn(  # pylint: disable=protected-access
        features, labels, TRAIN, estimator.config)
  return graph, spec.train_op


def _session_variant(args, mnist, model_type, trace=False):
  graph, train_op = _session_graph(args, mnist, model_type)
  with graph.as_default(), tf.compat.v1.Session() as session:
    session.run([tf.compat.v1.global_variables_initializer(),
                 tf.compat.v1.local_variables_initializer()])
    for _ in range(20):
      session.run(train_op)
    if trace:
      return _trace(session, train_op)
    start = time.perf_counter()
    for _ in range(args.steps):
      session.run(train_op)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def _trace(session, train_op, steps=20):
  """Op time (microseconds per step) by name scope, over `steps` traced runs."""
  total = collections.Counter()
  for _ in range(steps):
    metadata = tf.compat.v1.RunMetadata()
    session.run(train_op, options=tf.compat.v1.RunOptions(
        trace_level=tf.compat.v1.RunOptions.FULL_TRACE),
                run_metadata=metadata)
    for device in metadata.step_stats.dev_stats:
      for node in device.node_stats:
        scope = _scope(node.node_name)
        total[scope] += node.all_end_rel_micros / steps
  return dict(total.most_common())


def _scope(name):
  """A readable group for an op name: gradients, optimizer updates, or its
  first two scopes."""
  parts = name.split('/')
  if parts[0] == 'training':
    return ('training: gradients' if 'gradients' in parts else
            'training: Adam updates')
  return '/'.join(parts[:2])


def _run(variant, args, mnist):
  if variant in ESTIMATOR:
    return _estimator_variant(args, mnist, *ESTIMATOR[variant])
  return _session_variant(args, mnist,
                          'custom' if variant == 'session_custom' else
                          'premade')


def main(argv=None):
  parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
  cli.add_data_dir(parser)
  parser.add_argument('--batch-size', type=int, default=128)
  parser.add_argument('--steps', type=int, default=1500,
                      help='training steps per variant and round')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--variants', default=','.join(VARIANTS))
  args = parser.parse_args(argv)
  variants = cli.choices(parser, args.variants, VARIANTS, 'variant')
  tf.get_logger().setLevel('ERROR')
  mnist = data.load(data.resolve_data_dir(args.data_dir))
  speeds = {v: [] for v in variants}
  for _ in range(args.rounds):
    for v in variants:
      speeds[v].append(_run(v, args, mnist))
  lines = [f'{"variant":<18}{"examples/s":>12}{"ms/step":>9}']
  for v in variants:
    best = max(speeds[v])
    print(json.dumps({'variant': v, 'batch_size': args.batch_size,
                      'examples_per_sec': round(best),
                      'ms_per_step': round(args.batch_size / best * 1e3, 3),
                      'all_rounds': [round(s) for s in speeds[v]]}),
          flush=True)
    lines.append(f'{v:<18}{best:>12,.0f}{args.batch_size / best * 1e3:>9.3f}')
  trace = _session_variant(args, mnist, 'premade', trace=True)
  print(json.dumps({'trace_us_per_step': {k: round(v, 1)
                                          for k, v in trace.items()}}))
  lines.append('traced premade step, op time by scope (us/step; ops on '
               'parallel threads overlap):')
  lines += [f'  {k:<40}{v:>9.1f}' for k, v in list(trace.items())[:15]]
  print('\n'.join(lines), file=sys.stderr)


if __name__ == '__main__':
  main()
