"""serving/request.py and model.py: bodies -> signature and input, or a 4xx
line; a model that cannot be served -> one line. The fuzz tests feed
generated malformed bodies (tests/support/bodies.py) to the parser; the
usual body's fast reader (serving/pixel_body.py) must agree with the
general way on every body.

Runs in the test venv (these modules need NumPy, TensorFlow and
trainer/predict, not the server's packages); tests/test_serving_image.py
sends the same over HTTP to the server on current TensorFlow.
"""

import base64
import json

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from serving import model
from serving import pixel_body
from serving import request
from tests.support import bodies
from trainer import export

SIGNATURES = (export.DEFAULT_SIGNATURE, export.UINT8_SIGNATURE,
              export.IMAGE_SIGNATURE)
PIXELS = [[7] * 28] * 28
IMAGE = {'image_bytes': {'b64': base64.b64encode(b'\x89PNG...').decode()}}


def parse(body):
  raw = body if isinstance(body, bytes) else json.dumps(body).encode()
  return request.parse(raw, SIGNATURES)


@pytest.mark.parametrize('body, signature, dtype, shape', [
    ({'instances': [PIXELS, {'x': PIXELS}]}, export.DEFAULT_SIGNATURE,
     np.float32, (2, 28, 28)),
    ({'instances': [sum(PIXELS, [])]}, export.DEFAULT_SIGNATURE, np.float32,
     (1, 784)),
    ({'instances': [PIXELS], 'signature_name': export.UINT8_SIGNATURE},
     export.UINT8_SIGNATURE, np.uint8, (1, 28, 28)),
    ({'instances': [PIXELS],
      'parameters': {'signature_name': export.UINT8_SIGNATURE}},
     export.UINT8_SIGNATURE, np.uint8, (1, 28, 28)),
    ({'instances': [IMAGE, IMAGE['image_bytes']]}, export.IMAGE_SIGNATURE,
     object, (2,)),
])
def test_the_signature_and_input_a_body_gets(body, signature, dtype, shape):
  name, values = parse(body)
  assert name == signature
  assert values.dtype == dtype and values.shape == shape
  if dtype is object:
    assert values[0] == b'\x89PNG...'


@pytest.mark.parametrize('body, message', [
    (b'\xff', 'the request body is not JSON (not UTF-8)'),
    ([PIXELS], 'the request body is JSON but not an object'),
    ({'instances': []}, 'the request holds no instances'),
    ({'instances': [PIXELS, IMAGE]}, 'the request mixes pixel and image'),
    ({'instances': [IMAGE], 'signature_name': export.DEFAULT_SIGNATURE},
     "signature 'serving_default' takes pixel instances, and the request "
     'holds image ones'),
    ({'instances': [[[0.5] * 28] * 28]}, 'holds values in [0, 1]'),
    ({'instances': [[[2.5] * 28] * 28],
      'signature_name': export.UINT8_SIGNATURE}, 'takes whole numbers 0-255'),
    ({'instances': [PIXELS, [[1, 2]]]}, 'different shapes'),
    ({'instances': ['seven']}, 'neither pixels'),
])
def test_a_bad_body_is_a_400_naming_the_fix(body, message):
  with pytest.raises(request.RequestError) as error:
    parse(body)
  assert error.value.status == 400
  assert message in str(error.value) and '\n' not in str(error.value)


@pytest.mark.parametrize('uri, message', [
    ('', 'AIP_STORAGE_URI is not set'),
    ('/nonexistent/model', 'AIP_STORAGE_URI=/nonexistent/model holds no '
     'saved_model.pb; upload the SavedModel folder itself'),
])
def test_a_model_that_cannot_be_served_is_one_line(uri, message):
  with pytest.raises(model.ModelError) as error:
    model.Model(uri)
  assert str(error.value).startswith(message)
  assert '\n' not in str(error.value)


# Seeded (derandomize): the same bodies on every run.
FUZZ = settings(max_examples=2000, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def outcome(parse_fn, raw):
  """('ok', signature, array) or ('refused', status, message)."""
  try:
    name, values = parse_fn(raw, SIGNATURES)
  except request.RequestError as e:
    return 'refused', e.status, str(e)
  return 'ok', name, values


@FUZZ
@given(bodies.MALFORMED)
def test_any_body_is_parsed_or_refused_in_one_4xx_line(raw):
  found = outcome(request.parse, raw)
  if found[0] == 'refused':
    _, status, message = found
    assert 400 <= status < 500 and message and '\n' not in message
  else:
    _, name, values = found
    assert name in SIGNATURES
    assert values.dtype in (np.float32, np.uint8, object)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(bodies.pixel_body(), bodies.MALFORMED))
def test_the_fast_reader_agrees_with_the_general_way(raw):
  fast, general = outcome(request.parse, raw), outcome(
      request.parse_generally, raw)
  assert fast[:2] == general[:2]
  if fast[0] == 'ok':
    np.testing.assert_array_equal(fast[2], general[2])
  else:
    assert fast[2] == general[2]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(bodies.pixel_body())
def test_the_usual_body_takes_the_fast_way(raw):
  assert pixel_body.pixels(raw) is not None


def test_a_body_nested_5000_deep_is_a_400():
  for raw in (b'[' * 5000 + b']' * 5000,
              b'{"instances": [' + b'[' * 5000 + b']' * 5000 + b']}'):
    with pytest.raises(request.RequestError) as error:
      parse(raw)
    assert error.value.status == 400 and 'too deeply' in str(error.value)
