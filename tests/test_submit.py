"""The Google Cloud scripts, with a fake gcloud and docker that record argv.

Also `gcloud ai-platform local train` for real, where gcloud is installed.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.test_task import last_json
from tests.test_task import main_in_process  # pylint: disable=unused-import
from tests.test_task import ROOT
from tests.test_task import SMALL

SCRIPTS = os.path.join(ROOT, 'scripts')
IMAGE = 'us-central1-docker.pkg.dev/proj/repo/mnist-trainer:v1'

FAKE = f'''#!{sys.executable}
import json, os, sys
argv = sys.argv[1:]
record = {{'tool': os.path.basename(sys.argv[0]), 'argv': argv}}
if '--config' in argv:
  with open(argv[argv.index('--config') + 1]) as f:
    record['config'] = f.read()
with open(os.environ['FAKE_LOG'], 'a') as f:
  f.write(json.dumps(record) + '\\n')
'''


@pytest.fixture
def fake_tools(tmp_path):
  """A PATH whose gcloud and docker only record how they were called."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for tool in ('gcloud', 'docker'):
    (bin_dir / tool).write_text(FAKE)
    (bin_dir / tool).chmod(0o755)
  log = tmp_path / 'calls.jsonl'

  def calls():
    if not log.exists():
      return []
    return [json.loads(line) for line in log.read_text().splitlines()]

  return {'PATH': str(bin_dir), 'FAKE_LOG': str(log)}, calls


def script(name, *args, env):
  full_env = {k: v for k, v in os.environ.items()
              if k not in ('BUCKET', 'REGION', 'IMAGE_URI')}
  full_env.update(env)
  return subprocess.run([sys.executable, os.path.join(SCRIPTS, name), *args],
                        env=full_env, capture_output=True, text=True,
                        timeout=60, check=False)


def ok(result):
  assert result.returncode == 0, result.stderr
  return result


def test_ai_platform_submission_of_the_package(fake_tools):
  """Only on a runtime that can install it (none today; refused below)."""
  env, calls = fake_tools
  result = ok(script('submit_ai_platform.py', '--job-name', 'mnist_1',
                     '--runtime-version', '2.15', '--python-version', '3.11',
                     '--stream-logs', '--', '--data-dir', 'gs://my-bkt/mnist',
                     env=dict(env, BUCKET='my-bkt', REGION='us-central1')))
  command = [
      'ai-platform', 'jobs', 'submit', 'training', 'mnist_1',
      '--region', 'us-central1', '--config', os.path.join(ROOT, 'config.yaml'),
      '--job-dir', 'gs://my-bkt/jobs/mnist_1',
      '--package-path', os.path.join(ROOT, 'trainer'),
      '--module-name', 'trainer.task', '--runtime-version', '2.15',
      '--python-version', '3.11', '--stream-logs', '--', '--data-dir',
      'gs://my-bkt/mnist']
  assert [c['argv'] for c in calls()] == [command]
  assert result.stdout.startswith('+ gcloud ai-platform jobs submit training')


def test_ai_platform_takes_the_image_from_image_uri(fake_tools):
  env, calls = fake_tools
  ok(script('submit_ai_platform.py', env=dict(
      env, BUCKET='my-bkt', REGION='us-central1', IMAGE_URI=IMAGE)))
  argv, = [c['argv'] for c in calls()]
  assert argv[argv.index('--master-image-uri') + 1] == IMAGE
  assert '--package-path' not in argv


def test_ai_platform_submission_of_the_container(fake_tools):
  env, calls = fake_tools
  ok(script('submit_ai_platform.py', '--bucket', 'gs://my-bkt/', '--region',
            'europe-west4', '--image-uri', IMAGE, '--config',
            os.path.join(ROOT, 'configs', 'ai-platform', 'cpu.yaml'),
            env=env))
  argv, = [c['argv'] for c in calls()]
  assert argv[argv.index('--master-image-uri') + 1] == IMAGE
  assert '--package-path' not in argv and '--runtime-version' not in argv
  assert argv[argv.index('--job-dir') + 1].startswith('gs://my-bkt/jobs/mnist_')
  assert 'trainingInput' in yaml.safe_load(calls()[0]['config'])


