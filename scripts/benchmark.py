#!/usr/bin/env python
"""Training speed of the trainer against Keras, a bare step and the hardware.

Every part runs in its own process on the same data, batch size and step
count, so one part's graphs, threads and memory cannot slow another; each
process reports its own peak resident memory. Prints one JSON line per
measurement on stdout, progress and a summary table on stderr.

  python scripts/benchmark.py --data-dir DIR
  python scripts/benchmark.py --batch-sizes 128 --parts bare,custom \\
      --steps-per-run 50
"""

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional, Tuple

from trainer import cli

cli.quiet_unless_verbose(sys.argv)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from trainer import config  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import data  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import dropout  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import inputs  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import model  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import train  # pylint: disable=g-import-not-at-top,wrong-import-position

HIDDEN = (512, 256, 128)
# Fewest steps a speed part times (at batch 8192, 50 steps are 410k examples).
MIN_STEPS = 50
TARGET_ACCURACY = 0.98


def log(message):
  print(f'[benchmark {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr,
        flush=True)


def peak_rss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def training_flops_per_example(hidden=HIDDEN):
  """Multiply-adds of the MLP x 2 (forward) x 3 (forward + two backward)."""
  widths = (784,) + tuple(hidden) + (10,)
  macs = sum(a * b for a, b in zip(widths, widths[1:]))
  return 6 * macs


# --- parts (each runs in a child process) ---------------------------------


def part_matmul(args):
  n = 2048
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n])
  matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
  matmul().numpy()
  repeats, start = 0, time.perf_counter()
  while time.perf_counter() - start < 5:
    matmul().numpy()
    repeats += 1
  gflops = 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9
  return {'gflops': gflops,
          'examples_per_sec': gflops * 1e9 / training_flops_per_example()}


def part_session_run(args):
  """One Session.run of a near-empty step (a variable's increment): what
  every run costs before the model does anything."""
  del args
  with tf.Graph().as_default():
    step = tf.compat.v1.train.get_or_create_global_step()
    increment = step.assign_add(1)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      for _ in range(200):
        session.run(increment)
      runs, start = 0, time.perf_counter()
      while time.perf_counter() - start < 3:
        session.run(increment)
        runs += 1
  return {'ms_per_run': 1000 * (time.perf_counter() - start) / runs}


def _input_part(input_dropout):
  def part(args):
    """train_input_fn alone, no model: the input pipeline's ceiling (with
    `input_dropout`, the custom model's, which the pipeline does)."""
    mnist = data.load(data.resolve_data_dir(args.data_dir))
    k = args.steps_per_run or config.default_steps_per_run(
        config.Config(job_dir='-', model_type='custom',
                      batch_size=args.batch_size))
    batches = iter(inputs.train_input_fn(mnist.train, args.batch_size, 42,
                                         steps_per_run=k,
                                         input_dropout=input_dropout)())
    next(batches)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < 5:
      next(batches)
      runs += 1
    return {'examples_per_sec': runs * k * args.batch_size /
                                (time.perf_counter() - start),
            'steps_per_run': k}
  return part


def _arrays(args):
  """Scaled float32 training images and int labels, in memory (for Keras)."""
  mnist = data.load(data.resolve_data_dir(args.data_dir))
  out = []
  for split in (mnist.train, mnist.test):
    images, labels = data.read_arrays(split)
    out.append((images.astype(np.float32) / 255.0, labels.astype(np.int32)))
  return out


def _adam():
  """The trainer's optimizer: legacy Adam, one fused kernel per variable."""
  return tf.keras.optimizers.legacy.Adam(1e-3)


def _keras_mlp():
  layers = [tf.keras.layers.Dense(u, activation='relu') for u in HIDDEN]
  return tf.keras.Sequential([tf.keras.Input((784,))] + layers +
                             [tf.keras.layers.Dense(10)])


# The custom model's default dropout: on the pixels, after each hidden layer.
DROPOUT = (0.2, 0.3, 0.3, 0.3)


def _keras_dropout_mlp():
  """The bare loop's MLP with Keras's Dropout layers where ours has masks."""
  layers = [tf.keras.Input((784,)), tf.keras.layers.Dropout(DROPOUT[0])]
  for units, rate in zip(HIDDEN, DROPOUT[1:]):
    layers += [tf.keras.layers.Dense(units, activation='relu'),
               tf.keras.layers.Dropout(rate)]
  return tf.keras.Sequential(layers + [tf.keras.layers.Dense(10)])


