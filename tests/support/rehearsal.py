"""TensorFlow environments like Google Cloud's, and the Dockerfiles' steps.

Docker images cannot be pulled here, so an image is rehearsed: a venv that
holds what its base image holds (the TensorFlow release the FROM line names,
as a resolver picks it; or the Python of a python image, for the serving
image), then the Dockerfile's own COPY and RUN steps, read from the
Dockerfile so the two cannot drift, run with the venv first on PATH.
"""

import json
import os
import re
import shutil
import subprocess
import sys

from tests.support import processes

ROOT = processes.ROOT
DOCKERFILE = os.path.join(ROOT, 'Dockerfile')
SERVING_DOCKERFILE = os.path.join(ROOT, 'Dockerfile.serving')
# What the rehearsal knows how to replay; anything else must be taught here.
KNOWN = ('FROM', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'ENTRYPOINT')


def run(args, timeout=600, **kwargs):
  """subprocess.run that fails the test with the command's output."""
  result = subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)
  assert result.returncode == 0, (
      f'{args} exited {result.returncode}:\n{result.stdout[-3000:]}\n'
      f'{result.stderr[-3000:]}')
  return result


def instructions(path=DOCKERFILE):
  """[(INSTRUCTION, arguments)] with line continuations joined."""
  with open(path) as f:
    text = re.sub(r'\\\n', ' ', f.read())
  steps = []
  for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith('#'):
      continue
    word, _, rest = line.partition(' ')
    assert word.upper() in KNOWN, f'teach tests/support/rehearsal.py {word}'
    steps.append((word.upper(), rest.strip()))
  return steps


def _from_version(steps, pattern, kind):
  """The version the Dockerfile's one FROM image names, by pattern."""
  image, = [rest for word, rest in steps if word == 'FROM']
  match = re.match(pattern, image)
  assert match, f'FROM {image}: not a {kind} image'
  return match.group(1)


def base_tensorflow(steps):
  """The TensorFlow version of the FROM image, e.g. 2.15.0."""
  return _from_version(steps, r'tensorflow/tensorflow:(\d+\.\d+\.\d+)',
                       'tensorflow/tensorflow')


def tensorflow_venv(folder, version):
  """A venv with pip and tensorflow==version, as pip would resolve it.

  uv installs it: from its cache that takes seconds, where pip would copy
  2 GB again for every venv.
  """
  uv = shutil.which('uv', path=os.path.dirname(sys.executable))
  assert uv, 'uv is in requirements-test.txt; run scripts/test.sh'
  run([uv, 'venv', '--quiet', '--seed', '--python', sys.executable,
       str(folder)])
  python = os.path.join(folder, 'bin', 'python')
  run([uv, 'pip', 'install', '--quiet', '--python', python,
       f'tensorflow=={version}'])
  return python


def base_python(steps):
  """The Python version of a FROM python:X.Y[-variant] image, e.g. 3.11."""
  return _from_version(steps, r'python:(\d+\.\d+)', 'python')


def python_venv(folder, version, lock):
  """A venv of Python `version` (as the python image holds) with `lock`.

  uv installs the lock first, from its cache (seconds; only the first run
  downloads), so the Dockerfile's own pip step, replayed next, checks the
  install instead of copying 1.6 GB again for every venv.
  """
  uv = shutil.which('uv', path=os.path.dirname(sys.executable))
  assert uv, 'uv is in requirements-test.txt; run scripts/test.sh'
  run([uv, 'venv', '--quiet', '--seed', '--python', version, str(folder)])
  python = os.path.join(folder, 'bin', 'python')
  run([uv, 'pip', 'install', '--quiet', '--python', python, '-r', lock])
  return python


def venv_env(python, **extra):
  """A trainer process's environment (processes.env), in that venv: its
  bin/ first on PATH, nothing of the test venv's."""
  env = {k: v for k, v in processes.env().items()
         if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
  env['PATH'] = os.path.dirname(python) + os.pathsep + env['PATH']
  env['TF_CPP_MIN_LOG_LEVEL'] = '3'
  env.update(extra)
  return env


def build(steps, python, root):
  """Replays WORKDIR, COPY, ENV and RUN under `root`; returns the image.

  RUN commands run as written with /bin/sh, except that pip may use its
  cache (--no-cache-dir only keeps the image small).
  """
  workdir, env = str(root), venv_env(python)
  for word, rest in steps:
    if word == 'WORKDIR':
      workdir = os.path.join(root, rest.lstrip('/'))
      os.makedirs(workdir, exist_ok=True)
    elif word == 'COPY':
      *sources, dest = rest.split()
      for source in sources:
        _copy(os.path.join(ROOT, source), os.path.join(workdir, dest))
    elif word == 'ENV':
      name, _, value = rest.replace('=', ' ', 1).partition(' ')
      env[name] = value.strip()
    elif word == 'RUN':
      run(['/bin/sh', '-c', rest.replace('--no-cache-dir', '')],
          cwd=workdir, env=env)
  entrypoint, = [json.loads(rest) for word, rest in steps
                 if word == 'ENTRYPOINT']
  return {'workdir': workdir, 'env': env, 'entrypoint': entrypoint}


def _copy(source, dest):
  if os.path.isdir(source):
    shutil.copytree(source, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns('__pycache__'))
  else:
    target = dest if not dest.endswith('/') else os.path.join(
        dest, os.path.basename(source))
    os.makedirs(os.path.dirname(target) or '.', exist_ok=True)
    shutil.copy(source, target)


def pip_check(python):
  run([python, '-m', 'pip', 'check'])


def versions(python, *names):
  code = ('import importlib.metadata as m, json, sys; print(json.dumps('
          '{n: m.version(n) for n in sys.argv[1:]}))')
  return json.loads(run([python, '-c', code, *names]).stdout)