def test_dry_run_needs_no_gcloud(tmp_path):
  result = ok(script('submit_ai_platform.py', '--dry-run', '--job-name', 'j1',
                     env={'PATH': str(tmp_path), 'BUCKET': 'my-bkt',
                          'REGION': 'us-central1', 'IMAGE_URI': IMAGE}))
  assert result.stdout.startswith(
      '+ gcloud ai-platform jobs submit training j1 --region us-central1')


@pytest.mark.parametrize('name, args, env, message', [
    ('submit_ai_platform.py', [], {'REGION': 'r1'},
     'no bucket given: pass --bucket my-bucket or set BUCKET'),
    ('submit_ai_platform.py', ['--bucket', 'my-bkt'], {},
     'no region given: pass --region us-central1 or set REGION'),
    ('submit_ai_platform.py', ['--bucket', 'My Bucket', '--region', 'r1'], {},
     '--bucket My Bucket is not a bucket name'),
    ('submit_ai_platform.py', ['--job-name', '1-job'],
     {'BUCKET': 'my-bkt', 'REGION': 'r1'}, '--job-name 1-job is not allowed'),
    ('submit_ai_platform.py', ['--config', 'nope.yaml'],
     {'BUCKET': 'my-bkt', 'REGION': 'r1'}, '--config nope.yaml does not exist'),
    ('submit_ai_platform.py', [], {'BUCKET': 'my-bkt', 'REGION': 'r1',
                                   'IMAGE_URI': IMAGE, 'PATH': '/nonexistent'},
     'gcloud is not on PATH; install the Google Cloud CLI'),
    ('submit_ai_platform.py', [], {'BUCKET': 'my-bkt', 'REGION': 'r1'},
     'runtime 2.11 with Python 3.7 cannot install this package (it needs '
     'TensorFlow 2.15 on Python 3.9-3.11); pass --image-uri or set IMAGE_URI '
     'to an image from scripts/build_image.py'),
    ('submit_vertex.py', [], {'BUCKET': 'my-bkt', 'REGION': 'r1'},
     'no image-uri given: pass --image-uri'),
    ('build_image.py', [], {}, 'no image-uri given: pass --image-uri'),
    ('build_image.py', ['--image-uri', IMAGE], {'PATH': '/nonexistent'},
     'docker is not on PATH; install Docker or pass --cloud-build'),
])
def test_bad_input_fails_in_one_line_and_runs_nothing(fake_tools, name, args,
                                                      env, message):
  fake_env, calls = fake_tools
  result = script(name, *args, env=dict(fake_env, **env))
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
  assert message in lines[0]
  assert not calls()


@pytest.mark.parametrize('tuning', [False, True])
def test_vertex_job_spec_is_filled_in(fake_tools, tmp_path, tuning):
  env, calls = fake_tools
  flags = ['--tuning'] if tuning else []
  ok(script('submit_vertex.py', '--job-name', 'mnist_2', *flags,
            '--spec-out', str(tmp_path / 'spec.yaml'), '--',
            '--data-dir', 'gs://my-bkt/mnist', '--num-epochs', '10',
            env=dict(env, BUCKET='my-bkt', REGION='us-central1',
                     IMAGE_URI=IMAGE)))
  call, = calls()
  argv = call['argv']
  assert argv[:4] == ['ai', 'hp-tuning-jobs' if tuning else 'custom-jobs',
                      'create', '--region']
  assert argv[argv.index('--display-name') + 1] == 'mnist_2'
  if tuning:  # the study's own counts, not gcloud's default of 1
    assert argv[argv.index('--max-trial-count') + 1] == '20'
    assert argv[argv.index('--parallel-trial-count') + 1] == '4'
  else:
    assert '--max-trial-count' not in argv
  spec = yaml.safe_load(call['config'])
  job = spec['trialJobSpec'] if tuning else spec
  pool, = job['workerPoolSpecs']
  assert pool['containerSpec'] == {
      'imageUri': IMAGE,
      'args': ['--data-dir', 'gs://my-bkt/mnist', '--num-epochs', '10']}
  assert pool['machineSpec']['acceleratorType'] == 'NVIDIA_TESLA_T4'
  assert job['baseOutputDirectory'] == {
      'outputUriPrefix': 'gs://my-bkt/jobs/mnist_2'}
  assert ('studySpec' in spec) == tuning