def _bare_part(masks):
  """The bare loop; masks: None, 'keras' (Dropout layers) or 'trainer'."""
  def part(args):
    """tf.function steps on in-memory tensors, no Python between steps.

    TensorFlow's own ceiling for this model: each call runs a block of steps
    in a graph loop, so no per-step dispatch or feeding cost remains. With
    masks, the same loop with dropout: Keras's layers, or the trainer's
    masks (trainer.dropout, seeded by step as the custom model seeds them).
    """
    (x, y), _ = _arrays(args)
    x, y = tf.constant(x), tf.constant(y)
    mlp = _keras_dropout_mlp() if masks == 'keras' else _keras_mlp()
    dense = [l for l in mlp.layers if isinstance(l, tf.keras.layers.Dense)]
    optimizer = _adam()
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batches = x.shape[0] // args.batch_size
    block = 50

    def logits(xb, step):
      if masks != 'trainer':
        return mlp(xb, training=True)
      drops = dropout.step_masks(1, tf.shape(xb)[0], (784,) + HIDDEN,
                                 DROPOUT, seed=0, step=step,
                                 batch_rows=args.batch_size)
      for layer, mask in zip(dense, drops):
        xb = layer(xb * mask[0])
      return xb

    @tf.function
    def steps(first):
      loss = tf.constant(0.0)
      for i in tf.range(first, first + block):
        start = (i % batches) * args.batch_size
        xb = x[start:start + args.batch_size]
        yb = y[start:start + args.batch_size]
        with tf.GradientTape() as tape:
          loss = loss_fn(yb, logits(xb, i))
        grads = tape.gradient(loss, mlp.trainable_variables)
        optimizer.apply_gradients(zip(grads, mlp.trainable_variables))
      return loss

    blocks = max(2, args.steps // block)
    steps(tf.constant(0)).numpy()  # trace and warm up
    start = time.perf_counter()
    for b in range(1, blocks):
      loss = steps(tf.constant(b * block))
    float(loss)
    seconds = time.perf_counter() - start
    return {'examples_per_sec': (blocks - 1) * block * args.batch_size /
            seconds}
  return part


def _keras_part(legacy_adam):
  def part(args):
    """model.fit fed as a careful Keras user would: tf.data from memory."""
    (x, y), _ = _arrays(args)
    dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x))
               .batch(args.batch_size).repeat().prefetch(tf.data.AUTOTUNE))
    model = _keras_mlp()
    optimizer = _adam() if legacy_adam else tf.keras.optimizers.Adam(1e-3)
    model.compile(optimizer, tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    timer = BatchTimer(warmup=min(100, args.steps // 10))
    model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0,
              callbacks=[timer])
    return {'examples_per_sec': timer.steps * args.batch_size / timer.seconds}
  return part


class BatchTimer(tf.keras.callbacks.Callback):
  """Times batches after warm-up, as the trainer's own figure does."""

  def __init__(self, warmup):
    super().__init__()
    self.warmup = warmup
    self.steps, self.seconds, self._start = 0, 0.0, None

  def on_train_batch_end(self, batch, logs=None):
    if batch + 1 == self.warmup:
      self._start = time.perf_counter()
    elif batch + 1 > self.warmup:
      self.steps = batch + 1 - self.warmup
      self.seconds = time.perf_counter() - self._start


def _trainer_config(args, model_type, job_dir, **overrides):
  settings = dict(job_dir=job_dir, data_dir=args.data_dir,
                  model_type=model_type, batch_size=args.batch_size,
                  train_steps=args.steps,
                  # One device (GPU 0 where there are GPUs), unless a part
                  # says otherwise: auto would mirror over every GPU.
                  distribute='none',
                  # Only the custom model runs several steps per run.
                  steps_per_run=(args.steps_per_run if model_type == 'custom'
                                 else None))
  settings.update(overrides)
  return config.Config(**settings)


def _trainer_part(model_type, **overrides):
  def part(args):
    """The trainer through train.run, exactly as python -m trainer.task."""
    tf.get_logger().setLevel('ERROR')
    with tempfile.TemporaryDirectory() as job_dir:
      results = train.run(_trainer_config(args, model_type, job_dir,
                                         **overrides))
    k = results['config']['steps_per_run']
    return {'examples_per_sec': results['examples_per_sec'],
            'accuracy': results['accuracy'], 'steps_per_run': k,
            # One Session.run of the trainer, its K steps included.
            'ms_per_run': 1000 * k * args.batch_size /
                          results['examples_per_sec']}
  return part


def _trainer_time98(model_type):
  def part(args):
    """Default settings (each model's own batch size and rate); evaluations
    every few seconds find the 98% time."""
    tf.get_logger().setLevel('ERROR')
    with tempfile.TemporaryDirectory() as job_dir:
      cfg = _trainer_config(args, model_type, job_dir, train_steps=None,
                            batch_size=None, checkpoint_secs=args.eval_secs,
                            eval_secs=args.eval_secs)
      start = time.time()
      results = train.run(cfg)
      reached = _first_eval_reaching(os.path.join(job_dir, 'eval'))
    return {'seconds_to_98': reached - start if reached else None,
            'final_accuracy': results['accuracy'],
            'total_seconds': results['wall_time_secs']}
  return part


def _first_eval_reaching(eval_dir):
  """Wall time of the first evaluation at or above the target accuracy."""
  times = []
  for path in tf.io.gfile.glob(os.path.join(eval_dir, 'events.out.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'accuracy' and value.simple_value >= TARGET_ACCURACY:
          times.append(event.wall_time)
  return min(times) if times else None


def part_time98_keras(args):
  """The trainer's Keras model (its keras type, with the same defaults as
  the other time-to-98% parts: batch 256, Adam 0.002 with cosine decay,
  dropout), but fit by Keras itself, epoch by epoch, until it reaches 98%."""
  start = time.time()
  (x, y), (x_test, y_test) = _arrays(args)
  cfg = config.Config(job_dir='unused', model_type='keras').with_train_steps(
      len(x))
  dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x))
             .batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE))
  mlp = model.keras_model(cfg)
  for epoch in range(1, int(cfg.num_epochs) + 1):
    mlp.fit(dataset, epochs=1, verbose=0)
    _, accuracy = mlp.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    if accuracy >= TARGET_ACCURACY:
      return {'seconds_to_98': time.time() - start, 'epochs': epoch,
              'final_accuracy': accuracy}
  return {'seconds_to_98': None, 'epochs': epoch, 'final_accuracy': accuracy}


