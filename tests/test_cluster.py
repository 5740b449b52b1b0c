"""Cluster roles from TF_CONFIG, and a real cluster on loopback ports.

The real cluster (chief, worker, parameter server, evaluator: separate
`python -m trainer.task` processes started by scripts/local_cluster.py)
loses its chief to SIGKILL mid-training, then the same command is rerun:
it resumes from the newest checkpoint, finishes, and only the chief
evaluates the final checkpoint, exports and writes results.json.
"""

import json
import os
import re
import signal

import pytest
import tensorflow as tf

from tests.support import processes
from trainer import cluster
from trainer import jobdir

# Clusters whose tasks are killed, with bounds on how soon the others stop.
pytestmark = pytest.mark.serial

CLUSTER = {'chief': ['127.0.0.1:1'], 'worker': ['127.0.0.1:2', '127.0.0.1:3'],
           'ps': ['127.0.0.1:4']}


def role(task_type, index=0, spec=None):
  return cluster.from_environment({'TF_CONFIG': json.dumps({
      'cluster': CLUSTER if spec is None else spec,
      'task': {'type': task_type, 'index': index}})})


@pytest.mark.parametrize('tf_config', [
    None,
    '',
    # gcloud ai-platform local train (not --distributed)
    '{"job": {"job_name": "trainer.task"}, "task": {}, "cluster": {}, '
    '"environment": "cloud"}',
    # a single-replica cloud job, new and legacy naming
    '{"cluster": {"chief": ["host:2222"]}, "task": {"type": "chief", '
    '"index": 0}, "environment": "cloud"}',
    '{"cluster": {"master": ["host:2222"], "ps": [], "worker": []}, '
    '"task": {"type": "master", "index": 0}}',
])
def test_no_cluster_or_a_cluster_of_one_runs_locally(tf_config):
  environ = {} if tf_config is None else {'TF_CONFIG': tf_config}
  local = cluster.from_environment(environ)
  assert local == cluster.Role()
  assert local.is_chief and local.trains and local.shard == (0, 1)
  assert local.tf_config() == {}


def test_roles_in_a_cluster():
  chief, worker, ps, evaluator = (role('chief'), role('worker', 1),
                                  role('ps'), role('evaluator'))
  assert chief.is_chief and chief.trains and chief.shard == (0, 3)
  assert not worker.is_chief and worker.trains and worker.shard == (2, 3)
  assert not ps.is_chief and not ps.trains
  assert not evaluator.is_chief and not evaluator.trains
  assert worker.name == 'worker 1'
  assert worker.tf_config() == {'cluster': CLUSTER,
                                'task': {'type': 'worker', 'index': 1}}


CPU = ['/device:CPU:0']
GPUS = [f'/device:GPU:{i}' for i in range(4)]


@pytest.mark.parametrize('spec, task, devices, strategy', [
    (None, None, CPU, 'none'),
    (None, None, GPUS, 'mirrored'),
    ({'chief': ['h:1'], 'evaluator': ['h:2']}, 'chief', GPUS, 'mirrored'),
    ({'chief': ['h:1'], 'worker': ['h:2', 'h:3']}, 'worker', CPU,
     'multiworker'),
    ({'master': ['h:1'], 'worker': ['h:2']}, 'master', GPUS, 'multiworker'),
    ({'chief': ['h:1'], 'worker': ['h:2'], 'evaluator': ['h:3']},
     'evaluator', CPU, 'multiworker'),
    (CLUSTER, 'chief', GPUS, 'ps'),
    ({'chief': ['h:1'], 'ps': ['h:2']}, 'ps', CPU, 'ps'),
])
def test_auto_chooses_from_where_the_job_runs(spec, task, devices, strategy):
  here = cluster.Role() if spec is None else role(task, spec=spec)
  assert cluster.choose('auto', here, devices) == strategy
  assert cluster.choose(strategy, here, devices) == strategy


@pytest.mark.parametrize('spec, forced', [
    (None, 'multiworker'), (None, 'ps'),
    ({'chief': ['h:1'], 'worker': ['h:2']}, 'none'),
    ({'chief': ['h:1'], 'worker': ['h:2']}, 'mirrored'),
    ({'chief': ['h:1'], 'worker': ['h:2']}, 'ps'),
    (CLUSTER, 'multiworker'), (CLUSTER, 'mirrored'), (CLUSTER, 'none'),
])
def test_a_forced_strategy_that_cannot_run_here_is_refused(spec, forced):
  here = cluster.Role() if spec is None else role('chief', spec=spec)
  with pytest.raises(cluster.UsageError, match=(
      f'^--distribute {forced} cannot run here: .*; drop --distribute '
      r'\(auto chooses \w+ here\) or change TF_CONFIG$')):
    cluster.choose(forced, here, CPU)


def test_one_machine_may_force_none_or_mirrored():
  assert cluster.choose('none', cluster.Role(), GPUS) == 'none'
  assert cluster.choose('mirrored', cluster.Role(), CPU) == 'mirrored'