def test_vertex_multi_worker_gpu_pool(fake_tools, tmp_path):
  """A chief and 3 workers, one GPU each, no parameter servers: the shape
  whose TF_CONFIG makes --distribute auto train in sync (multiworker)."""
  env, calls = fake_tools
  ok(script('submit_vertex.py', '--job-name', 'mnist_3', '--workers', '3',
            '--spec-out', str(tmp_path / 'spec.yaml'), '--',
            '--data-dir', 'gs://my-bkt/mnist',
            env=dict(env, BUCKET='my-bkt', REGION='us-central1',
                     IMAGE_URI=IMAGE)))
  call, = calls()
  assert call['argv'][:3] == ['ai', 'custom-jobs', 'create']
  chief, workers = yaml.safe_load(call['config'])['workerPoolSpecs']
  assert (chief['replicaCount'], workers['replicaCount']) == (1, 3)
  for pool in (chief, workers):
    assert pool['machineSpec']['acceleratorCount'] == 1
    assert pool['containerSpec'] == {
        'imageUri': IMAGE, 'args': ['--data-dir', 'gs://my-bkt/mnist']}
  assert yaml.safe_load(call['config'])['scheduling'] == {
      'restartJobOnWorkerRestart': True}
  refused = script('submit_vertex.py', '--workers', '2', '--spec',
                   os.path.join(ROOT, 'configs', 'vertex', 'multi-worker.yaml'),
                   '--workers', '0', env=dict(env, BUCKET='my-bkt', REGION='r',
                                              IMAGE_URI=IMAGE))
  assert refused.returncode == 1
  assert refused.stderr.strip() == ('error: --workers 0: give 1 or more '
                                    'workers, and not with --tuning (its spec '
                                    'names its own pools)')


def test_vertex_dry_run_prints_a_command_that_works_when_pasted(tmp_path):
  spec_out = tmp_path / 'specs' / 'job.yaml'
  result = ok(script('submit_vertex.py', '--dry-run', '--image-uri', IMAGE,
                     '--spec-out', str(spec_out),
                     env={'PATH': str(tmp_path), 'BUCKET': 'my-bkt',
                          'REGION': 'us-central1'}))
  printed = yaml.safe_load(result.stdout.split('\n+ gcloud')[0])
  assert printed['workerPoolSpecs'][0]['containerSpec']['imageUri'] == IMAGE
  command = shlex.split(result.stdout.split('\n+ ')[1])
  assert command[:5] == ['gcloud', 'ai', 'custom-jobs', 'create', '--region']
  config = command[command.index('--config') + 1]
  assert config == str(spec_out)
  with open(config) as f:
    assert yaml.safe_load(f) == printed, 'the file gcloud reads is kept'


@pytest.mark.parametrize('flag, restart', [
    ([], True), (['--no-restart-job-on-worker-restart'], False)])
def test_vertex_dry_run_shows_the_whole_job_restart(tmp_path, flag, restart):
  result = ok(script('submit_vertex.py', '--dry-run', '--workers', '2', *flag,
                     '--spec-out', str(tmp_path / 'job.yaml'), '--',
                     '--batch-size', '192',
                     env={'PATH': str(tmp_path), 'BUCKET': 'my-bkt',
                          'REGION': 'r', 'IMAGE_URI': IMAGE}))
  assert f'restartJobOnWorkerRestart: {str(restart).lower()}' in result.stdout
  printed = yaml.safe_load(result.stdout.split('\n+ gcloud')[0])
  assert printed['scheduling'] == {'restartJobOnWorkerRestart': restart}


