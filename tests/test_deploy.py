"""scripts/deploy_vertex.py with the recording gcloud of the submit tests."""

import datetime
import json
import os
import shlex

import pytest

from tests.test_submit import FAKE
from tests.test_submit import fake_tools  # pylint: disable=unused-import
from tests.test_submit import ok
from tests.test_submit import script

SERVING = 'us-central1-docker.pkg.dev/proj/repo/mnist-serving:v1'
PREBUILT = 'us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest'
AFTER = str(datetime.date(2027, 1, 15))
# `gcloud storage ls` of a job dir's export/best/ answers with two exports.
LISTING = FAKE + '''
if argv[:2] == ['storage', 'ls']:
  print(argv[2] + '1700000000/')
  print(argv[2] + '1700000500/')
'''


def deploy(env, *args, **extra):
  return script('deploy_vertex.py', '--region', 'us-central1', *args,
                env=dict(env, **extra))


def commands(calls):
  return [c['argv'] for c in calls() if c['argv'][:2] != ['storage', 'ls']]


def test_deploys_a_vertex_job_to_a_new_endpoint(fake_tools, tmp_path):
  env, calls = fake_tools
  record = tmp_path / 'deploy.json'
  result = ok(deploy(env, '--job', 'mnist_1', '--bucket', 'my-bkt',
                     '--spec-out', str(record)))
  saved = json.loads(record.read_text())
  ids = saved['ids']
  upload, create, deploy_model = commands(calls)
  assert upload == [
      'ai', 'models', 'upload', '--region', 'us-central1', '--display-name',
      'mnist-1', '--model-id', 'mnist-1', '--artifact-uri',
      'gs://my-bkt/jobs/mnist_1/model', '--container-image-uri', PREBUILT]
  assert create == ['ai', 'endpoints', 'create', '--region', 'us-central1',
                    '--display-name', 'mnist-1', '--endpoint-id',
                    ids['endpoint']]
  assert deploy_model == [
      'ai', 'endpoints', 'deploy-model', ids['endpoint'], '--region',
      'us-central1', '--model', 'mnist-1', '--display-name', 'mnist-1',
      '--deployed-model-id', ids['deployed'], '--machine-type',
      'n1-standard-2', '--min-replica-count', '1', '--max-replica-count', '2',
      '--traffic-split', '0=100']
  assert len(ids['endpoint']) == 9 and ids['deployed'].isdigit()
  # What it prints runs as printed: the commands, then the later ones.
  printed = [line[2:] for line in result.stdout.splitlines()
             if line.startswith('+ ')]
  assert [shlex.split(line)[1:] for line in printed] == commands(calls)
  assert saved['commands'] == printed
  later = [line for line in result.stdout.splitlines()
           if line.startswith('gcloud ')]
  assert later == [saved['predict'], saved['undeploy'], *saved['delete']]
  assert shlex.split(saved['undeploy']) == [
      'gcloud', 'ai', 'endpoints', 'undeploy-model', ids['endpoint'],
      '--region', 'us-central1', '--deployed-model-id', ids['deployed']]


def test_a_job_dir_deploys_its_newest_best_export(fake_tools, tmp_path):
  env, calls = fake_tools
  (tmp_path / 'bin' / 'gcloud').write_text(LISTING)
  ok(deploy(env, '--job-dir', 'gs://b/jobs/j', '--endpoint', '123',
            '--container', 'serving', '--image-uri', SERVING,
            '--machine-type', 'n1-standard-4', '--max-replicas', '3',
            '--spec-out', str(tmp_path / 'd.json')))
  assert calls()[0]['argv'] == ['storage', 'ls', 'gs://b/jobs/j/export/best/']
  upload, deploy_model = commands(calls)  # the endpoint is reused
  assert upload[upload.index('--artifact-uri') + 1] == (
      'gs://b/jobs/j/export/best/1700000500')
  assert upload[upload.index('--container-image-uri') + 1] == SERVING
  assert deploy_model[3] == '123'
  assert deploy_model[deploy_model.index('--machine-type') + 1] == (
      'n1-standard-4')
  assert deploy_model[deploy_model.index('--max-replica-count') + 1] == '3'


def test_after_its_end_of_availability_the_serving_image_is_the_default(
    fake_tools, tmp_path):
  env, calls = fake_tools
  ok(deploy(env, '--model-dir', 'gs://b/m/', '--today', AFTER,
            '--spec-out', str(tmp_path / 'd.json'),
            SERVING_IMAGE_URI=SERVING))
  upload = commands(calls)[0]
  assert upload[upload.index('--container-image-uri') + 1] == SERVING
  assert upload[upload.index('--artifact-uri') + 1] == 'gs://b/m'


def test_dry_run_prints_and_keeps_the_spec_without_gcloud(tmp_path):
  result = ok(script('deploy_vertex.py', '--dry-run', '--model-dir', 'gs://b/m',
                     '--spec-out', str(tmp_path / 'd.json'),
                     env={'PATH': str(tmp_path), 'REGION': 'europe-west4'}))
  assert result.stdout.count('\n+ gcloud ai ') == 3
  saved = json.loads((tmp_path / 'd.json').read_text())
  assert saved['image'].startswith('europe-docker.pkg.dev/vertex-ai/')


@pytest.mark.parametrize('args, message', [
    (['--model-dir', 'gs://b/m', '--container', 'prebuilt', '--today', AFTER],
     'the prebuilt container tf2-cpu.2-15 reached its end of availability on '
     '2027-01-14; serve the project\'s image instead: --container serving '
     '--image-uri URI'),
    (['--model-dir', 'gs://b/m', '--container', 'serving'],
     'no image-uri given: pass --image-uri'),
    (['--model-dir', '/local/model'], '--model-dir /local/model: Vertex AI '
     'reads models from Cloud Storage'),
    ([], 'no model given: pass --job NAME, --job-dir gs://... or --model-dir'),
    (['--model-dir', 'gs://b/m', '--min-replicas', '3', '--max-replicas',
      '2'], 'replicas 3..2'),
    (['--model-dir', 'gs://b/m', '--name', '9lives'], '--name 9lives makes '
     'no Vertex AI ID'),
])
def test_bad_input_fails_in_one_line_and_runs_nothing(fake_tools, args,
                                                      message):
  env, calls = fake_tools
  result = deploy(env, *args)
  assert result.returncode == 1
  assert result.stderr.startswith('error: ' + message), result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  assert commands(calls) == []
