"""The request handler that Vertex AI's CPR model server runs.

google.cloud.aiplatform.prediction.model_server (the image's entry point)
reads Vertex AI's custom-container contract: it listens on 0.0.0.0 at
AIP_HTTP_PORT, answers GET AIP_HEALTH_ROUTE once this handler has loaded
the model from AIP_STORAGE_URI, and passes each POST to AIP_PREDICT_ROUTE
to `handle`. The handler answers as TF Serving's REST API does:
{"predictions": [...]}, or {"error": "..."} with a 4xx status for a request
the model cannot take. The server stays up after any of them. Concurrent
requests share model calls (serving/batching.py).
"""

import os
import sys

from fastapi import Response
import tensorflow as tf

from serving import batching
from serving import model as model_lib
from serving import request as request_lib
from serving import response
from serving import settings as settings_lib


class Handler:
  """Loads the model once per worker; turns bodies into predictions."""

  def __init__(self, artifacts_uri, predictor=None):
    del predictor  # the contract's hook for CPR predictors: not needed
    try:
      settings = settings_lib.read(os.environ)
      self.model = model_lib.Model(artifacts_uri)
    except (settings_lib.SettingError, model_lib.ModelError) as e:
      sys.exit(f'error: {e}')  # one line, not the server's traceback
    self.max_bytes = settings['MAX_REQUEST_BYTES']
    self.batcher = batching.Batcher(
        self.model.predict, settings['BATCH_WINDOW_MS'] / 1000,
        settings['BATCH_MAX_ROWS'])
    print(f'serving {artifacts_uri}: signatures '
          f'{", ".join(sorted(self.model.signatures))}; '
          + ', '.join(f'{k}={v}' for k, v in settings.items()),
          file=sys.stderr, flush=True)

  async def handle(self, request):
    try:
      with self.batcher.arriving():
        raw = await _body(request, self.max_bytes)
        signature, values = request_lib.parse(raw, self.model.signatures)
      outputs = await self.batcher.run(signature, values)
    except request_lib.RequestError as e:
      return error(str(e), e.status)
    except tf.errors.InvalidArgumentError as e:
      return error(f'the model refused the input: {first_line(e.message)}',
                   400)
    return Response(response.predictions(outputs),
                    media_type='application/json')


def error(message, status):
  """TF Serving's error body: {"error": "..."} on one line."""
  return Response(response.error(message), status_code=status,
                  media_type='application/json')


def first_line(text):
  """The line of a TensorFlow error that says what went wrong."""
  noise = ('Graph execution error', 'Detected at node', '<stack traces')
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  useful = [line for line in lines if not line.startswith(noise)]
  return (useful or lines or ['unknown error'])[0]


async def _body(request, limit):
  """The body, or a 413 past `limit` bytes.

  A body too big is read to its end but not kept: a client that sends all
  of it before it reads the answer (most do) gets the 413, not a reset.
  """
  chunks, size = [], 0
  async for chunk in request.stream():
    size += len(chunk)
    if size <= limit:
      chunks.append(chunk)
  if size > limit:
    raise request_lib.RequestError(
        f'the request body is over {limit:,} bytes, the most this server '
        'takes (MAX_REQUEST_BYTES); send fewer instances per request '
        '(scripts/make_request.py splits them)', status=413)
  return b''.join(chunks)