def test_a_master_is_renamed_chief():
  """TensorFlow turns a strategy off when it sees `master` (#32081)."""
  spec = {'master': ['h:1'], 'worker': ['h:2']}
  master, worker = role('master', spec=spec), role('worker', spec=spec)
  assert master.task_type == 'chief' and master.is_chief
  assert worker.tf_config() == {'cluster': {'chief': ['h:1'],
                                            'worker': ['h:2']},
                                'task': {'type': 'worker', 'index': 0}}


def test_the_evaluator_is_left_out_of_the_cluster_tensorflow_sees():
  spec = {'chief': ['h:1'], 'worker': ['h:2'], 'evaluator': ['h:3']}
  assert 'evaluator' not in role('worker', spec=spec).tf_config()['cluster']
  alone = role('chief', spec={'chief': ['h:1'], 'evaluator': ['h:3']})
  assert alone == cluster.Role(), 'a chief and an evaluator: trains locally'


def test_vertex_cluster_spec_pools_without_tf_config():
  pools = {f'workerpool{i}': [f'h:{i}'] for i in range(4)}
  def pool(number):
    return cluster.from_environment({'CLUSTER_SPEC': json.dumps({
        'cluster': pools, 'task': {'type': f'workerpool{number}', 'index': 0,
                                   'trial': '3'}, 'environment': 'cloud'})})
  assert [pool(i).task_type for i in range(4)] == [
      'chief', 'worker', 'ps', 'evaluator']
  assert pool(1).cluster == {'chief': ('h:0',), 'worker': ('h:1',),
                             'ps': ('h:2',), 'evaluator': ('h:3',)}
  assert cluster.choose('auto', pool(0), CPU) == 'ps'
  with pytest.raises(cluster.UsageError, match='^CLUSTER_SPEC names pool '
                     "'workerpool7'; Vertex AI pools are workerpool0-3"):
    cluster.from_environment({'CLUSTER_SPEC': json.dumps({
        'cluster': {'workerpool7': ['h:1'], 'workerpool0': ['h:0']},
        'task': {'type': 'workerpool0', 'index': 0}})})


def test_start_lines_say_how_each_task_takes_part():
  spec = {'chief': ['h:1'], 'worker': ['h:2', 'h:3']}
  assert cluster.describe('multiworker', role('worker', 1, spec), CPU) == (
      'worker 1: replica 3 of 3, synchronous (multiworker)')
  assert cluster.describe('ps', role('worker', 1), CPU) == (
      'worker 1: task 3 of 3, asynchronous (parameter servers)')
  assert cluster.describe('mirrored', cluster.Role(), GPUS) == (
      'training on 4 GPUs, mirrored')
  assert cluster.describe('none', cluster.Role(), CPU) == (
      'training on 1 device')
  assert cluster.replicas('multiworker', role('chief', spec=spec), GPUS) == 12


def test_run_config_sees_no_cluster_for_a_lone_chief(monkeypatch):
  tf_config = json.dumps({'cluster': {'chief': ['host:2222']},
                          'task': {'type': 'chief', 'index': 0}})
  monkeypatch.setenv('TF_CONFIG', tf_config)
  config = cluster.run_config(cluster.from_environment())
  assert not config.cluster_spec and config.is_chief
  assert os.environ['TF_CONFIG'] == tf_config, 'environment restored'
  worker = cluster.run_config(role('worker', 1))
  assert worker.task_type == 'worker' and worker.num_ps_replicas == 1


@pytest.mark.slow
def test_single_replica_cloud_job_with_mirrored_evaluates_and_exports(
    tmp_path, mnist_dir):
  """A lone chief (a one-machine cloud job) on all its devices (one here)."""
  tf_config = json.dumps({'cluster': {'chief': ['127.0.0.1:2222']},
                          'task': {'type': 'chief', 'index': 0},
                          'environment': 'cloud'})
  result = processes.run(
      [*processes.TASK, '--data-dir', mnist_dir, '--job-dir',
       str(tmp_path / 'job'), '--train-steps', '60', '--distribute',
       'mirrored', '--eval-secs', '0', *processes.SMALL], TF_CONFIG=tf_config)
  results = processes.last_json(result)
  assert results['global_step'] == 60 and results['accuracy'] > 0.9
  assert results['config']['distribute'] == 'mirrored'
  for key in ('export_dir', 'best_export_dir'):
    assert tf.saved_model.contains_saved_model(results[key])


TARGET = 1500  # steps: long enough to kill the chief before the end


