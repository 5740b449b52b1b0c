#!/usr/bin/env python
"""What dropout costs in the custom model's own training graph, piece by piece.

Builds the custom model_fn's training graph at its default --steps-per-run,
fed by train_input_fn from --data-dir, once per variant, all in one process,
and times them in alternating rounds (so load elsewhere on the machine hits
them alike):

  none         no dropout
  trainer      the default dropout: the pixels' in the input pipeline, the
               hidden layers' masks made once per Session.run (trainer.dropout)
  no_pixels    the hidden layers' dropout only: prices the pipeline's part
  fixed_masks  the default, but the hidden masks drawn once before training
               (constants): prices the draw, leaving the multiplies

One JSON line per variant on stdout: the median ms per step, its speed over
`none`, and every round's figure.

  python scripts/dropout_cost.py --data-dir DIR --batch-size 256 --rounds 9
"""

import contextlib
import json
import statistics
import sys
import time

from trainer import cli

cli.quiet_unless_verbose(sys.argv)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from trainer import config  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import data  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import dropout  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import inputs  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import model  # pylint: disable=g-import-not-at-top,wrong-import-position

VARIANTS = ('none', 'trainer', 'no_pixels', 'fixed_masks')
SETTINGS = {'none': {'dropout': (0.0,), 'input_dropout': 0.0},
            'no_pixels': {'input_dropout': 0.0}}


@contextlib.contextmanager
def _hidden_masks_drawn_once():
  """trainer.dropout.step_masks answering with masks drawn once (graph
  constants, tiled to the run's steps and cut to its rows)."""
  draw = dropout.step_masks

  def fixed(steps, rows, widths, rates, seed, step, batch_rows, replica=0):
    del seed, step, replica
    rng = np.random.default_rng(0)
    return [None if not rate else tf.tile(tf.constant(
        (rng.random((1, batch_rows, width)) >= rate).astype(np.float32) *
        dropout.keep_scale(rate)), tf.stack([steps, 1, 1]))[:, :rows]
            for width, rate in zip(widths, rates)]

  dropout.step_masks = fixed
  try:
    yield
  finally:
    dropout.step_masks = draw


def _session(variant, args, split):
  """A MonitoredSession over the custom model_fn's training graph."""
  cfg = config.Config(job_dir='-', model_type='custom',
                      batch_size=args.batch_size, train_steps=10**9,
                      steps_per_run=args.steps_per_run,
                      **SETTINGS.get(variant, {}))
  cfg = cfg.with_strategy('none').with_steps_per_run()
  fixed = (_hidden_masks_drawn_once() if variant == 'fixed_masks'
           else contextlib.nullcontext())
  with tf.Graph().as_default(), fixed:
    batches = inputs.train_input_fn(
        split, args.batch_size, 42, steps_per_run=cfg.steps_per_run,
        input_dropout=model.input_dropout_in_pipeline(cfg))()
    features, labels = tf.compat.v1.data.make_one_shot_iterator(
        batches).get_next()
    spec = model.custom_model_fn(features, labels,
                                 tf.estimator.ModeKeys.TRAIN, cfg)
    session = tf.compat.v1.train.MonitoredSession(
        hooks=list(spec.training_hooks))
  return session, spec.train_op, cfg.steps_per_run


def main(argv=None):
  parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
  cli.add_data_dir(parser)
  parser.add_argument('--steps-per-run', type=int,
                      help="K (default: the trainer's)")
  parser.add_argument('--batch-size', type=int, default=256)
  parser.add_argument('--rounds', type=int, default=9,
                      help='timed rounds per variant (medians are reported)')
  parser.add_argument('--runs', type=int, default=10,
                      help='Session.runs of K steps per round')
  parser.add_argument('--variants', default=','.join(VARIANTS))
  args = parser.parse_args(argv)
  variants = cli.choices(parser, args.variants, VARIANTS, 'variant')
  split = data.load(data.resolve_data_dir(args.data_dir)).train
  sessions = {v: _session(v, args, split) for v in variants}
  for session, op, _ in sessions.values():
    for _ in range(3):
      session.run(op)  # warm up
  ms = {v: [] for v in sessions}
  for _ in range(args.rounds):
    for v, (session, op, k) in sessions.items():
      start = time.perf_counter()
      for _ in range(args.runs):
        session.run(op)
      ms[v].append(1e3 * (time.perf_counter() - start) / (args.runs * k))
  median = {v: statistics.median(times) for v, times in ms.items()}
  base = median.get('none')
  for v, (session, _, k) in sessions.items():
    session.close()
    print(json.dumps({
        'variant': v, 'batch_size': args.batch_size, 'steps_per_run': k,
        'median_ms_per_step': round(median[v], 3),
        'speed_over_none': round(base / median[v], 3) if base else None,
        'rounds_ms_per_step': [round(t, 3) for t in ms[v]]}), flush=True)


if __name__ == '__main__':
  main()
