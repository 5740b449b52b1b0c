"""gs:// end to end against a local Cloud Storage emulator (see conftest.gcs).

Every process under test is a real subprocess with TensorFlow's own GCS
filesystem and google-cloud-storage, as on Google Cloud.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.support import processes
from tests.test_task import last_json
from tests.test_task import ROOT
from tests.test_task import run_task
from tests.test_task import SMALL
from tests.support.processes import TASK
from trainer import cloud

BUCKET = 'mnist-test'
DATA = f'gs://{BUCKET}/mnist'
JOB = f'gs://{BUCKET}/jobs/premade'


def run_script(*args, env):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, 'scripts', 'stage_mnist.py'),
       *args], cwd=ROOT, env=dict(os.environ, **env), capture_output=True,
      text=True, timeout=120, check=False)


def in_gcs(gcs, code, *args):
  """Runs Python code with TensorFlow against the emulator; returns its JSON."""
  env = dict(os.environ, **gcs.env, TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run([sys.executable, '-c', code, *args], env=env,
                          capture_output=True, text=True, timeout=120,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def names(gcs, prefix):
  return {b.name for b in gcs.client().list_blobs(BUCKET, prefix=prefix)}


@pytest.fixture(scope='module')
def staged(gcs, mnist_dir):
  return run_script('--data-dir', mnist_dir, DATA, env=gcs.env)


def test_stage_uploads_the_four_files_then_skips_them(gcs, staged, mnist_dir):
  assert staged.returncode == 0, staged.stderr[-2000:]
  assert staged.stdout.count('uploaded ') == 4
  assert names(gcs, 'mnist/') == {f'mnist/{n}' for n in os.listdir(mnist_dir)}
  again = run_script('--data-dir', mnist_dir, DATA + '/', env=gcs.env)
  assert again.returncode == 0, again.stderr[-2000:]
  assert again.stdout.count('skipped ') == 4 and 'uploaded' not in again.stdout


def test_stage_replaces_only_a_changed_file(gcs, mnist_dir):
  bucket = gcs.client().bucket(BUCKET)
  files = sorted(os.listdir(mnist_dir))
  for name in files[1:]:
    bucket.blob(f'changed/{name}').upload_from_filename(
        os.path.join(mnist_dir, name))
  bucket.blob(f'changed/{files[0]}').upload_from_string(b'stale')
  result = run_script('--data-dir', mnist_dir, f'gs://{BUCKET}/changed',
                      env=gcs.env)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.count('skipped ') == 3
  assert f'uploaded gs://{BUCKET}/changed/{files[0]}' in result.stdout
  with open(os.path.join(mnist_dir, files[0]), 'rb') as f:
    assert bucket.blob(f'changed/{files[0]}').download_as_bytes() == f.read()


def test_stage_refuses_a_missing_bucket_in_one_line(gcs, mnist_dir):
  result = run_script('--data-dir', mnist_dir, 'gs://no-such-bucket/mnist',
                      env=gcs.env)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [
      'error: destination gs://no-such-bucket/mnist: bucket '
      'gs://no-such-bucket does not exist; create it (gcloud storage buckets '
      'create gs://no-such-bucket --location REGION) or give another bucket']


@pytest.fixture(scope='module')
def trained(gcs, staged):
  assert staged.returncode == 0, staged.stderr[-2000:]
  return last_json(run_task('--data-dir', DATA, '--job-dir', JOB,
                            '--train-steps', '30', *SMALL, env=gcs.env))


def test_training_reads_gs_data_and_writes_everything_to_gs(gcs, trained):
  assert trained['global_step'] == 30 and trained['accuracy'] > 0.5
  assert trained['export_dir'].startswith(JOB + '/export/latest/')
  found = names(gcs, 'jobs/premade/')
  for name in ('checkpoint', 'model.ckpt-30.index', 'trainer_config.json',
               'results.json'):
    assert f'jobs/premade/{name}' in found
  assert any(n.startswith('jobs/premade/eval/events.out.tfevents')
             for n in found)
  results = json.loads(gcs.client().bucket(BUCKET).blob(
      'jobs/premade/results.json').download_as_bytes())
  assert results == trained
  assert not any('.write-test-' in n for n in found), 'probes are removed'


def test_the_savedmodel_loads_back_from_gs(gcs, trained):
  classes = in_gcs(gcs, '''
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']
print(json.dumps(serve(x=tf.zeros([3, 784]))['class_ids'].numpy().tolist()))
''', trained['best_export_dir'])
  assert len(classes) == 3


def eval_tags(gcs, job_dir):
  """The scalar tags in the eval event files of a gs:// job dir."""
  return in_gcs(gcs, '''
import json, sys
import tensorflow as tf
tags = set()
for path in tf.io.gfile.glob(sys.argv[1] + '/eval/events.out.tfevents.*'):
  for event in tf.compat.v1.train.summary_iterator(path):
    tags.update(v.tag for v in event.summary.value)
print(json.dumps(sorted(tags)))
''', job_dir)


