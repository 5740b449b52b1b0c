"""The request handler that Vertex AI's CPR model server runs.

google.cloud.aiplatform.prediction.model_server (the image's entry point)
reads Vertex AI's custom-container contract: it listens on 0.0.0.0 at
AIP_HTTP_PORT, answers GET AIP_HEALTH_ROUTE once this handler has loaded
the model from AIP_STORAGE_URI, and passes each POST to AIP_PREDICT_ROUTE
to `handle`. The handler answers as TF Serving's REST API does:
{"predictions": [...]}, or {"error": "..."} with a 4xx status for a request
the model cannot take. The server stays up after any of them.
"""

import json
import os
import sys

from fastapi import Response
from starlette.concurrency import run_in_threadpool
import tensorflow as tf

from serving import model as model_lib
from serving import request as request_lib

# Vertex AI refuses a bigger online request before it reaches the container;
# the server refuses it too, so a local run fails as the endpoint would.
MAX_REQUEST_BYTES = 1_500_000


class Handler:
  """Loads the model once per worker; turns bodies into predictions."""

  def __init__(self, artifacts_uri, predictor=None):
    del predictor  # the contract's hook for CPR predictors: not needed
    try:
      self.model = model_lib.Model(artifacts_uri)
    except model_lib.ModelError as e:
      sys.exit(f'error: {e}')  # one line, not the server's traceback
    self.max_bytes = int(os.environ.get('MAX_REQUEST_BYTES',
                                        MAX_REQUEST_BYTES))
    print(f'serving {artifacts_uri}: signatures '
          f'{", ".join(sorted(self.model.signatures))}', file=sys.stderr,
          flush=True)

  async def handle(self, request):
    try:
      raw = await _body(request, self.max_bytes)
      signature, values = request_lib.parse(raw, self.model.signatures)
      rows = await run_in_threadpool(self._predict, signature, values)
    except request_lib.RequestError as e:
      return error(str(e), e.status)
    return Response(json.dumps({'predictions': rows}),
                    media_type='application/json')

  def _predict(self, signature, values):
    try:
      return self.model.predict(signature, values)
    except tf.errors.InvalidArgumentError as e:
      raise request_lib.RequestError(
          f'the model refused the input: {first_line(e.message)}') from None


def error(message, status):
  """TF Serving's error body: {"error": "..."} on one line."""
  return Response(json.dumps({'error': message}), status_code=status,
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
        f'the request body is over {limit:,} bytes, the most Vertex AI online '
        'prediction takes; send fewer instances per request (scripts/'
        'make_request.py splits them) or use batch prediction', status=413)
  return b''.join(chunks)
