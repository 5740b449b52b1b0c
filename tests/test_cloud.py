"""trainer.cloud and the gcloud / Vertex AI configs, without a cloud.

The gs:// side runs against an emulator in test_gcs.py.
"""

import glob
import json
import os
import string

import pytest
import yaml

from tests.test_task import last_json
from tests.test_task import ROOT
from tests.test_task import run_task
from tests.test_task import SMALL
from trainer import cloud
from trainer import config as config_lib
from trainer import task


def tf_config(**task_fields):
  return json.dumps({'cluster': {}, 'task': task_fields, 'job': {},
                     'environment': 'cloud'})


@pytest.mark.parametrize('environ, trial', [
    ({}, None),
    ({'TF_CONFIG': tf_config()}, None),  # gcloud ai-platform local train
    ({'TF_CONFIG': tf_config(type='master', index=0, trial='7')}, '7'),
    ({'CLUSTER_SPEC': json.dumps({'task': {'type': 'workerpool0',
                                           'trial': '12'}})}, '12'),
    ({'CLOUD_ML_TRIAL_ID': '5'}, '5'),
])
def test_trial_id_from_each_service(environ, trial):
  assert cloud.trial_id(environ) == trial


def test_a_malformed_tf_config_is_a_usage_error():
  with pytest.raises(config_lib.UsageError, match='TF_CONFIG is not a JSON'):
    cloud.trial_id({'TF_CONFIG': '{not json'})


@pytest.mark.parametrize('flag, environ, job_dir', [
    ('gs://b/job', {}, 'gs://b/job'),
    ('gs://b/job', {'TF_CONFIG': tf_config(trial='7')}, 'gs://b/job/7'),
    ('gs://b/job', {'CLOUD_ML_TRIAL_ID': '3',
                    'AIP_CHECKPOINT_DIR': 'gs://b/out/3/checkpoints/'},
     'gs://b/job/3'),
    # Vertex AI puts the trial into its own folders already.
    (None, {'CLOUD_ML_TRIAL_ID': '3',
            'AIP_CHECKPOINT_DIR': 'gs://b/out/3/checkpoints/',
            'AIP_MODEL_DIR': 'gs://b/out/3/model/'},
     'gs://b/out/3/checkpoints/'),
    (None, {'AIP_MODEL_DIR': 'gs://b/out/model/'}, None),
])
def test_job_dir_resolution(flag, environ, job_dir):
  assert cloud.resolve_job_dir(flag, environ) == job_dir


@pytest.mark.parametrize('units, first, scaled', [
    ((512, 256, 128), None, (512, 256, 128)),
    ((512, 256, 128), 1024, (1024, 512, 256)),
    ((512, 256, 128), 200, (200, 100, 50)),
    ((64,), 3, (3,)),
    ((512, 256, 2), 128, (128, 64, 1)),
])
def test_first_layer_units_scales_every_layer(units, first, scaled):
  assert task._scale_layers(units, first) == scaled  # pylint: disable=protected-access


def test_check_bucket_leaves_local_paths_alone(tmp_path):
  assert cloud.check_bucket(str(tmp_path / 'job')) is None
  assert not (tmp_path / 'job').exists()


def test_publish_model_copies_the_tree_to_aip_model_dir(tmp_path):
  export = tmp_path / 'export' / 'best' / '1700000000'
  (export / 'variables').mkdir(parents=True)
  (export / 'saved_model.pb').write_bytes(b'graph')
  (export / 'variables' / 'variables.index').write_bytes(b'index')
  target = tmp_path / 'model'
  assert cloud.publish_model(str(export) + '/',
                             {'AIP_MODEL_DIR': str(target) + '/'}) == (
                                 str(target) + '/')
  assert (target / 'saved_model.pb').read_bytes() == b'graph'
  assert (target / 'variables' / 'variables.index').read_bytes() == b'index'
  assert cloud.publish_model(str(export), {}) is None


def test_legacy_tuning_trial_gets_its_subfolder_and_the_tuning_flags(
    mnist_dir, tmp_path):
  """As AI Platform runs a trial: TF_CONFIG's trial, --name=value flags.

  (The service also names the master's host in TF_CONFIG's cluster; running
  under a cluster is trainer/cluster.py's part, issue 4.)
  """
  metric_file = tmp_path / 'metrics'
  env = {'TF_CONFIG': tf_config(trial='7'),
         'CLOUD_ML_HP_METRIC_FILE': str(metric_file)}
  job_dir = tmp_path / 'tune'
  results = last_json(run_task(
      '--data-dir', mnist_dir, '--job-dir', str(job_dir), '--train-steps',
      '20', *SMALL, '--learning-rate=0.003', '--dropout=0.25',
      '--batch-size=64', '--first-layer-units=96', env=env))
  assert results['job_dir'] == str(job_dir / '7') and results['trial'] == '7'
  assert (job_dir / '7' / 'results.json').exists()
  assert os.listdir(job_dir / '7' / 'eval'), 'eval events for the tuner'
  assert sorted(os.listdir(job_dir)) == ['7']
  cfg = results['config']
  assert cfg['hidden_units'] == [96, 48]  # SMALL's 64,32 scaled
  assert (cfg['learning_rate'], cfg['dropout'], cfg['batch_size']) == (
      0.003, [0.25], 64)
  reported = json.loads(metric_file.read_text().splitlines()[-1])
  assert float(reported[cloud.METRIC_TAG]) == pytest.approx(
      results['accuracy'])


