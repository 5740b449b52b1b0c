"""TensorFlow's C++ log, decided before TensorFlow is imported.

Its start-up lines (CUDA probes, CPU features, cuDNN factories, some at
ERROR level) reach stderr before any flag is parsed and would turn a
one-line error into a dozen lines, whatever TF_CPP_MIN_LOG_LEVEL the user's
shell sets. So a command silences it unless it runs with --verbosity 1 or
more, where the user's TF_CPP_MIN_LOG_LEVEL applies (default: silent).
"""

import os


def quiet_unless_verbose(argv):
  """Sets TF_CPP_MIN_LOG_LEVEL=3 unless argv asks for --verbosity >= 1."""
  if _verbosity(argv) > 0:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  else:
    os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'


def _verbosity(argv):
  """The last --verbosity / -v value in argv (absl's spellings), else 0."""
  level = 0
  for i, arg in enumerate(argv):
    name, eq, value = arg.partition('=')
    if name in ('--verbosity', '-v', '--v'):
      if not eq:
        value = argv[i + 1] if i + 1 < len(argv) else ''
      try:
        level = int(value)
      except ValueError:
        pass
  return level
