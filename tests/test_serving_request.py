"""serving/request.py and model.py: bodies -> signature and input, or a 4xx
line; a model that cannot be served -> one line.

Runs in the test venv (these modules need NumPy, TensorFlow and
trainer/predict, not the server's packages); tests/test_serving_image.py
sends the same over HTTP to the server on current TensorFlow.
"""

import base64
import json

import numpy as np
import pytest

from serving import model
from serving import request
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
