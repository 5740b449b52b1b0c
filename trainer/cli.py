"""What every command shares: the C++ log, shared flags, one-line errors.

Every entry point (`python -m trainer.task`, `.predict`, `.sweep`,
`.sweep.plots` and the scripts) fails the same way: one line `error: ...` on
stderr and exit status 1, usage errors included (argparse's own would print
the usage and exit 2), every trainer.errors.Error through
`one_line_errors`. Importing this module imports no TensorFlow: a command calls
`quiet_unless_verbose` before it imports TensorFlow. The one deliberate copy
of `fail` and the parser is scripts/cloudcmd.py: the Google Cloud scripts
run with any python3, where this package may not be installed.
"""

import argparse
import contextlib
import os
import sys
import traceback

from trainer import errors

DATA_DIR_HELP = ('Folder or gs://bucket/prefix with the four MNIST files '
                 '(.gz or not). Default: $MNIST_DATA_DIR, else downloaded '
                 'once into ~/.cache/mnist-estimator-trainer.')


def quiet_unless_verbose(argv):
  """Sets TF_CPP_MIN_LOG_LEVEL=3 unless argv asks for --verbosity >= 1.

  TensorFlow's start-up lines (CUDA probes, CPU features, cuDNN factories,
  some at ERROR level) reach stderr before any flag is parsed and would turn
  a one-line error into a dozen lines, whatever TF_CPP_MIN_LOG_LEVEL the
  user's shell sets. With --verbosity 1 or more the user's
  TF_CPP_MIN_LOG_LEVEL applies (default: silent).
  """
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


def fail(line, status=1, with_traceback=False):
  """Ends the command with `line` on stderr; the traceback first if asked.

  Status 1 goes through SystemExit(line), as the interpreter reports it, so
  that a caller in the same process sees the line.
  """
  if with_traceback:
    traceback.print_exc()
  if status == 1:
    sys.exit(line)
  print(line, file=sys.stderr, flush=True)
  sys.exit(status)


@contextlib.contextmanager
def one_line_errors(with_traceback=False):
  """Turns any trainer.errors.Error raised inside into `fail('error: ...')`."""
  try:
    yield
  except errors.Error as e:
    fail(f'error: {e}', with_traceback=with_traceback)


class ArgumentParser(argparse.ArgumentParser):
  """argparse whose usage errors are one line and exit status 1."""

  def error(self, message):
    fail(f'error: {message} (see --help)')


def add_data_dir(parser, help_text=DATA_DIR_HELP):
  """--data-dir (also --data_dir), as trainer.task spells it."""
  parser.add_argument('--data-dir', '--data_dir', dest='data_dir',
                      help=help_text)


def choices(parser, text, allowed, what):
  """A comma-separated list of names from `allowed`; parser.error otherwise."""
  names = text.split(',')
  unknown = set(names) - set(allowed)
  if unknown:
    parser.error(f'unknown {what}(s) {", ".join(sorted(unknown))}; choose '
                 f'from {", ".join(allowed)}')
  return names
