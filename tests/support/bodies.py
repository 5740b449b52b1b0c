"""Request bodies for the serving fuzz tests: valid ones, and malformed ones
of every kind issue 24 names (Hypothesis strategies).

Used by tests/test_serving_request.py (the parser, in-process) and
tests/test_serving_image.py (the server, over HTTP).
"""

import base64
import gzip
import json
import random

from hypothesis import strategies as st

SIZE = 28
# JSON values of any type, nested a little.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(
        max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=4), inner, max_size=3),
    max_leaves=12)
# Numbers a pixel slot may get: in range, out of it, huge, not finite.
NUMBER = st.one_of(
    st.integers(0, 255), st.floats(0, 255), st.integers(-2 ** 70, 2 ** 70),
    st.sampled_from([1e308, -1e308, 0.5, 1e-320, 2 ** 64, 10 ** 400]),
    # Written bare by _odd_numbers: the standard library reads them.
    st.sampled_from(['NaN', 'Infinity', '-Infinity']))


@st.composite
def pixel_instance(draw, odd=False):
  """28 rows of 28 pixels, or 784, bare or as {"x": ...}; with `odd`, a few
  of them NUMBERs. The pixels come from a drawn seed: Hypothesis draws
  few values per example."""
  rng = random.Random(draw(st.integers(0, 2 ** 32 - 1)))
  value = [rng.randrange(256) for _ in range(SIZE * SIZE)]
  for _ in range(draw(st.integers(1, 3)) if odd else 0):
    value[draw(st.integers(0, SIZE * SIZE - 1))] = draw(NUMBER)
  if not draw(st.booleans()):
    value = [value[i:i + SIZE] for i in range(0, SIZE * SIZE, SIZE)]
  return {'x': value} if draw(st.booleans()) else value


@st.composite
def pixel_body(draw):
  """A valid body of 1-3 alike instances, in one of several spacings."""
  first = draw(pixel_instance())
  rng = random.Random(draw(st.integers(0, 2 ** 32 - 1)))
  instances = [_refill(first, rng) for _ in range(draw(st.integers(1, 3)))]
  if draw(st.booleans()):
    instances = [_floats(instance) for instance in instances]
  separators = draw(st.sampled_from([(',', ':'), (', ', ': '),
                                     (',\n ', ' :\t')]))
  indent = draw(st.sampled_from([None, 1]))
  return json.dumps({'instances': instances}, separators=separators,
                    indent=indent).encode()


def _refill(shape, rng):
  """An instance shaped as `shape`, with new pixels."""
  if isinstance(shape, dict):
    return {'x': _refill(shape['x'], rng)}
  if isinstance(shape, list):
    return [_refill(item, rng) for item in shape]
  return rng.randrange(256)


def _floats(instance):
  if isinstance(instance, dict):
    return {'x': _floats(instance['x'])}
  if isinstance(instance, list):
    return [_floats(item) for item in instance]
  return float(instance)


@st.composite
def _wrong_type_somewhere(draw):
  """A pixel body with one level (body, instances, instance, x, row,
  pixel, signature_name, parameters) replaced by any JSON value."""
  instance = [[0] * SIZE for _ in range(SIZE)]
  where = draw(st.sampled_from(['body', 'instances', 'instance', 'x', 'row',
                                'pixel', 'signature_name', 'parameters']))
  other = draw(JSON)
  body = {'instances': [instance, {'x': [row[:] for row in instance]}]}
  if where == 'body':
    body = other
  elif where == 'instances':
    body['instances'] = other
  elif where == 'instance':
    body['instances'][draw(st.integers(0, 1))] = other
  elif where == 'x':
    body['instances'][1]['x'] = other
  elif where == 'row':
    body['instances'][0][draw(st.integers(0, SIZE - 1))] = other
  elif where == 'pixel':
    body['instances'][0][draw(st.integers(0, SIZE - 1))][
        draw(st.integers(0, SIZE - 1))] = other
  elif where == 'signature_name':
    body['signature_name'] = other
  else:
    body['parameters'] = other
  return json.dumps(body).encode()


@st.composite
def _odd_numbers(draw):
  """A pixel body with huge, negative, fractional or non-finite values."""
  instance = draw(pixel_instance(odd=True))
  text = json.dumps({'instances': [instance]})
  return text.replace('"NaN"', 'NaN').replace(
      '"Infinity"', 'Infinity').replace('"-Infinity"', '-Infinity').encode()


@st.composite
def _truncated(draw):
  body = draw(pixel_body())
  return body[:draw(st.integers(0, len(body) - 1))]


@st.composite
def _deep(draw):
  depth = draw(st.integers(1, 6000))
  inner = b'[' * depth + b']' * depth
  return draw(st.sampled_from([inner, b'{"instances": ' + inner + b'}',
                               b'{"instances": [' + inner + b']}',
                               b'{"x": ' * 10 + inner + b'}' * 10]))


@st.composite
def _mixed_kinds(draw):
  image = {'image_bytes': {'b64': base64.b64encode(
      draw(st.binary(max_size=40))).decode()}}
  pixels = [[draw(st.integers(0, 255))] * SIZE] * SIZE
  instances = draw(st.permutations([image, pixels, {'b64': 'not base64!'}]))
  return json.dumps({'instances': instances}).encode()


@st.composite
def _unicode(draw):
  text = draw(st.text(min_size=1, max_size=60))
  encoding = draw(st.sampled_from(['utf-8', 'utf-16', 'utf-32', 'latin-1']))
  body = json.dumps({'instances': [text], text: text}, ensure_ascii=False)
  return body.encode(encoding, errors='replace')


@st.composite
def _gzipped(draw):
  return gzip.compress(draw(pixel_body()))


MALFORMED = st.one_of(
    _truncated(), _deep(), _odd_numbers(), _wrong_type_somewhere(),
    _mixed_kinds(), _unicode(), _gzipped(), st.binary(max_size=200),
    JSON.map(lambda value: json.dumps(value).encode()))