@pytest.mark.slow
@pytest.mark.parametrize('workers', range(1, 9))
def test_vertex_workers_submit_only_jobs_that_start(fake_tools, tmp_path,
                                                    workers):
  """The default --batch-size 128 splits over 2, 4 or 8 replicas (1, 3, 7
  workers): those jobs are submitted; the others are refused here, offline,
  in the trainer's one line, and nothing reaches gcloud."""
  env, calls = fake_tools
  result = script('submit_vertex.py', '--workers', str(workers),
                  '--spec-out', str(tmp_path / 'job.yaml'), '--',
                  '--data-dir', 'gs://my-bkt/mnist',
                  env=dict(env, BUCKET='my-bkt', REGION='r', IMAGE_URI=IMAGE))
  if 128 % (workers + 1) == 0:
    ok(result)
    call, = calls()
    assert yaml.safe_load(call['config'])['scheduling'] == {
        'restartJobOnWorkerRestart': True}
  else:
    assert result.returncode == 1 and not calls()
    assert result.stderr.strip().splitlines() == [
        f'error: --batch-size=128 must be a multiple of the {workers + 1} '
        'replicas --distribute multiworker trains here: each takes an equal '
        f'share of a batch; give for example --batch-size='
        f'{128 // (workers + 1) * (workers + 1)} (for this job: 1 chief (1 '
        f'GPU), {workers} workers (1 GPU); nothing was submitted)']


def vertex_shape(spec):
  """{pool: [addresses]} and GPUs per replica of a Vertex AI job spec."""
  job = spec.get('trialJobSpec', spec)
  pools = job['workerPoolSpecs']
  cluster = {f'workerpool{i}': [f'h{i}-{r}:2222'
                                for r in range(pool['replicaCount'])]
             for i, pool in enumerate(pools) if pool}
  return ('CLUSTER_SPEC', {'cluster': cluster, 'task': {
      'type': 'workerpool0', 'index': 0}},
          pools[0]['machineSpec'].get('acceleratorCount', 0))


def ai_platform_shape(spec):
  """TF_CONFIG and GPUs per replica of an AI Platform trainingInput."""
  job = spec['trainingInput']
  cluster = {'master': ['m:2222']}
  for name, count in (('worker', 'workerCount'),
                      ('ps', 'parameterServerCount')):
    if job.get(count):
      cluster[name] = [f'{name}{i}:2222' for i in range(job[count])]
  gpus = job.get('masterConfig', {}).get('acceleratorConfig', {})
  return ('TF_CONFIG', {'cluster': cluster, 'task': {
      'type': 'master', 'index': 0}}, gpus.get('count', 0))


def tuned_batch_sizes(spec):
  """The batch sizes a tuning spec tries; [None] (the default) if none."""
  params = (spec.get('studySpec', {}).get('parameters') or
            spec.get('trainingInput', {}).get('hyperparameters', {}).get(
                'params') or [])
  for param in params:
    if param.get('parameterId', param.get('parameterName')) == 'batch-size':
      return (param.get('discreteValueSpec', {}).get('values') or
              param.get('discreteValues'))
  return [None]


SHIPPED = ['config.yaml'] + [
    os.path.join('configs', kind, name)
    for kind in ('ai-platform', 'vertex') for name in sorted(
        os.listdir(os.path.join(ROOT, 'configs', kind)))
    if kind == 'ai-platform' or name in ('gpu.yaml', 'tuning.yaml')]


@pytest.mark.parametrize('path', SHIPPED)
def test_every_shipped_config_passes_validate_only(main_in_process, tmp_path,
                                                   path):
  """Each shipped job shape with the trainer's defaults (and each batch size
  a tuning spec tries) passes the trainer's own offline check; the
  multi-worker spec's shapes are checked above, per --workers."""
  with open(os.path.join(ROOT, path)) as f:
    spec = yaml.safe_load(f.read().replace('$WORKER_COUNT', '1'))
  variable, described, gpus = (ai_platform_shape(spec) if 'trainingInput'
                               in spec else vertex_shape(spec))
  for batch in tuned_batch_sizes(spec):
    result = main_in_process(
        '--job-dir', str(tmp_path), '--validate-only', '--validate-gpus',
        str(gpus), *(['--batch-size', str(batch)] if batch else []),
        env={variable: json.dumps(described)})
    assert result.returncode == 0, (path, batch, result.stderr[-1000:])
    assert result.stderr.strip().splitlines()[-1].startswith(
        'ok: the flags fit this job')


