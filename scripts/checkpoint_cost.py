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

--rules compares the trainer's rule (`cost`: a step count held back by what
saves cost, trainer/checkpoints.py) with the step count alone (`steps`); a
tiny model (--hidden-units 16) shows them at a GPU-like step rate.

  python scripts/checkpoint_cost.py --data-dir DIR
  python scripts/checkpoint_cost.py --steps 1000,500,0 --rounds 5 \\
      --model-type custom
  python scripts/checkpoint_cost.py --hidden-units 16 --batch-size 32 \\
      --steps 100 --rules cost,steps --train-steps 20000
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
                            train_steps=args.train_steps,
                            batch_size=args.batch_size,
                            **({'hidden_units': args.hidden_units}
                               if args.hidden_units else {}))
    estimator = model.build_estimator(cfg, train.estimator_config(cfg))
    hook = checkpoints.saver_hook(
        job_dir, cfg.checkpoint_secs, args.every_steps or 10**12,
        factor=checkpoints.BUDGET_FACTOR if args.rule == 'cost' else 0)
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


def _units(text):
  try:
    return tuple(int(u) for u in text.split(','))
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'{text!r} is not a comma-separated list of layer widths, e.g. '
        '16') from None


def _rules(text):
  rules = text.split(',')
  if not set(rules) <= {'cost', 'steps'}:
    raise argparse.ArgumentTypeError(
        f'{text!r}: the rules are cost and steps, comma separated')
  return rules


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
  parser.add_argument('--hidden-units', type=_units,
                      help='layer widths (default: the model\'s)')
  parser.add_argument('--batch-size', type=int)
  parser.add_argument('--rules', type=_rules, default='cost',
                      help='cost (the trainer\'s), steps (the step count '
                           'alone), or both, comma separated')
  parser.add_argument('--rule', help=argparse.SUPPRESS)
  parser.add_argument('--every-steps', type=int, help=argparse.SUPPRESS)
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    return train_once(args)
  # (cadence, rule) pairs; the rules differ only where a step count
  # saves (cadence 0 is seconds only).
  variants = [(every, rule) for every in args.steps
              for rule in (args.rules if every else args.rules[:1])]
  speeds = {v: [] for v in variants}
  saving = {v: [] for v in variants}  # share of the time spent saving
  saves = {v: [] for v in variants}
  for round_ in range(args.rounds):
    # Alternate the order too: the first run of a round is not always one.
    for every, rule in variants if round_ % 2 == 0 else variants[::-1]:
      run = _child(args, every, rule)
      speed = args.train_steps * run['batch_size'] / run['seconds']
      speeds[every, rule].append(speed)
      saving[every, rule].append(run['save_seconds'] / run['seconds'])
      saves[every, rule].append(run['saves'])
      print(json.dumps({'round': round_, 'checkpoint_steps': every,
                        'rule': rule, 'model_type': args.model_type,
                        'hidden_units': args.hidden_units,
                        'seconds': round(run['seconds'], 2),
                        'examples_per_sec': round(speed),
                        'saves': run['saves'],
                        'save_seconds': round(run['save_seconds'], 3)}),
            flush=True)
  base = statistics.median(speeds[variants[-1]])
  for every, rule in variants:
    median = statistics.median(speeds[every, rule])
    print(json.dumps({'checkpoint_steps': every, 'rule': rule,
                      'model_type': args.model_type,
                      'hidden_units': args.hidden_units,
                      'median_examples_per_sec': round(median),
                      'vs_last': round(median / base, 3),
                      'median_saves': statistics.median(saves[every, rule]),
                      'median_share_saving': round(
                          statistics.median(saving[every, rule]), 4)}),
          flush=True)


def _child(args, every, rule):
  """One training run in its own process; its JSON line."""
  child = [sys.executable, __file__, '--child', '--every-steps', str(every),
           '--rule', rule, '--model-type', args.model_type, '--train-steps',
           str(args.train_steps)]
  if args.data_dir:
    child += ['--data-dir', args.data_dir]
  if args.hidden_units:
    child += ['--hidden-units', ','.join(map(str, args.hidden_units))]
  if args.batch_size:
    child += ['--batch-size', str(args.batch_size)]
  out = subprocess.run(child, check=True, capture_output=True,
                       text=True).stdout.strip().splitlines()[-1]
  return json.loads(out)

if __name__ == '__main__':
  main()
