"""Answer bodies, as TF Serving's REST API writes them, in one JSON line.

orjson writes numpy arrays and scalars itself, so no float passes through
Python: a float32 is written in its shortest form, which reads back as the
same float32.
"""

import numpy as np
import orjson

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def predictions(outputs):
  """{"predictions": [{output: row}, ...]} for {output: array [n, ...]}."""
  names = list(outputs)
  columns = [np.ascontiguousarray(outputs[name]) for name in names]
  rows = [dict(zip(names, row)) for row in zip(*columns)]
  return orjson.dumps({'predictions': rows}, option=_NUMPY)


def error(message):
  """{"error": "..."}: TF Serving's error body."""
  return orjson.dumps({'error': message})
