"""Inverted dropout seeded by (seed, step, layer), from a few random bits
per unit.

A float mask (Keras's, or `stateless_uniform(...) >= rate`) costs 32 random
bits per unit and a float comparison; on a CPU that draw was most of what
dropout cost (scripts/dropout_cost.py measures each piece). A mask needs
only enough bits to give the rate: here each unit gets 8 (16 where 8 would
misstate the rate by more than 1% of it), cut from uint32 draws of
TensorFlow's stateless Philox generator, and compared with an integer
threshold. The dropped share is then `threshold / 2**bits`, the *realized*
rate (0.3 -> 77/256 = 0.3008, 0.2 -> 51/256 = 0.1992), and the kept units
are scaled by 1 / (1 - realized rate), so the layer's expected output is
its input exactly. The mask is a float tensor of 0 and that scale, so the
forward pass and the gradient are one multiply each. `masks` cuts all
layers' masks of a step from one draw.

Stateless: a mask depends only on its seed and its shape, so a step draws
the same masks however many steps a Session.run takes (--steps-per-run)
and after a resume.
"""

import math

import tensorflow as tf

# Widest error of the realized rate at 8 bits, as a share of the rate asked.
_MAX_RELATIVE_ERROR = 0.01
_UINT = {8: tf.uint8, 16: tf.uint16}


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


def _words(units, bits):
  """uint32 words that hold `units` values of `bits` bits."""
  return math.ceil(units * bits / 32)


def _values(words, rows, units, bits):
  """uint32 words [rows * w] -> uint8/uint16 values [rows, units]."""
  per_word = 32 // bits
  width = _words(units, bits) * per_word
  values = tf.reshape(tf.bitcast(words, _UINT[bits]), [rows, width])
  return values if width == units else values[:, :units]


def _keep_scale(values, rate, dtype):
  """{0, 1 / (1 - realized rate)} where values are below / above threshold."""
  bits, t = threshold(rate)
  scale = 2**bits / (2**bits - t)
  return tf.where(values >= tf.constant(t, _UINT[bits]),
                  tf.constant(scale, dtype), tf.constant(0, dtype))


def random_bits(rows, units, bits, seed):
  """uint8 or uint16 random values [rows, units], from uint32 Philox draws."""
  words = tf.random.stateless_uniform(
      [rows * _words(units, bits)], seed, minval=None, maxval=None,
      dtype=tf.uint32, alg='philox')
  return _values(words, rows, units, bits)


def mask(rows, units, rate, seed, dtype=tf.float32):
  """[rows, units] of 0 (dropped) and 1 / (1 - realized rate) (kept)."""
  return _keep_scale(random_bits(rows, units, resolution_bits(rate), seed),
                     rate, dtype)


def masks(rows, widths, rates, seed, dtype=tf.float32):
  """One mask per layer ([rows, width], None where the rate is 0), all cut
  from one draw.

  One draw for all layers is one op big enough for TensorFlow to spread
  over the CPU's threads, where a layer's own draw runs on one (measured:
  scripts/dropout_cost.py, `bits` against `bits_one_draw`). Layer l's mask
  is always the l-th part of the draw, so it depends only on (seed, the
  rows, the layers' widths and rates).
  """
  layers = [(width, rate, resolution_bits(rate))
            for width, rate in zip(widths, rates) if rate]
  if not layers:
    return [None] * len(rates)
  sizes = [rows * _words(width, bits) for width, _, bits in layers]
  words = tf.random.stateless_uniform(
      [tf.add_n(sizes)], seed, minval=None, maxval=None, dtype=tf.uint32,
      alg='philox')
  parts = iter(tf.split(words, tf.stack(sizes)))
  return [_keep_scale(_values(next(parts), rows, width, resolution_bits(rate)),
                      rate, dtype) if rate else None
          for width, rate in zip(widths, rates)]