def test_validate_gpus_only_with_validate_only(main_in_process, tmp_path):
  result = main_in_process('--job-dir', str(tmp_path), '--validate-gpus', '1')
  assert result.returncode == 1 and result.stderr.strip() == (
      'error: --validate-gpus checks the flags without training; add '
      '--validate-only')


@pytest.mark.parametrize('cloud_build', [False, True])
def test_build_image(fake_tools, cloud_build):
  env, calls = fake_tools
  ok(script('build_image.py', *(['--cloud-build'] if cloud_build else []),
            env=dict(env, IMAGE_URI=IMAGE)))
  if cloud_build:
    assert [(c['tool'], c['argv']) for c in calls()] == [
        ('gcloud', ['builds', 'submit', '--tag', IMAGE, ROOT])]
  else:
    assert [(c['tool'], c['argv']) for c in calls()] == [
        ('docker', ['build', '--tag', IMAGE, ROOT]),
        ('docker', ['push', IMAGE])]


def test_build_serving_image(fake_tools):
  env, calls = fake_tools
  serving = IMAGE.replace('mnist-trainer', 'mnist-serving')
  ok(script('build_image.py', '--serving', env=dict(
      env, IMAGE_URI=IMAGE, SERVING_IMAGE_URI=serving)))
  assert [(c['tool'], c['argv']) for c in calls()] == [
      ('docker', ['build', '--tag', serving, '--file',
                  os.path.join(ROOT, 'Dockerfile.serving'), ROOT]),
      ('docker', ['push', serving])]


def test_dockerfile_runs_the_trainer_on_tf_2_15():
  with open(os.path.join(ROOT, 'Dockerfile')) as f:
    dockerfile = f.read()
  assert 'FROM tensorflow/tensorflow:2.15.0-gpu' in dockerfile
  assert 'ENTRYPOINT ["python", "-m", "trainer.task"]' in dockerfile


@pytest.mark.parametrize('dockerfile', ['Dockerfile', 'Dockerfile.serving'])
def test_dockerignore_lets_through_what_the_dockerfiles_copy(dockerfile):
  with open(os.path.join(ROOT, '.dockerignore')) as f:
    lines = f.read().splitlines()
  assert '*' in lines, 'the build context holds only what is copied'
  with open(os.path.join(ROOT, dockerfile)) as f:
    copies = [line.split()[1:-1] for line in f if line.startswith('COPY ')]
  for source in sum(copies, []):
    assert '!' + source.rstrip('/') + ('/' if os.path.isdir(
        os.path.join(ROOT, source)) else '') in lines, source


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('gcloud') is None,
                    reason='the Google Cloud CLI is not installed')
def test_gcloud_ai_platform_local_train(mnist_dir, tmp_path):
  """The real `gcloud ai-platform local train`: its TF_CONFIG and --job-dir."""
  env = dict(os.environ, CLOUDSDK_CONFIG=str(tmp_path / 'gcloud'),
             PATH=os.path.dirname(sys.executable) + os.pathsep +
             os.environ['PATH'])
  env.pop('MNIST_DATA_DIR', None)
  job_dir = tmp_path / 'job'
  result = subprocess.run(
      ['gcloud', 'ai-platform', 'local', 'train', '--package-path', 'trainer',
       '--module-name', 'trainer.task', '--job-dir', str(job_dir), '--',
       '--data-dir', mnist_dir, '--train-steps', '20', *SMALL],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  results = last_json(result)
  assert results['job_dir'] == str(job_dir) and results['global_step'] == 20
  assert (job_dir / 'results.json').exists()
