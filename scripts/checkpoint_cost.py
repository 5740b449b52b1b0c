#!/usr/bin/env python
"""What checkpointing every N steps costs in training examples/s.

Trains the same model for the same steps with each cadence (--checkpoint-
steps N, and 0 for seconds only: --checkpoint-secs 60, the old default,
which saves nothing between the first and last step of a short run), each
run in its own process, the cadences interleaved round by round so that a
shared machine's load falls on all of them alike. Times the whole
Estimator.train call (checkpoint saves included, unlike the trainer's
examples/s, which leaves them out), and the seconds spent inside the
saves themselves, a figure the machine's other load disturbs less. Prints
one JSON line per run, then one per cadence with the medians.

  python scripts/checkpoint_cost.py --data-dir DIR
  python scripts/checkpoint_cost.py --steps 1000,500,0 --rounds 5 \\
      --model-type custom
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from trainer import cli


class _SaveTimer:
  """A checkpoint listener: the seconds spent saving (for the child)."""

  def __init__(self):
    self.seconds = 0.0
    self.saves = 0
    self._start = None

  def begin(self):
    pass

  def before_save(self, session, global_step_value):
    self._start = time.perf_counter()

  def after_save(self, session, global_step_value):
    self.seconds += time.perf_counter() - self._start
    self.saves += 1

  def end(self, session, global_step_value):
    pass


def train_once(args):
  """In a child process: trains once, prints {"seconds": ..., ...}."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from trainer import checkpoints
  from trainer import config as config_lib
  from trainer import data
  from trainer import inputs
  from trainer import model
  from trainer import train
  tf.get_logger().setLevel('ERROR')
  mnist = data.load(data.resolve_data_dir(args.data_dir))
  with tempfile.TemporaryDirectory() as job_dir:
    cfg = config_lib.Config(job_dir=job_dir, model_type=args.model_type,
                            train_steps=args.train_steps)
    estimator = model.build_estimator(cfg, train.estimator_config(cfg))
    hook = checkpoints.saver_hook(job_dir, cfg.checkpoint_secs,
                                  args.every_steps or 10**12)
    timer = _SaveTimer()
    hook._listeners.append(timer)  # pylint: disable=protected-access
    input_fn = inputs.train_input_fn(mnist.train, cfg.batch_size, cfg.seed,
                                     cfg.scale_inputs)
    start = time.perf_counter()
    estimator.train(input_fn, max_steps=cfg.train_steps, hooks=[hook])
    seconds = time.perf_counter() - start
    state = tf.train.get_checkpoint_state(job_dir)
    saved = len(state.all_model_checkpoint_paths)
  print(json.dumps({'seconds': seconds, 'batch_size': cfg.batch_size,
                    'checkpoints_kept': saved, 'saves': timer.saves,
                    'save_seconds': timer.seconds}))


def _cadences(text):
  """--steps: comma-separated step counts, 0 for seconds only."""
  try:
    return [int(s) for s in text.split(',')]
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'{text!r} is not a comma-separated list of step counts, e.g. '
        '1000,0') from None


def main():
  cli.quiet_unless_verbose([])
  parser = cli.ArgumentParser(description=__doc__.split('\n\n')[0])
  cli.add_data_dir(parser)
  parser.add_argument('--model-type', default='premade')
  parser.add_argument('--train-steps', type=int, default=4000)
  parser.add_argument('--steps', type=_cadences, default='1000,0',
                      help='cadences to compare, comma separated; 0: '
                           'seconds only (60 s)')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--every-steps', type=int, help=argparse.SUPPRESS)
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    return train_once(args)
  cadences = args.steps  # parsed by _cadences, the default too
  speeds = {c: [] for c in cadences}
  saving = {c: [] for c in cadences}  # share of the time spent saving
  for round_ in range(args.rounds):
    # Alternate the order too: the first run of a round is not always one.
    order = cadences if round_ % 2 == 0 else cadences[::-1]
    for every in order:
      child = [sys.executable, __file__, '--child', '--every-steps',
               str(every), '--model-type', args.model_type, '--train-steps',
               str(args.train_steps)] + (
                   ['--data-dir', args.data_dir] if args.data_dir else [])
      out = subprocess.run(child, check=True, capture_output=True,
                           text=True).stdout.strip().splitlines()[-1]
      run = json.loads(out)
      speed = args.train_steps * run['batch_size'] / run['seconds']
      speeds[every].append(speed)
      saving[every].append(run['save_seconds'] / run['seconds'])
      print(json.dumps({'round': round_, 'checkpoint_steps': every,
                        'model_type': args.model_type,
                        'seconds': round(run['seconds'], 2),
                        'examples_per_sec': round(speed),
                        'saves': run['saves'],
                        'save_seconds': round(run['save_seconds'], 3)}),
            flush=True)
  base = statistics.median(speeds[cadences[-1]])
  for every in cadences:
    median = statistics.median(speeds[every])
    print(json.dumps({'checkpoint_steps': every, 'model_type': args.model_type,
                      'median_examples_per_sec': round(median),
                      'vs_last': round(median / base, 3),
                      'median_share_saving': round(
                          statistics.median(saving[every]), 4)}), flush=True)


if __name__ == '__main__':
  main()
