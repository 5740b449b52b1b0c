"""A predict request's body -> (signature, input array), as TF Serving reads it.

The body is TF Serving's REST row format, which Vertex AI forwards as sent:
{"instances": [...]} with an optional "signature_name". The instances are
the ones trainer.predict reads (trainer/predict/request.py) and checks
(trainer/predict/readers.py), so the server refuses what `python -m
trainer.predict` refuses, in the same words. Those modules import no
tf.estimator and run on current TensorFlow; the image carries them as source.

The signature is "signature_name", else {"parameters": {"signature_name":
...}} (Vertex AI's predict API passes on only "instances" and "parameters";
raw-predict passes the body as is), else the instances choose: images go to
`image:serving_default`, pixels to `serving_default`. TF Serving would send
images to the default signature and fail; a Vertex AI batch prediction job
sends {"instances": [...]} with no signature name, so the server picks.

The usual body, pixels and nothing else, is read straight into one numpy
array (serving/pixel_body.py); any other in one pass of orjson, then one
np.array over all instances. Either is checked whole, vectorized. Nothing
a body holds raises anything but RequestError, so a body never gets a 500.
"""

import json

import numpy as np
import orjson

from serving import pixel_body
from trainer import export
from trainer.errors import InputError
from trainer.predict import readers
from trainer.predict import request as instances_lib

SOURCE = 'the request'
# What each signature's input takes, as numpy builds it from JSON.
_PIXEL_SIGNATURES = {export.DEFAULT_SIGNATURE: np.float32,
                     export.UINT8_SIGNATURE: np.uint8}


class RequestError(ValueError):
  """A request the server refuses: HTTP `status`, a one-line message."""

  def __init__(self, message, status=400):
    # One line even where it quotes an instance that holds line breaks.
    super().__init__(message.replace('\r', '\\r').replace('\n', '\\n'))
    self.status = status


def parse(raw, signatures):
  """(signature name, numpy input) for a body, or a RequestError saying why.

  `signatures` are the names the model has; the input is float32 or uint8
  pixels [n, 784] or [n, 28, 28], or an object array of image bytes [n].
  """
  pixels = pixel_body.pixels(raw)
  if pixels is not None:
    signature = _signature({}, 'pixels', signatures)
    return signature, _checked(pixels, signature)
  return parse_generally(raw, signatures)


def parse_generally(raw, signatures):
  """parse() for any body: orjson, then one np.array over the instances."""
  body = _json(raw)
  instances = body.get('instances')
  if not isinstance(instances, list):
    raise RequestError(
        'the request has no "instances" list; send {"instances": [...]} '
        '(TF Serving\'s row format; "inputs" is not served)')
  if not instances:
    raise RequestError('the request holds no instances; send at least one')
  kind, values = _instances(instances)
  signature = _signature(body, kind, signatures)
  if kind == 'image':
    return signature, np.array(values, dtype=object)
  return signature, _pixels(values, signature)


def _instances(instances):
  """('pixels' or 'image', one value per instance), one kind for all."""
  try:
    parsed = [instances_lib.parse_instance(i, SOURCE) for i in instances]
  except InputError as e:
    raise RequestError(str(e)) from None
  except RecursionError:  # quoting an instance nested ~1,000 deep
    raise _too_deep() from None
  kind = parsed[0][0]
  if any(other != kind for other, _ in parsed):
    raise RequestError('the request mixes pixel and image instances; one '
                       'request goes to one signature, so send one kind')
  return kind, [value for _, value in parsed]


def _json(raw):
  """The body as an object. orjson reads a valid body; the standard
  library reads what orjson refuses, so refusals keep its words and NaN,
  Infinity and UTF-16 read as before."""
  try:
    body = orjson.loads(raw)
  except orjson.JSONDecodeError:
    body = _json_slowly(raw)
  if not isinstance(body, dict):
    raise RequestError('the request body is JSON but not an object; send '
                       '{"instances": [...]}')
  return body


def _json_slowly(raw):
  try:
    return json.loads(raw)
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    reason = getattr(e, 'msg', None) or 'not UTF-8'
    raise RequestError(f'the request body is not JSON ({reason}); send '
                       '{"instances": [...]}') from None
  except RecursionError:
    raise _too_deep() from None


def _too_deep():
  return RequestError('the request nests arrays or objects too deeply to '
                      'read; an instance is 28 rows of 28 numbers, '
                      '[[0, ...], ...], or {"x": ...} around them')


def _signature(body, kind, signatures):
  """The signature named in the body, else the one for the instances."""
  default = (export.IMAGE_SIGNATURE if kind == 'image' else
             export.DEFAULT_SIGNATURE)
  parameters = body.get('parameters')
  name = body.get('signature_name') or (
      parameters.get('signature_name') if isinstance(parameters, dict)
      else None) or default
  if not isinstance(name, str):
    raise RequestError(f'the request\'s signature_name is {_kind_of(name)}, '
                       f'not a name; send one of '
                       f'{", ".join(sorted(signatures))}')
  if name not in signatures:
    raise RequestError(f'the model has no signature {name!r}; it has '
                       f'{", ".join(sorted(signatures))}')
  if (name == export.IMAGE_SIGNATURE) != (kind == 'image'):
    wants = 'image' if name == export.IMAGE_SIGNATURE else 'pixel'
    raise RequestError(f'signature {name!r} takes {wants} instances, and the '
                       f'request holds {kind} ones; send '
                       f'{_example(name)} or drop "signature_name"')
  return name


def _example(signature):
  if signature == export.IMAGE_SIGNATURE:
    return f'{{"{export.IMAGE_INPUT}": {{"b64": "..."}}}}'
  return f'{{"{export.SERVING_INPUT}": [28 rows of 28 numbers 0-255]}}'


def _kind_of(value):
  return {list: 'a list', dict: 'an object', bool: 'true/false'}.get(
      type(value), 'a number')


def _pixels(values, signature):
  try:
    array = np.array(values, dtype=np.float64)
  except (TypeError, ValueError, RecursionError):
    raise RequestError('the request holds instances of different shapes or '
                       'with values that are not numbers') from None
  except OverflowError:  # an integer past float64, e.g. 1 followed by 400 zeros
    raise RequestError('the request holds a number too large to be a pixel; '
                       'pixels must be 0-255') from None
  return _checked(array, signature)


def _checked(array, signature):
  """The float64 pixels as the signature's dtype, once checked."""
  try:
    array = readers.check_pixels(array, SOURCE)
  except InputError as e:
    raise RequestError(str(e)) from None
  dtype = _PIXEL_SIGNATURES[signature]
  if dtype == np.uint8 and not np.array_equal(array, np.round(array)):
    raise RequestError(f'signature {signature!r} takes whole numbers 0-255; '
                       'the request holds fractions')
  return array.astype(dtype)
