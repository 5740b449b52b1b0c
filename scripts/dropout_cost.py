#!/usr/bin/env python
"""What dropout masks cost in a training step, piece by piece.

Trains the custom model's MLP (784-512-256-128-10, dropout 0.2 on the
pixels and 0.3 after each hidden layer) in a bare tf.function loop on
random in-memory data, once per way of making the masks, and times each.
The `fixed_*` variants draw their random numbers once, before the loop,
and do the rest of a mask each step, so the differences between variants
price the draw, the comparison and the multiply. (Work whose result only a
control dependency uses cannot price a piece: grappler prunes it.)
`bits_one_draw` is the trainer's (trainer.dropout.masks). Variants
alternate round by round, so load elsewhere on the machine hits them alike.
One JSON line per variant on stdout (examples/s, ms per step and ms per
step over `none`, from each variant's fastest round; the median round's ms
per step too), a table on stderr.

  python scripts/dropout_cost.py --batch-size 256 --rounds 5

With --trainer, the trainer's own training graph instead (the custom
model_fn at its default --steps-per-run, fed by train_input_fn from
--data-dir), in one process, rounds alternating: `none` (no dropout),
`trainer` (its default dropout) and `fixed_masks` (the same masks drawn
once, before training: the multiply alone). Medians, and each variant's
speed over `none`:

  python scripts/dropout_cost.py --trainer --data-dir DIR --batch-size 128
"""

import contextlib
import json
import statistics
import sys
import time

from trainer import cli

cli.quiet_unless_verbose(sys.argv)

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from trainer import config  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import data  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import dropout  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import inputs  # pylint: disable=g-import-not-at-top,wrong-import-position
from trainer import model  # pylint: disable=g-import-not-at-top,wrong-import-position

WIDTHS = (784, 512, 256, 128)  # the units each dropout applies to
RATES = (0.2, 0.3, 0.3, 0.3)
BLOCK = 25  # steps per tf.function call


def _float_uniform(x, seed):
  return tf.random.stateless_uniform(tf.shape(x), seed, alg='philox')


def _old_mask(x, rate, seed):
  """The trainer's mask before this script: a float draw, tf.where."""
  keep = _float_uniform(x, seed) >= rate
  return tf.where(keep, x / (1 - rate), tf.zeros_like(x))


def _float_mul(x, rate, seed):
  """A float draw, but applied as one multiply by a {0, scale} mask."""
  keep = _float_uniform(x, seed) >= rate
  return x * tf.where(keep, 1 / (1 - rate), 0.0)


def _bits(x, rate, seed, bits=None):
  bits = bits or dropout.resolution_bits(rate)
  return dropout.random_bits(tf.shape(x)[0], x.shape[-1], bits, seed)


def _bits16(x, rate, seed):
  t = round(rate * 2**16)
  keep = _bits(x, rate, seed, 16) >= tf.constant(t, tf.uint16)
  return x * tf.where(keep, 2**16 / (2**16 - t), 0.0)


_xla_mask = tf.function(jit_compile=True)(dropout.mask)
_xla_threefry_mask = tf.function(jit_compile=True)(
    lambda rows, units, rate, seed: tf.where(
        tf.random.stateless_uniform([rows, units], seed, alg='threefry') >=
        rate, 1 / (1 - rate), 0.0))


