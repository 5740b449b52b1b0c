"""The README's first command, as a newcomer runs it, and what it prints.

- scripts/train_local.sh ends with a TensorBoard command; run as printed
  (with --inspect), it lists the job's accuracy and loss.
- On a machine whose PATH holds no Python 3.9-3.11 (only a newer python3),
  the same command fetches uv from PyPI (scripts/get_uv.py), uv installs
  CPython 3.11 and the lock into a new venv, and the run ends with a
  trained model. The host uv downloads interpreters from cannot be reached
  from CI, so uv's download list (UV_PYTHON_DOWNLOADS_JSON_URL) names an
  archive of the test's own base Python, laid out as python-build-standalone
  ships CPython: uv downloads, unpacks and installs it as it would that.
- Where nothing can be done, one line names the command that fixes it.
"""

import glob
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile

import pytest

from tests.support import processes

SCRIPT = os.path.join(processes.ROOT, 'scripts', 'train_local.sh')
TRAIN = ['--train-steps', '20', *processes.SMALL]
# Names kept off the bare PATH: every interpreter and installer.
_HIDDEN = re.compile(r'^(python|pip|uv|pyenv|idle|pydoc|2to3)')


def inspected_tags(output, folder):
  """{kind: [tag, ...]} that `tensorboard --inspect` lists for one folder."""
  block = output.split(f'These tags are in {folder}:\n', 1)[1]
  tags, kind = {}, None
  for line in block.split('=' * 70, 1)[0].splitlines():
    if line.startswith(' '):
      tags[kind].append(line.strip())
    elif line.strip():
      kind = line.split()[0]
      tags[kind] = []
  return tags


def printed(output, label):
  """The value of a `label: value` line that train_local.sh prints."""
  found = re.search(rf'^{label}:\s+(.+)$', output, re.MULTILINE)
  assert found, f'no "{label}:" line in:\n{output[-3000:]}'
  return found.group(1)


def assert_tensorboard_reads(output, job_dir, env):
  """The printed TensorBoard command, with --inspect, sees the job's metrics."""
  command = shlex.split(printed(output, 'TensorBoard'))
  inspected = subprocess.run(command + ['--inspect'], env=env,
                             capture_output=True, text=True, timeout=120,
                             check=False)
  assert inspected.returncode == 0, inspected.stderr[-3000:]
  scalars = inspected_tags(inspected.stdout, os.path.join(job_dir, 'eval'))
  assert {'accuracy', 'loss'} <= set(scalars['scalars']), inspected.stdout


@pytest.mark.slow  # trains through train_local.sh
def test_train_local_prints_a_tensorboard_command_that_reads_the_job(
    tmp_path, mnist_dir):
  environ = {**processes.env(), 'VENV': sys.prefix,
             'JOBS_DIR': str(tmp_path / 'jobs')}
  fresh = subprocess.run(  # else train_local.sh would reinstall this venv
      ['bash', '-c', 'source scripts/env.sh && [[ $(cat "$VENV/.installed") '
       '== $(_stamp requirements-test.txt) ]]'], cwd=processes.ROOT,
      env=environ, check=False)
  assert fresh.returncode == 0, (
      f'{sys.prefix} is not installed from the current lock; run the tests '
      'with scripts/test.sh')
  result = subprocess.run(['bash', SCRIPT, '--data-dir', mnist_dir, *TRAIN],
                          env=environ, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'installing' not in result.stdout, 'the test venv serves it as is'
  job_dir = os.path.dirname(printed(result.stdout, 'results'))
  assert_tensorboard_reads(result.stdout, job_dir, environ)


# A machine without Python 3.9-3.11 ---------------------------------------------


def newer_python():
  """The real executable of a Python 3.12 or later (on PATH, or one pyenv
  installed), or None."""
  pyenv = os.environ.get('PYENV_ROOT', os.path.expanduser('~/.pyenv'))
  for minor in range(12, 16):
    name = f'python3.{minor}'
    for candidate in [shutil.which(name)] + sorted(
        glob.glob(os.path.join(pyenv, 'versions', '*', 'bin', name))):
      found = candidate and _runs(candidate)
      if found:
        return found
  return None


def _runs(python):
  """sys.executable of `python`, or None if it does not start."""
  found = subprocess.run([python, '-c', 'import sys; print(sys.executable)'],
                         capture_output=True, text=True, check=False)
  return found.stdout.strip() if found.returncode == 0 else None


@pytest.fixture
def bare_path(tmp_path):
  """A PATH folder with this machine's tools but no Python 3.9-3.11: its
  only python3 is 3.12 or later (as on Ubuntu 24.04 or Debian 13)."""
  python = newer_python()
  if python is None:
    pytest.skip('needs a Python 3.12 or later on PATH')
  folder = tmp_path / 'bin'
  folder.mkdir()
  for directory in os.environ['PATH'].split(os.pathsep):
    if not os.path.isdir(directory):
      continue
    for name in os.listdir(directory):
      path, link = os.path.join(directory, name), folder / name
      if (_HIDDEN.match(name) or os.path.lexists(link) or
          not os.access(path, os.X_OK) or os.path.isdir(path)):
        continue
      link.symlink_to(path)
  (folder / 'python3').symlink_to(python)
  return str(folder)


def cpython_download(folder):
  """This test's base Python as uv's download list offers CPython: an
  install_only archive (python/bin, python/lib) and a JSON list naming it."""
  base, version = sys.base_prefix, 'python%d.%d' % sys.version_info[:2]
  skip = {'site-packages', 'dist-packages', 'test', '__pycache__', 'idlelib',
          'tkinter', 'turtledemo'}
  archive = folder / 'cpython-install_only.tar.gz'
  with tarfile.open(archive, 'w:gz', compresslevel=1) as tar:
    tar.add(os.path.join(base, 'bin', version), f'python/bin/{version}')
    for name in ('python3', 'python'):
      link = tarfile.TarInfo(f'python/bin/{name}')
      link.type, link.linkname = tarfile.SYMTYPE, version
      tar.addfile(link)
    for name in os.listdir(os.path.join(base, 'lib')):
      if name.startswith('libpython'):
        tar.add(os.path.join(base, 'lib', name), f'python/lib/{name}')
    tar.add(os.path.join(base, 'lib', version), f'python/lib/{version}',
            filter=lambda t: None if skip & set(t.name.split('/')) else t)
  major, minor, patch = sys.version_info[:3]
  arch = platform.machine()
  key = f'cpython-{major}.{minor}.{patch}-linux-{arch}-gnu'
  listing = folder / 'downloads.json'
  listing.write_text(json.dumps({key: {
      'name': 'cpython', 'arch': {'family': arch, 'variant': None},
      'os': 'linux', 'libc': 'gnu', 'major': major, 'minor': minor,
      'patch': patch, 'prerelease': '', 'url': archive.as_uri(),
      'sha256': None, 'variant': None, 'build': 'local'}}))
  return listing.as_uri()


def bare_env(tmp_path, path, **extra):
  """A newcomer's environment: a PATH without Python 3.9-3.11, nothing of
  this test run's venv, uv's caches of this machine (no second download
  of TensorFlow) but its own Python installs and our own cache folder."""
  uv = shutil.which('uv', path=os.path.dirname(sys.executable))
  uv_cache = subprocess.run([uv, 'cache', 'dir'], capture_output=True,
                            text=True, check=True).stdout.strip()
  env = {k: v for k, v in processes.env().items()
         if k not in ('VIRTUAL_ENV', 'PYTHONPATH', 'PYTHONHOME', 'UV',
                      'PYTHON', 'UV_PYTHON', 'CONDA_PREFIX')}
  env.update(PATH=path, VENV=str(tmp_path / 'venv'),
             JOBS_DIR=str(tmp_path / 'jobs'),
             XDG_CACHE_HOME=str(tmp_path / 'cache'), UV_CACHE_DIR=uv_cache,
             UV_PYTHON_INSTALL_DIR=str(tmp_path / 'pythons'),
             UV_PYTHON_BIN_DIR=str(tmp_path / 'python-bin'), **extra)
  return env


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != 'linux', reason='archive made for Linux')
@pytest.mark.skipif(sys.version_info[:2] != (3, 11),
                    reason='the archive is of this Python; env.sh asks for 3.11')