@pytest.fixture(scope='module')
def killed_then_rerun(tmp_path_factory, mnist_dir):
  """Kills the chief of a running cluster, then reruns the same command."""
  tmp = tmp_path_factory.mktemp('cluster')
  job_dir = str(tmp / 'job')
  # --eval-secs 3600: the rerun finishes only if the evaluator evaluates
  # the target step's checkpoint as soon as it exists.
  args = [*processes.LOCAL_CLUSTER, '--workers', '1', '--ps', '1',
          '--evaluator', '--', '--data-dir', mnist_dir, '--job-dir', job_dir,
          '--train-steps', str(TARGET), '--eval-secs', '3600',
          *processes.SMALL]
  log = tmp / 'first.log'
  with processes.started(args, log) as launcher:
    chief = int(processes.wait_for_line(log, r'started chief-0 \(pid (\d+)\)',
                                        launcher).group(1))
    processes.wait_for_checkpoint_after(job_dir, 0, launcher)
    os.kill(chief, signal.SIGKILL)
    launcher.wait(timeout=120)
  first = {
      'status': launcher.returncode,
      'output': log.read_text(),
      'pids': [int(pid) for pid in re.findall(r'\(pid (\d+)\)',
                                              log.read_text())],
      'step': jobdir.global_step(job_dir),
      'results': os.path.exists(os.path.join(job_dir, 'results.json')),
  }
  return job_dir, first, processes.run(args)


@pytest.mark.slow
def test_a_killed_chief_stops_the_cluster(killed_then_rerun):
  _, first, _ = killed_then_rerun
  assert first['status'] == 1
  assert re.search(r'error: chief-0 was killed by SIGKILL: .*; rerun the '
                   'same command to resume', first['output'])
  assert len(first['pids']) == 4
  assert not [pid for pid in first['pids'] if processes.is_running(pid)]
  assert 0 < first['step'] < TARGET and not first['results']


@pytest.mark.slow
def test_rerun_resumes_and_finishes(killed_then_rerun):
  job_dir, first, rerun = killed_then_rerun
  results = processes.last_json(rerun)
  assert results['resumed_from_step'] == first['step']
  assert results['global_step'] >= TARGET
  assert results['accuracy'] > 0.9
  with open(os.path.join(job_dir, 'results.json')) as f:
    assert json.load(f) == results


@pytest.mark.slow
def test_only_the_chief_evaluates_at_the_end_and_exports(killed_then_rerun):
  job_dir, _, _ = killed_then_rerun
  for name in ('latest', 'best'):
    exports = os.listdir(os.path.join(job_dir, 'export', name))
    assert len(exports) == 1
    assert tf.saved_model.contains_saved_model(
        os.path.join(job_dir, 'export', name, exports[0]))
  logs = {}
  for name in ('chief-0', 'worker-0', 'ps-0', 'evaluator-0'):
    with open(os.path.join(job_dir, 'logs', f'{name}.log')) as f:
      logs[name] = f.read()
  assert logs['chief-0'].count('exporting step') == 1
  assert not [name for name in logs
              if name != 'chief-0' and 'exporting step' in logs[name]]
  assert 'worker 0 done; the chief reports the results' in logs['worker-0']
  evaluated = re.findall(r'evaluator: step (\d+) accuracy', logs['evaluator-0'])
  assert int(evaluated[-1]) >= TARGET, 'the evaluator ends at the target'
  assert 'evaluator 0 done' in logs['evaluator-0']


@pytest.mark.slow
@pytest.mark.parametrize('flag, message', [
    (['--batch-size', '0'], 'error: --batch-size=0 must be greater than 0'),
    (['--no-such-flag', '1'], 'error: unknown flag --no-such-flag'),
])
def test_bad_trainer_flags_are_refused_before_any_task_starts(
    tmp_path, mnist_dir, flag, message):
  job_dir = tmp_path / 'job'
  result = processes.run([
      *processes.LOCAL_CLUSTER, '--workers', '1', '--ps', '1', '--evaluator',
      '--', '--data-dir', mnist_dir, '--job-dir', str(job_dir), *flag])
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(message), result.stderr
  assert not (job_dir / 'logs').exists(), 'no task started'


@pytest.mark.slow
def test_a_task_that_fails_before_any_checkpoint_gets_no_resume_advice(
    tmp_path, mnist_dir):
  job_dir = str(tmp_path / 'job')
  args = [*processes.LOCAL_CLUSTER, '--workers', '0', '--ps', '0', '--',
          '--data-dir', mnist_dir, '--job-dir', job_dir, '--train-steps',
          '100', *processes.SMALL]
  log = tmp_path / 'local_cluster.log'
  with processes.started(args, log) as launcher:
    chief = int(processes.wait_for_line(log, r'started chief-0 \(pid (\d+)\)',
                                        launcher).group(1))
    os.kill(chief, signal.SIGKILL)  # still importing TensorFlow
    launcher.wait(timeout=120)
  assert launcher.returncode == 1
  assert not os.path.exists(os.path.join(job_dir, 'checkpoint'))
  last = log.read_text().strip().splitlines()[-1]
  assert last.startswith('error: chief-0 was killed by SIGKILL: ')
  assert last.endswith(f'(log: {job_dir}/logs/chief-0.log)'), last