@tf.function(jit_compile=True)
def _xla_threefry_bits(rows, units, rate, seed):
  _, t = dropout.threshold(rate)
  drawn = tf.random.stateless_uniform([rows, units // 4], seed, minval=None,
                                      maxval=None, dtype=tf.uint32,
                                      alg='threefry')
  values = tf.reshape(tf.bitcast(drawn, tf.uint8), [rows, units])
  return tf.where(values >= tf.constant(t, tf.uint8),
                  1 / (1 - dropout.realized_rate(rate)), 0.0)


# Each variant: f(x, rate, seed) -> x after dropout.
PER_LAYER = {
    'none': lambda x, rate, seed: x,
    'float_where': _old_mask,
    'float_mul': _float_mul,
    'bits': lambda x, rate, seed: x * dropout.mask(
        tf.shape(x)[0], x.shape[-1], rate, seed),
    'bits16': _bits16,
    'xla_bits': lambda x, rate, seed: x * _xla_mask(
        tf.shape(x)[0], x.shape[-1], rate, seed),
    'xla_threefry': lambda x, rate, seed: x * _xla_threefry_mask(
        tf.shape(x)[0], x.shape[-1], rate, seed),
    'xla_threefry_bits': lambda x, rate, seed: x * _xla_threefry_bits(
        tf.shape(x)[0], x.shape[-1], rate, seed),
}


# Variants whose random numbers are drawn once, outside the loop: what the
# rest of their mask costs per step (the draw is the difference).
FIXED = {
    # the multiply alone
    'fixed_mask_mul': lambda x, fixed, rate: x * fixed['mask'],
    # the comparison, the {0, scale} mask and the multiply
    'fixed_bits': lambda x, fixed, rate: x * tf.where(
        fixed['bits'] >= tf.constant(dropout.threshold(rate)[1], tf.uint8),
        1 / (1 - dropout.realized_rate(rate)), 0.0),
    # float_where's comparison, division and tf.where
    'fixed_float_where': lambda x, fixed, rate: tf.where(
        fixed['uniform'] >= rate, x / (1 - rate), tf.zeros_like(x)),
}

VARIANTS = (['none', 'keras'] + list(PER_LAYER)[1:] + ['bits_one_draw'] +
            list(FIXED))


def _fixed_draws(batch_size):
  """Per layer: a mask, 8-bit random values and floats, drawn once."""
  out = []
  for i, (width, rate) in enumerate(zip(WIDTHS, RATES)):
    seed = tf.constant([3, i], tf.int64)
    out.append({
        'mask': dropout.mask(batch_size, width, rate, seed),
        'bits': dropout.random_bits(batch_size, width, 8, seed),
        'uniform': tf.random.stateless_uniform([batch_size, width], seed)})
  return out


def _train_block(variant, x, y, batch_size):
  """A tf.function running BLOCK training steps with that variant's masks."""
  hidden = [tf.keras.layers.Dense(w, activation='relu') for w in WIDTHS[1:]]
  output = tf.keras.layers.Dense(10)
  keras_dropouts = [tf.keras.layers.Dropout(r) for r in RATES]
  optimizer = tf.keras.optimizers.legacy.Adam(1e-3)
  batches = x.shape[0] // batch_size
  fixed = _fixed_draws(batch_size)

  def forward(xb, step):
    seed = tf.stack([tf.constant(1, tf.int64), tf.cast(step, tf.int64)])
    if variant in FIXED:
      layer_dropout = lambda h, i: FIXED[variant](h, fixed[i], RATES[i])
    elif variant == 'bits_one_draw':
      masks = dropout.masks(tf.shape(xb)[0], WIDTHS, RATES, seed)
      layer_dropout = lambda h, i: h * masks[i]
    elif variant == 'keras':
      layer_dropout = lambda h, i: keras_dropouts[i](h, training=True)
    else:
      layer_dropout = lambda h, i: PER_LAYER[variant](
          h, RATES[i], tf.random.experimental.stateless_fold_in(seed, i))
    h = layer_dropout(xb, 0)
    for i, layer in enumerate(hidden, 1):
      h = layer_dropout(layer(h), i)
    return output(h)

  @tf.function
  def block(first):
    loss = tf.constant(0.0)
    for step in tf.range(first, first + BLOCK):
      start = (step % batches) * batch_size
      xb, yb = x[start:start + batch_size], y[start:start + batch_size]
      with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            yb, forward(xb, step)))
      variables = [v for l in hidden + [output] for v in l.trainable_variables]
      optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss
  return block


TRAINER_VARIANTS = ('none', 'trainer', 'fixed_masks')


@contextlib.contextmanager
def _masks_drawn_once(batch_size):
  """trainer.dropout.masks answering with masks drawn once, in a graph of
  their own (constants in the trainer's, cut to each step's rows)."""
  draw = dropout.masks
  cache = {}

  def fixed(rows, widths, rates, seed, dtype=tf.float32):
    del seed
    key = (tuple(widths), tuple(rates))
    if key not in cache:
      with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        cache[key] = [None if m is None else session.run(m) for m in draw(
            batch_size, widths, rates, tf.constant([0, 0], tf.int64), dtype)]
    return [None if m is None else tf.constant(m)[:rows] for m in cache[key]]

  dropout.masks = fixed
  try:
    yield
  finally:
    dropout.masks = draw


