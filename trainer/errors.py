"""The package's one error family: what a command reports as one line.

Every entry point catches `Error` (through `cli.one_line_errors`) and prints
`error: <message>` with exit status 1, so a new kind needs no new `except`
anywhere. A message names the bad value and the fix. The kinds subclass
ValueError, as they did before they met here. This module imports nothing:
`trainer.cli` and the scripts use it before TensorFlow loads.
"""


class Error(ValueError):
  """A problem the user can fix; the message says how."""


class UsageError(Error):
  """A bad flag, setting or environment variable (TF_CONFIG, CLUSTER_SPEC)."""


class DataError(Error):
  """Missing or malformed MNIST data; the message names the file and the fix."""


class InputError(Error):
  """A bad input or model path given to prediction."""


class MissingExtraError(Error):
  """An optional package is not installed; the message names the extra."""


def missing_extra(what, extra, package):
  """The MissingExtraError for a feature that needs `pip install '.[extra]'`."""
  return MissingExtraError(
      f'{what} needs {package}, which is not installed; '
      f"pip install '.[{extra}]' (or pip install {package})")