def test_the_tuning_metric_tag_is_in_the_eval_events(gcs, trained):
  """config.yaml's hyperparameterMetricTag names a scalar in <job-dir>/eval/."""
  with open(os.path.join(ROOT, 'config.yaml')) as f:
    tag = yaml.safe_load(f)['trainingInput']['hyperparameters'][
        'hyperparameterMetricTag']
  assert tag == cloud.METRIC_TAG
  assert tag in eval_tags(gcs, JOB)


def test_a_gs_job_resumes(gcs, trained):
  results = last_json(run_task('--data-dir', DATA, '--job-dir', JOB,
                               '--train-steps', '45', *SMALL, env=gcs.env))
  assert results['resumed_from_step'] == 30 and results['global_step'] == 45
  assert 'jobs/premade/model.ckpt-45.index' in names(gcs, 'jobs/premade/')


@pytest.mark.parametrize('bucket, message', [
    ('no-such-bucket', 'bucket gs://no-such-bucket does not exist; create it'),
    ('mnist-read-only', 'this account may not write to gs://mnist-read-only'),
])
def test_an_unusable_bucket_fails_fast_in_one_line(gcs, mnist_dir, bucket,
                                                   message):
  result = run_task('--data-dir', mnist_dir, '--job-dir', f'gs://{bucket}/job',
                    *SMALL, env=gcs.env, timeout=60)
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      f'error: --job-dir gs://{bucket}/job: '), result.stderr[-2000:]
  assert message in lines[0]


def test_a_vertex_tuning_trial_writes_its_own_dirs_and_reports(gcs, staged,
                                                               tmp_path):
  """Vertex AI sets AIP_*_DIR per trial and reads hypertune's metric file."""
  base = f'gs://{BUCKET}/vertex/3'
  metric_file = tmp_path / 'hypertune' / 'output.metrics'
  env = dict(gcs.env, CLOUD_ML_TRIAL_ID='3',
             AIP_CHECKPOINT_DIR=f'{base}/checkpoints/',
             AIP_MODEL_DIR=f'{base}/model/',
             AIP_TENSORBOARD_LOG_DIR=f'{base}/logs/',
             CLOUD_ML_HP_METRIC_FILE=str(metric_file))
  results = last_json(run_task('--data-dir', DATA, '--train-steps', '20',
                               '--learning-rate=0.003', *SMALL, env=env))
  assert results['job_dir'] == f'{base}/checkpoints/'
  assert results['trial'] == '3'
  found = names(gcs, 'vertex/3/')
  assert 'vertex/3/checkpoints/results.json' in found
  assert 'vertex/3/model/saved_model.pb' in found
  assert any(n.startswith('vertex/3/model/variables/') for n in found)
  reported = [json.loads(line) for line in metric_file.read_text().splitlines()]
  assert reported[-1]['trial'] == '3'
  assert float(reported[-1][cloud.METRIC_TAG]) == pytest.approx(
      results['accuracy'])
  assert reported[-1]['global_step'] == '20'


def _no_credentials(tmp_path):
  """Off Google Cloud with no credentials; the metadata server is closed."""
  assert 'GOOGLE_APPLICATION_CREDENTIALS' not in os.environ
  return dict(CLOUDSDK_CONFIG=str(tmp_path), HOME=str(tmp_path),
              GCE_METADATA_HOST='127.0.0.1:9', GCE_METADATA_IP='127.0.0.1:9',
              NO_GCE_CHECK='true')


def _unreachable(gcs):
  closed = 'http://127.0.0.1:9'
  return dict(gcs.env, STORAGE_EMULATOR_HOST=closed, HTTPS_PROXY=closed,
              https_proxy=closed)


CAUSES = {
    'missing bucket': ('gs://no-such-bucket/x',
                       'bucket gs://no-such-bucket does not exist; create it'),
    'missing object': (f'gs://{BUCKET}/nothing-here',
                       f'no objects under it in gs://{BUCKET}; give the gs:// '
                       'folder that holds'),
    'unreachable': (f'gs://{BUCKET}/x', 'Cloud Storage cannot be reached'),
    'credentials': (f'gs://{BUCKET}/x', 'no usable Google Cloud credentials'),
}


def _command(what, path, mnist_dir, tmp_path):
  if what == '--data-dir':
    return [*TASK, '--data-dir', path, '--job-dir', str(tmp_path / 'job')]
  if what == '--job-dir':
    return [*TASK, '--data-dir', mnist_dir, '--job-dir', path]
  return [sys.executable, '-m', 'trainer.predict', '--model', path,
          '--data-dir', mnist_dir]


@pytest.mark.parametrize('what, cause', [
    (what, cause) for what in ('--data-dir', '--job-dir', '--model')
    for cause in sorted(CAUSES)
    if (what, cause) != ('--job-dir', 'missing object')])  # it is created
def test_each_cloud_error_is_one_line_naming_its_cause(
    gcs, mnist_dir, tmp_path, what, cause):
  path, message = CAUSES[cause]
  env = {'missing bucket': gcs.env, 'missing object': gcs.env,
         'unreachable': _unreachable(gcs),
         'credentials': _no_credentials(tmp_path)}[cause]
  result = processes.run(_command(what, path, mnist_dir, tmp_path),
                         timeout=120, TF_CPP_MIN_LOG_LEVEL='3', **env)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith(f'error: {what} {path}: ') and message in lines[0]
  assert not (tmp_path / 'job').exists()