def test_without_python_3_9_to_3_11_the_first_command_trains(
    tmp_path, bare_path, mnist_dir):
  env = bare_env(tmp_path, bare_path,
                 UV_PYTHON_DOWNLOADS_JSON_URL=cpython_download(tmp_path))
  assert subprocess.run(['bash', '-c', 'command -v python3.11 python3.10 '
                         'python3.9'], env=env, check=False).returncode != 0
  result = subprocess.run(['bash', SCRIPT, '--data-dir', mnist_dir, *TRAIN],
                          env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, check=False)
  assert result.returncode == 0, (result.stdout[-3000:] +
                                  result.stderr[-3000:])
  assert 'with Python 3.11 from uv' in result.stdout
  with open(tmp_path / 'venv' / 'pyvenv.cfg') as f:  # uv's own CPython
    assert str(tmp_path / 'pythons') in f.read()
  assert os.access(tmp_path / 'cache' / 'mnist-estimator-trainer' /
                   f'uv-{_locked("uv")}' / 'uv', os.X_OK)
  results = printed(result.stdout, 'results')
  with open(results) as f:
    assert json.load(f)['global_step'] == 20
  job_dir = os.path.dirname(results)
  assert os.listdir(os.path.join(job_dir, 'export', 'latest'))
  assert_tensorboard_reads(result.stdout, job_dir, env)


def _locked(name):
  with open(os.path.join(processes.ROOT, 'requirements-test.txt')) as f:
    return re.search(rf'^{name}==([^ ;\n]+)', f.read(), re.MULTILINE)[1]


def _first_command(tmp_path, env):
  return subprocess.run(['bash', SCRIPT, '--train-steps', '1'], env=env,
                        cwd=tmp_path, capture_output=True, text=True,
                        timeout=120, check=False)


def test_without_a_way_to_get_uv_one_line_names_the_fix(tmp_path, bare_path):
  env = bare_env(tmp_path, bare_path,
                 UV_DEFAULT_INDEX='http://127.0.0.1:9/simple')  # nothing there
  result = _first_command(tmp_path, env)
  assert result.returncode == 1 and not result.stdout
  line, = result.stderr.splitlines()
  assert line.startswith('error: TensorFlow 2.15 (the last release with '
                         'tf.estimator) needs Python 3.9-3.11, found Python 3.1')
  assert 'could not fetch uv' in line
  assert 'install uv (curl -LsSf https://astral.sh/uv/install.sh | sh)' in line
  assert not os.path.exists(env['VENV'])


def test_offline_uv_names_the_fix_in_one_line(tmp_path, bare_path):
  uv = shutil.which('uv', path=os.path.dirname(sys.executable))
  env = bare_env(tmp_path, bare_path, UV=uv, UV_PYTHON_DOWNLOADS='never')
  result = _first_command(tmp_path, env)
  assert result.returncode == 1
  line, = result.stderr.splitlines()
  assert line.startswith(f'error: uv could not make {env["VENV"]} with '
                         'Python 3.11 (')
  assert line.endswith('rerun once online, or install Python 3.11 and set '
                       'PYTHON=/path/to/python3.11')
  assert not os.path.exists(env['VENV'])