# --- scale-out parts: several replicas of the custom model (no dropout) ----


def _logical_devices_part(count):
  def part(args):
    """MirroredStrategy over `count` logical CPU devices (the CPU split in
    this child process before TensorFlow starts), one global batch a step."""
    cpu, = tf.config.list_physical_devices('CPU')
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    return _trainer_part('custom', steps_per_run=1, distribute='mirrored',
                         **NO_DROPOUT)(args)
  return part


def _loopback_workers_part(workers):
  def part(args):
    """A chief and workers-1 workers on 127.0.0.1, each its own process
    (scripts/local_cluster.py --ps 0): synchronous multi-worker training
    for 2 or more, a local run for 1; the chief's examples/s counts global
    batches."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as job_dir:
      command = [sys.executable, os.path.join(root, 'scripts',
                                              'local_cluster.py'),
                 '--workers', str(workers - 1), '--ps', '0', '--',
                 '--job-dir', job_dir, '--model-type', 'custom',
                 '--batch-size', str(args.batch_size), '--train-steps',
                 str(args.steps), '--steps-per-run', '1', '--dropout', '0',
                 '--input-dropout', '0', '--eval-secs', '3600',
                 '--log-every-steps', str(args.steps)]
      if args.data_dir:
        command += ['--data-dir', args.data_dir]
      result = subprocess.run(command, capture_output=True, text=True,
                              check=True)
    results = json.loads(result.stdout.strip().splitlines()[-1])
    return {'examples_per_sec': results['examples_per_sec'],
            'accuracy': results['accuracy'], 'replicas': results['replicas'],
            'strategy': results['strategy']}
  return part


SPEED, TIME98 = 'speed', 'time to 98%'


@dataclasses.dataclass(frozen=True)
class Part:
  """One measurement, run in a child process."""
  run: Callable
  kind: str = SPEED
  default: bool = False  # in the default run
  trainer: bool = False  # compared with keras and bare
  k1: Optional[str] = None  # the same part at one step per Session.run
  compare: Tuple[str, ...] = ()  # other parts its ratios are taken against


NO_DROPOUT = {'dropout': (0.0,) * len(HIDDEN), 'input_dropout': 0.0}

PARTS = {
    'matmul': Part(part_matmul),
    'bare': Part(_bare_part(None), default=True),
    # The bare loop with the custom model's default dropout: the trainer's
    # masks, or Keras's Dropout layers (like with like for custom_dropout).
    'bare_dropout': Part(_bare_part('trainer'), default=True,
                         compare=('bare',)),
    'keras_dropout': Part(_bare_part('keras'), default=True,
                          compare=('bare', 'bare_dropout')),
    # What a Keras user picks: tf.keras.optimizers.Adam (the 2.15 default).
    'keras': Part(_keras_part(legacy_adam=False), default=True),
    # The same with the trainer's legacy Adam, to separate the two effects.
    'keras_legacy_adam': Part(_keras_part(legacy_adam=True)),
    'premade_k1': Part(_trainer_part('premade', steps_per_run=1),
                       trainer=True),
    'premade': Part(_trainer_part('premade', steps_per_run=None),
                    default=True, trainer=True, k1='premade_k1'),
    # What one Session.run costs, and the input pipeline alone.
    'session_run': Part(part_session_run),
    'input': Part(_input_part(0.0)),
    'input_dropout': Part(_input_part(DROPOUT[0]), compare=('input',)),
    # The same MLP as Keras and the bare step: no dropout; one step per
    # Session.run, then --steps-per-run (default: the trainer's default).
    'custom_k1': Part(_trainer_part('custom', steps_per_run=1, **NO_DROPOUT),
                      default=True, trainer=True),
    'custom': Part(_trainer_part('custom', **NO_DROPOUT), default=True,
                   trainer=True, k1='custom_k1'),
    # The custom model's defaults (input and per-layer dropout).
    'custom_dropout_k1': Part(_trainer_part('custom', steps_per_run=1),
                              default=True, trainer=True),
    'custom_dropout': Part(_trainer_part('custom'), default=True,
                           trainer=True, k1='custom_dropout_k1',
                           compare=('custom', 'bare_dropout',
                                    'keras_dropout')),
    # Scale-out (docs/distributed.md): 1 and 2 logical CPU devices, 1 and 2
    # workers on loopback; on a GPU machine, gpu_check.sh adds all GPUs.
    'devices_1': Part(_logical_devices_part(1)),
    'devices_2': Part(_logical_devices_part(2)),
    'workers_1': Part(_loopback_workers_part(1)),
    'workers_2': Part(_loopback_workers_part(2)),
    'gpus_all': Part(_trainer_part('custom', steps_per_run=1,
                                   distribute='mirrored', **NO_DROPOUT)),
    'gpus_all_k': Part(_trainer_part('custom', steps_per_run=None,
                                     distribute='mirrored', **NO_DROPOUT),
                       k1='gpus_all'),
    'time98_premade': Part(_trainer_time98('premade'), TIME98),
    'time98_custom': Part(_trainer_time98('custom'), TIME98),
    'time98_keras': Part(part_time98_keras, TIME98),
}


# --- driver -----------------------------------------------------------------


def run_child(part, batch_size, args):
  steps = args.steps or max(MIN_STEPS, args.examples // batch_size)
  command = [sys.executable, os.path.abspath(__file__), '--child', part,
             '--batch-size', str(batch_size), '--steps', str(steps),
             '--eval-secs', str(args.eval_secs)]
  if args.data_dir:
    command += ['--data-dir', args.data_dir]
  if args.steps_per_run:
    command += ['--steps-per-run', str(args.steps_per_run)]
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode:
    log(f'{part} failed:\n{result.stderr[-2000:]}')
    return None
  return json.loads(result.stdout.strip().splitlines()[-1])


def ratios(rows):
  """trainer/keras, trainer/bare, K/K=1 and each part against the parts it
  names in `compare`, per batch size, from speed rows.

  With --repeats, each part's median speed (a part's repeats alternate with
  the other parts', so a burst of load elsewhere hits them all alike).
  """
  measured = {}
  for r in rows:
    if r.get('examples_per_sec'):
      measured.setdefault((r['part'], r['batch_size']), []).append(
          r['examples_per_sec'])
  speed = {key: statistics.median(values) for key, values in measured.items()}
  out = []
  for (part, batch), value in sorted(speed.items()):
    spec = PARTS[part]
    bases = ((['keras', 'bare'] if spec.trainer else []) +
             ([spec.k1] if spec.k1 else []) + list(spec.compare))
    for base in bases:
      if (base, batch) in speed:
        out.append({'part': f'{part}/{base}', 'batch_size': batch,
                    'ratio': round(value / speed[(base, batch)], 3)})
  return out


def table(rows):
  lines = [f'{"part":<28}{"batch":>7}{"examples/s":>12}{"ratio":>8}'
           f'{"to 98% (s)":>12}{"peak MB":>9}']
  for r in rows:
    def cell(key, fmt):
      return format(r[key], fmt) if r.get(key) is not None else '-'
    lines.append(f'{r["part"]:<28}{r.get("batch_size", "-")!s:>7}'
                 f'{cell("examples_per_sec", ",.0f"):>12}'
                 f'{cell("ratio", ".2f"):>8}{cell("seconds_to_98", ".1f"):>12}'
                 f'{cell("peak_rss_mb", ".0f"):>9}')
  return '\n'.join(lines)


def parse_args(argv):
  parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
  cli.add_data_dir(parser)
  parser.add_argument('--batch-sizes', default='128,1024,8192',
                      help='comma-separated batch sizes for the speed parts')
  parser.add_argument('--examples', type=int, default=400_000,
                      help='training examples per speed measurement (steps: '
                      f'this over the batch size, at least {MIN_STEPS})')
  parser.add_argument('--steps', type=int,
                      help='training steps per speed measurement, instead of '
                      '--examples')
  parser.add_argument('--steps-per-run', type=int,
                      help='K of the custom and custom_dropout parts (default: '
                      "the trainer's default)")
  parser.add_argument('--repeats', type=int, default=1,
                      help='measure each speed part this many times, in turn '
                      'with the others; ratios use the medians')
  parser.add_argument('--parts', default=','.join(
      name for name, part in PARTS.items() if part.default),
                      help='which parts to run: ' + ', '.join(PARTS))
  parser.add_argument('--eval-secs', type=int, default=5,
                      help='evaluation cadence of the time-to-98%% runs')
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--batch-size', type=int, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  cli.choices(parser, args.parts, list(PARTS), 'part')
  return args


def main(argv=None):
  args = parse_args(argv)
  if args.child:
    result = PARTS[args.child].run(args)
    result['peak_rss_mb'] = round(peak_rss_mb(), 1)
    print(json.dumps(result))
    return
  parts = args.parts.split(',')
  jobs = [(p, int(b)) for b in args.batch_sizes.split(',') for p in parts
          if PARTS[p].kind == SPEED]
  jobs = jobs * args.repeats + [(p, 128) for p in parts
                                if PARTS[p].kind == TIME98]
  rows, started = [], time.time()
  for i, (part, batch_size) in enumerate(jobs, 1):
    elapsed = time.time() - started
    eta = f', ~{elapsed / (i - 1) * (len(jobs) - i + 1):.0f}s left' if i > 1 else ''
    log(f'{i}/{len(jobs)} {part} batch {batch_size}{eta}')
    result = run_child(part, batch_size, args)
    if result is not None:
      row = {'part': part, 'batch_size': batch_size, **result}
      rows.append(row)
      print(json.dumps(row), flush=True)
  for row in ratios(rows):
    rows.append(row)
    print(json.dumps(row), flush=True)
  log('done in %.0fs\n%s' % (time.time() - started, table(rows)))
  failed = len(jobs) - sum(1 for row in rows if 'ratio' not in row)
  if failed:
    sys.exit(f'error: {failed} of {len(jobs)} measurements failed (above)')


if __name__ == '__main__':
  main()