def test_a_run_outside_tuning_reports_no_metric(monkeypatch, tmp_path):
  monkeypatch.setenv('CLOUD_ML_HP_METRIC_FILE', str(tmp_path / 'm'))
  for var in ('TF_CONFIG', 'CLUSTER_SPEC', 'CLOUD_ML_TRIAL_ID'):
    monkeypatch.delenv(var, raising=False)
  assert not cloud.report_metric({'accuracy': 0.9, 'global_step': 1})
  assert not (tmp_path / 'm').exists()


def test_first_layer_units_must_be_positive(mnist_dir, tmp_path):
  result = run_task('--data-dir', mnist_dir, '--job-dir', str(tmp_path),
                    '--first-layer-units', '0')
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [
      'error: --first-layer-units=0 must be greater than 0']


# The configs -----------------------------------------------------------------

TRAINING_INPUT = {  # AI Platform's TrainingInput fields these configs may use
    'scaleTier', 'masterType', 'masterConfig', 'workerType', 'workerCount',
    'workerConfig', 'parameterServerType', 'parameterServerCount',
    'parameterServerConfig', 'evaluatorType', 'evaluatorCount',
    'evaluatorConfig', 'runtimeVersion', 'pythonVersion', 'region',
    'hyperparameters', 'args', 'useChiefInTfConfig', 'scheduling'}
GPUS = {'NVIDIA_TESLA_K80', 'NVIDIA_TESLA_P100', 'NVIDIA_TESLA_V100',
        'NVIDIA_TESLA_P4', 'NVIDIA_TESLA_T4', 'NVIDIA_TESLA_A100'}
AI_PLATFORM_CONFIGS = [os.path.join(ROOT, 'config.yaml')] + sorted(
    glob.glob(os.path.join(ROOT, 'configs', 'ai-platform', '*.yaml')))


def load(path):
  with open(path) as f:
    return yaml.safe_load(f)


def render_vertex(name):
  """A Vertex AI spec as scripts/submit_vertex.py fills it in."""
  with open(os.path.join(ROOT, 'configs', 'vertex', name)) as f:
    return yaml.safe_load(string.Template(f.read()).substitute(
        IMAGE_URI='"img"', OUTPUT_DIR='"gs://b/jobs/j"',
        TRAINER_ARGS='["--num-epochs", "5"]'))


def accelerators(training_input):
  for key in ('masterConfig', 'workerConfig', 'parameterServerConfig'):
    if 'acceleratorConfig' in training_input.get(key, {}):
      yield training_input[key]['acceleratorConfig']


@pytest.mark.parametrize('path', AI_PLATFORM_CONFIGS,
                         ids=lambda p: os.path.relpath(p, ROOT))
def test_ai_platform_configs_use_known_fields(path):
  spec = load(path)['trainingInput']
  assert set(spec) <= TRAINING_INPUT
  assert spec['scaleTier'] == 'CUSTOM' and spec['masterType']
  for accelerator in accelerators(spec):
    assert accelerator['type'] in GPUS and accelerator['count'] >= 1
  if 'workerCount' in spec:
    assert spec['workerType'] and spec['parameterServerType']


def test_config_yaml_has_a_gpu_master_and_a_study():
  spec = load(os.path.join(ROOT, 'config.yaml'))['trainingInput']
  assert list(accelerators(spec))
  study = spec['hyperparameters']
  assert study['goal'] == 'MAXIMIZE'
  assert study['hyperparameterMetricTag'] == cloud.METRIC_TAG
  assert 1 <= study['maxParallelTrials'] <= study['maxTrials']


def test_vertex_specs_have_a_gpu_pool_and_an_output_folder():
  custom = render_vertex('gpu.yaml')
  tuning = render_vertex('tuning.yaml')
  assert tuning['trialJobSpec']['workerPoolSpecs'] == custom[
      'workerPoolSpecs'], 'trials run the same machines as one training run'
  assert tuning['studySpec']['metrics'] == [
      {'metricId': cloud.METRIC_TAG, 'goal': 'MAXIMIZE'}]
  for spec in (custom, tuning['trialJobSpec']):
    pool, = spec['workerPoolSpecs']
    assert pool['machineSpec']['acceleratorType'] in GPUS
    assert pool['machineSpec']['acceleratorCount'] >= 1
    assert pool['containerSpec'] == {'imageUri': 'img',
                                     'args': ['--num-epochs', '5']}
    assert spec['baseOutputDirectory'] == {'outputUriPrefix': 'gs://b/jobs/j'}
