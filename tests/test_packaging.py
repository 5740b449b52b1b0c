"""The package as Google Cloud installs it: an sdist, away from the source.

gcloud builds `python setup.py sdist` from the parent of --package-path; the
service pip-installs it and runs `python -m trainer.task` elsewhere. Here the
sdist goes into a fresh venv that sees the test venv's dependencies through
a .pth file (which does not run the test venv's editable-install hook), so
only the installed copy of trainer can be imported.
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile

from test_task import last_json
from test_task import ROOT
from test_task import SMALL

_NOT_SHIPPED = ('.git', '.venv', 'jobs', 'build', 'dist', '__pycache__',
                '*.egg-info', '.pytest_cache')


def run(*args, **kwargs):
  result = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          check=False, **kwargs)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  return result


def test_sdist_installs_and_trains_without_the_source_tree(tmp_path,
                                                          mnist_dir):
  source = tmp_path / 'src'
  shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SHIPPED))
  run(sys.executable, 'setup.py', '-q', 'sdist', '--dist-dir',
      str(tmp_path / 'dist'), cwd=source)
  sdist, = glob.glob(str(tmp_path / 'dist' / '*.tar.gz'))
  with tarfile.open(sdist) as tar:
    members = tar.getnames()
    requires, = [m for m in members if m.endswith('egg-info/requires.txt')]
    needs = tar.extractfile(requires).read().decode()
  assert any(m.endswith('/trainer/cloud.py') for m in members)
  assert not any('/tests/' in m for m in members)
  assert 'cloudml-hypertune' in needs and 'google-cloud-storage' in needs

  venv = tmp_path / 'venv'
  run(sys.executable, '-m', 'venv', '--without-pip', str(venv))
  python = str(venv / 'bin' / 'python')
  site = run(python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
             '["purelib"])').stdout.strip()
  with open(os.path.join(site, 'test-venv-deps.pth'), 'w') as f:
    f.write(sysconfig.get_paths()['purelib'] + '\n')
  run(sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
      '--no-index', '--no-build-isolation', '--target', site, sdist)

  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  env = {k: v for k, v in os.environ.items()
         if k not in ('PYTHONPATH', 'MNIST_DATA_DIR')}
  where = run(python, '-c', 'import trainer; print(trainer.__file__)',
              cwd=elsewhere, env=env).stdout.strip()
  assert where == os.path.join(site, 'trainer', '__init__.py')
  results = last_json(subprocess.run(
      [python, '-m', 'trainer.task', '--data-dir', mnist_dir, '--job-dir',
       'job', '--train-steps', '10', *SMALL], cwd=elsewhere, env=env,
      capture_output=True, text=True, timeout=300, check=False))
  assert results['global_step'] == 10
  assert (elsewhere / 'job' / 'results.json').exists()
