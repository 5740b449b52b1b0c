"""The serving image's settings: environment variables with defaults.

Dockerfile.serving sets the same defaults as ENV lines, so `docker
inspect` shows them; Vertex AI takes others at upload
(--container-env-vars). A bad value stops the server with one line.
"""

import math

# {name: (default, type, least value, what it counts)}
SETTINGS = {
    # Vertex AI stops online requests over 1.5 MB itself; a batch
    # prediction job sends `batch_size` instances a request (64 unless set;
    # 1,000 pixel instances are 2.6 MB, 10,000 are 26 MB).
    'MAX_REQUEST_BYTES': (64_000_000, int, 1, 'bytes'),
    # Requests arriving within this window of the first share a model call.
    'BATCH_WINDOW_MS': (2.0, float, 0, 'milliseconds (0: no batching)'),
    # The most instances a model call takes; bigger requests go in chunks.
    'BATCH_MAX_ROWS': (512, int, 1, 'instances'),
}


class SettingError(ValueError):
  """A setting holds what it cannot."""


def read(environ):
  """{name: value} of SETTINGS, from `environ` or the defaults."""
  found = {}
  for name, (default, kind, least, unit) in SETTINGS.items():
    text = environ.get(name, '').strip()
    try:
      value = kind(text) if text else default
    except ValueError:
      value = None
    if value is None or not least <= value < math.inf:
      raise SettingError(f'{name}={text} is not a number of {unit} from '
                         f'{least}; set it to one, or unset it for the '
                         f'default, {default}')
    found[name] = value
  return found