def _trainer_session(variant, args, split):
  """A MonitoredSession over the custom model_fn's training graph."""
  no_dropout = {'dropout': (0.0,), 'input_dropout': 0.0}
  cfg = config.Config(job_dir='-', model_type='custom',
                      batch_size=args.batch_size, train_steps=10**9,
                      steps_per_run=args.steps_per_run,
                      **(no_dropout if variant == 'none' else {}))
  cfg = cfg.with_strategy('none').with_steps_per_run()
  fixed = (_masks_drawn_once(args.batch_size) if variant == 'fixed_masks'
           else contextlib.nullcontext())
  with tf.Graph().as_default(), fixed:
    batches = inputs.train_input_fn(split, args.batch_size, 42,
                                    steps_per_run=cfg.steps_per_run)()
    features, labels = tf.compat.v1.data.make_one_shot_iterator(
        batches).get_next()
    spec = model.custom_model_fn(features, labels,
                                 tf.estimator.ModeKeys.TRAIN, cfg)
    session = tf.compat.v1.train.MonitoredSession(
        hooks=list(spec.training_hooks))
  return session, spec.train_op, cfg.steps_per_run


def trainer_main(args):
  """--trainer: the variants' sessions, timed in alternating rounds."""
  split = data.load(data.resolve_data_dir(args.data_dir)).train
  sessions = {v: _trainer_session(v, args, split) for v in TRAINER_VARIANTS}
  for session, op, _ in sessions.values():
    for _ in range(3):
      session.run(op)  # warm up
  ms = {v: [] for v in sessions}
  for _ in range(args.rounds):
    for v, (session, op, k) in sessions.items():
      start = time.perf_counter()
      for _ in range(args.blocks):
        session.run(op)
      ms[v].append(1e3 * (time.perf_counter() - start) / (args.blocks * k))
  median = {v: statistics.median(times) for v, times in ms.items()}
  for v, (session, _, k) in sessions.items():
    session.close()
    print(json.dumps({
        'variant': v, 'batch_size': args.batch_size, 'steps_per_run': k,
        'median_ms_per_step': round(median[v], 3),
        'speed_over_none': round(median['none'] / median[v], 3),
        'rounds_ms_per_step': [round(t, 3) for t in ms[v]]}), flush=True)


def main(argv=None):
  parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--trainer', action='store_true',
                      help="time the trainer's own training graph instead: "
                      'none, trainer and fixed_masks (medians)')
  cli.add_data_dir(parser)
  parser.add_argument('--steps-per-run', type=int,
                      help="with --trainer: K (default: the trainer's)")
  parser.add_argument('--batch-size', type=int, default=256)
  parser.add_argument('--rounds', type=int, default=5,
                      help='timed rounds per variant (the fastest is reported; '
                      'with --trainer, the median)')
  parser.add_argument('--blocks', type=int, default=4,
                      help=f'tf.function calls of {BLOCK} steps per round '
                      '(with --trainer: Session.runs of K steps)')
  parser.add_argument('--variants', default=','.join(VARIANTS))
  args = parser.parse_args(argv)
  if args.trainer:
    trainer_main(args)
    return
  variants = cli.choices(parser, args.variants, VARIANTS, 'variant')
  tf.random.set_seed(0)
  x = tf.random.uniform([8192, WIDTHS[0]])
  y = tf.random.uniform([8192], maxval=10, dtype=tf.int32)
  blocks = {v: _train_block(v, x, y, args.batch_size) for v in variants}
  for block in blocks.values():
    block(tf.constant(0)).numpy()  # trace and warm up
  seconds = {v: [] for v in variants}
  for _ in range(args.rounds):
    for v in variants:
      start = time.perf_counter()
      for b in range(args.blocks):
        loss = blocks[v](tf.constant(b * BLOCK))
      float(loss)
      seconds[v].append((time.perf_counter() - start) / (args.blocks * BLOCK))
  # The fastest round: load elsewhere on the machine only ever slows one.
  step = {v: min(s) for v, s in seconds.items()}
  median = {v: statistics.median(s) for v, s in seconds.items()}
  base = step.get('none')
  lines = [f'{"variant":<18}{"examples/s":>12}{"ms/step":>9}{"over none":>10}']
  for v in variants:
    row = {'variant': v, 'batch_size': args.batch_size,
           'examples_per_sec': round(args.batch_size / step[v]),
           'ms_per_step': round(step[v] * 1e3, 3),
           'median_ms_per_step': round(median[v] * 1e3, 3),
           'ms_over_none': round((step[v] - base) * 1e3, 3) if base else None}
    print(json.dumps(row), flush=True)
    lines.append(f'{v:<18}{row["examples_per_sec"]:>12,}'
                 f'{row["ms_per_step"]:>9.2f}'
                 f'{row["ms_over_none"] if base else "-":>10}')
  print('\n'.join(lines), file=sys.stderr)


if __name__ == '__main__':
  main()
