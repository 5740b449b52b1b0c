"""Every command fails the same way (trainer/cli.py): one line, exit 1.

Usage errors included: argparse's own would print the usage and exit 2.
Each command runs in a subprocess, as users run it.
"""

import os
import sys

import pytest

from tests.support import processes

from trainer import cli
from trainer import errors

SCRIPT = lambda name: [sys.executable, os.path.join(processes.ROOT, 'scripts',
                                                    name)]
MODULE = lambda name: [sys.executable, '-m', f'trainer.{name}']

# (command, its bad arguments, the start of its error line)
USAGE_ERRORS = {
    'task': (MODULE('task'), ['--no-such-flag'],
             'error: unknown flag --no-such-flag'),
    'predict': (MODULE('predict'), ['--format', 'xml', 'x.npy'],
                "error: argument --format: invalid choice: 'xml'"),
    'sweep': (MODULE('sweep'), ['--jobs', '2'],
              'error: --sweep-dir is required'),
    'sweep.plots': (MODULE('sweep.plots'), [],
              'error: the following arguments are required: SWEEP_DIR'),
    'local_cluster': (SCRIPT('local_cluster.py'), ['--workers', '1'],
                      'error: pass the trainer flags after --'),
    'stage_mnist': (SCRIPT('stage_mnist.py'), ['--no-such-flag'],
                    'error: the following arguments are required: '
                    'destination'),
    'make_request': (SCRIPT('make_request.py'), ['--count', '0', 'a.png'],
                     'error: --count=0 must be 1 or more'),
    'checkpoint_cost': (SCRIPT('checkpoint_cost.py'), ['--steps', 'x'],
                        "error: argument --steps: 'x' is not a "
                        'comma-separated list'),
    'submit_vertex': (SCRIPT('submit_vertex.py'), ['--no-such-flag'],
                      'error: unrecognized arguments: --no-such-flag'),
}


@pytest.mark.parametrize('name', sorted(USAGE_ERRORS))
def test_a_usage_error_is_one_line_and_exit_status_1(name):
  command, args, message = USAGE_ERRORS[name]
  result = processes.run([*command, *args], timeout=120)
  assert result.returncode == 1, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def test_verbosity_lets_the_shell_decide_the_cpp_log(monkeypatch):
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '0')
  cli.quiet_unless_verbose(['--verbosity', '1'])
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '0'
  cli.quiet_unless_verbose(['--job-dir', 'x'])
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '3'


@pytest.mark.parametrize('kind', [errors.UsageError, errors.DataError,
                                  errors.InputError, errors.MissingExtraError])
def test_every_kind_of_error_ends_a_command_the_same_way(kind):
  with pytest.raises(SystemExit) as exit_info:
    with cli.one_line_errors():
      raise kind('--x=1 is bad; give 2')
  assert exit_info.value.code == 'error: --x=1 is bad; give 2'
