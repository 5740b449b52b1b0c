"""Inverted dropout from counter-based random bits, in as few ops as can be.

What dropout costs on a CPU is mostly TensorFlow's Philox kernel (2-5 ns
per uint32 word here) and the number of small ops a step runs, not the
masks' arithmetic (scripts/dropout_cost.py prices each piece). So:

- the pixels' mask is drawn and applied in the input pipeline
  (trainer.inputs), with the pixels' cast and scaling, before the step
  needs them;
- the hidden layers' masks of all K steps of a Session.run are made by a
  few large ops before the K-step loop, and a step only takes its own and
  multiplies;
- after a relu, the backward pass needs no mask of its own (relu_dropped).

A mask needs only enough random bits to give its rate: each unit gets 8 (16
where 8 would misstate the rate by more than 1% of it), cut from uint32
Philox words, and a unit is dropped when its value is below an integer
threshold t. The dropped share is then `t / 2**bits`, the *realized* rate
(0.3 -> 77/256 = 0.3008, 0.2 -> 51/256 = 0.1992), and kept units are scaled
by 1 / (1 - realized rate), so a layer's expected output is its input
exactly.

Counter-based: every mask is rows of a stream, Philox with key `key` and
counter word `layer` (and, for hidden layers, the replica), each row its
own fixed run of counters. A hidden layer's row r at global step s is stream
row s * batch_rows + r; a pixel row is the example's place in the epochs'
shuffled order, so N replicas drop one device's pixels. So a mask depends
only on (seed, layer, replica, row), never on how many steps a run takes
(--steps-per-run) or on a resume, and a partial batch's masks are the first
rows of a full one's.
"""

import math

import tensorflow as tf

# Widest error of the realized rate at 8 bits, as a share of the rate asked.
_MAX_RELATIVE_ERROR = 0.01
_UINT = {8: tf.uint8, 16: tf.uint16}
_PHILOX = 1  # TensorFlow's RNG_ALG_PHILOX
_WORDS_PER_COUNTER = 4  # Philox gives 4 uint32 words per counter value


def resolution_bits(rate):
  """Random bits per unit: 8 where they give `rate` to within 1% of it."""
  threshold = round(rate * 256)
  if 0 < threshold < 256 and abs(threshold / 256 - rate) <= (
      _MAX_RELATIVE_ERROR * rate):
    return 8
  return 16


def threshold(rate):
  """(bits, t): a unit is dropped when its `bits` random bits are < t."""
  bits = resolution_bits(rate)
  return bits, min(round(rate * 2**bits), 2**bits - 1)


def realized_rate(rate):
  """The share of units a mask for `rate` drops, on average."""
  bits, t = threshold(rate)
  return t / 2**bits


def keep_scale(rate):
  """What kept units are multiplied by: 1 / (1 - realized rate)."""
  return 1 / (1 - realized_rate(rate))


def random_values(key, layer, first_row, rows, width, bits, replica=0):
  """uint8/uint16 random values [rows, width]: rows first_row, first_row +
  1, ... of the stream (key, layer, replica). `first_row`, `rows` and
  `replica` may be tensors."""
  per_row = math.ceil(math.ceil(width * bits / 32) / _WORDS_PER_COUNTER)
  stream = tf.cast(replica, tf.uint64) * 2**32 + layer
  counter = tf.stack([tf.cast(first_row, tf.uint64) * per_row, stream])
  words = tf.raw_ops.StatelessRandomUniformFullIntV2(
      shape=tf.reshape(rows * per_row * _WORDS_PER_COUNTER, [1]),
      key=tf.reshape(tf.cast(key, tf.uint64), [1]), counter=counter,
      alg=_PHILOX, dtype=tf.uint32)
  values = tf.reshape(tf.bitcast(words, _UINT[bits]), tf.stack([rows, -1]))
  return values[:, :width]


def mask(values, rate, scale=None):
  """Random values -> a mask of 0 (dropped: value below the rate's
  threshold t) and `scale` (kept; default keep_scale(rate)), float32.

  floor((v + 2**bits - t) / 2**bits) is 1 exactly where v >= t, every step
  exact in float32 (integers below 2**17, powers of two). Float arithmetic
  is vectorized; comparisons and selects on booleans, and integer ops on
  uint8, are not, and cost several times more.
  """
  bits, t = threshold(rate)
  n = 2**bits
  kept = tf.math.floordiv(tf.cast(values, tf.float32) + (n - t), float(n))
  return kept * (keep_scale(rate) if scale is None else scale)


def rows_mask(key, layer, first_row, rows, width, rate, scale=None,
              replica=0):
  """mask() of rows first_row, ... of the stream (key, layer, replica),
  [rows, width], at the random bits `rate` needs."""
  bits, _ = threshold(rate)
  return mask(random_values(key, layer, first_row, rows, width, bits,
                            replica), rate, scale)


def relu_dropped(x, mask, scale):
  """relu(x) * mask, for a mask of 0 and `scale` (> 0).

  Its gradient is scale * ReluGrad(dy, output): the output is 0 exactly
  where the relu or the mask is. Left to autodiff, the multiply's gradient
  is a second full multiply by the mask, plus shape ops (the batch is
  dynamic); this is one pass, and the gradients are the same bits.
  """
  @tf.custom_gradient
  def forward(x):
    y = tf.nn.relu(x) * mask

    def grad(dy):
      return tf.raw_ops.ReluGrad(gradients=dy, features=y) * scale
    return y, grad
  return forward(x)


def step_masks(steps, rows, widths, rates, seed, step, batch_rows,
               replica=0):
  """Per layer (layer ids 1, 2, ...), the masks of `steps` steps from global
  step `step`: [steps, rows, width] of 0 (dropped) and keep_scale (kept),
  or None where the rate is 0.

  `rows` (<= batch_rows) may be a tensor; `batch_rows`, the rows of a full
  batch, must be the same for every run of a job: it places each step in
  the stream. Each replica of a synchronous job has streams of its own.
  """
  return [_step_masks(steps, rows, width, rate, seed, step, batch_rows, l,
                      replica) if rate else None
          for l, (width, rate) in enumerate(zip(widths, rates), 1)]


def _step_masks(steps, rows, width, rate, seed, step, batch_rows, layer,
                replica):
  masks = rows_mask(seed, layer, step * batch_rows, steps * batch_rows,
                    width, rate, replica=replica)
  return tf.reshape(masks, [steps, batch_rows, width])[:, :rows]
