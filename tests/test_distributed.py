"""Training on several replicas: logical CPU devices and multi-worker jobs.

- MirroredStrategy over 2 and 3 logical CPU devices (a process of its own
  splits its CPU: tests/support/logical_devices.py) trains on one device's global
  batches: the same losses step by step, the same accuracy.
- A chief and 2 workers without parameter servers (the usual Vertex AI GPU
  pool) plus an evaluator, started by scripts/local_cluster.py, train in
  sync with MultiWorkerMirroredStrategy to exactly the target step; every
  worker logs its steps and exits 0; the chief exports once.
- The same shape from hand-written TF_CONFIGs that call the chief `master`
  (tensorflow#32081: the trainer renames it), with the custom model, and
  with the keras model twenty times in a row.
- --steps-per-run K (unrolled steps, trainer/multistep.py) on 2 and 3
  logical devices and on a chief and a worker: the losses, the global step
  and the checkpoints of K = 1 (with dropout too, on 2 devices).
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.support import processes
from trainer import config

pytestmark = pytest.mark.slow  # real clusters and logical devices

SCRIPT = os.path.join(os.path.dirname(__file__), 'support', 'logical_devices.py')
SMALL = {'hidden_units': [64, 32], 'batch_size': 48, 'steps_per_run': 1,
         'eval_secs': 0, 'checkpoint_secs': 3600}
# Measured on a 2-core VM (TF 2.15.1): the largest relative difference of a
# step's loss between 1 and 2 devices over 30 steps was 1.5e-7.
LOSS_RTOL = 1e-5


def logical_devices(count, mnist_dir, tmp_path, *configs):
  result = processes.run([sys.executable, SCRIPT, str(count), mnist_dir,
                          str(tmp_path)] + [json.dumps(c) for c in configs])
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


# No dropout: the custom model's losses on N replicas are one device's.
NO_DROPOUT = dict(SMALL, model_type='custom', summary_steps=1, dropout=[0.0],
                  input_dropout=0.0)


def assert_same_losses(run, one):
  """Every loss `run` logged is one's at that step, to float rounding."""
  assert run['losses'], run
  for step, loss in run['losses'].items():
    assert loss == pytest.approx(one['losses'][step], rel=LOSS_RTOL), step


def assert_same_checkpoints(job_dir, want_dir):
  have, want = (tf.train.load_checkpoint(d) for d in (job_dir, want_dir))
  names = want.get_variable_to_shape_map()
  assert set(have.get_variable_to_shape_map()) == set(names)
  for name in names:
    np.testing.assert_allclose(have.get_tensor(name), want.get_tensor(name),
                               rtol=LOSS_RTOL, atol=1e-6, err_msg=name)


def test_mirrored_replicas_train_as_one_device(tmp_path, mnist_dir):
  """Each step's loss is one device's, to float rounding; auto mirrors
  with its default --steps-per-run there (10 steps a run)."""
  same = dict(NO_DROPOUT, train_steps=12)
  (one, two, three), stderr = logical_devices(
      3, mnist_dir, tmp_path, dict(same, distribute='none'),
      dict(same, distribute='auto', steps_per_run=None),  # 3 devices: mirrors
      dict(same, distribute='mirrored'))
  assert 'training on 3 CPU devices, mirrored' in stderr
  assert [r['results']['strategy'] for r in (one, two, three)] == [
      'none', 'mirrored', 'mirrored']
  assert [r['results']['replicas'] for r in (one, two, three)] == [1, 3, 3]
  assert two['results']['config']['steps_per_run'] == 10
  assert sorted(two['losses'], key=int) == ['10', '12']
  assert len(one['losses']) == len(three['losses']) == 12
  for run in (two, three):
    assert run['results']['global_step'] == 12
    assert_same_losses(run, one)
  assert_same_checkpoints(*(r['results']['job_dir'] for r in (two, three)))


def test_mirrored_steps_per_run_trains_as_one_step(tmp_path, mnist_dir):
  """K = 4 on 2 devices over 23 steps: runs of 4 and a last one of 3."""
  same = dict(NO_DROPOUT, train_steps=23)
  (one, mirrored, k4), _ = logical_devices(
      2, mnist_dir, tmp_path, dict(same, distribute='none'),
      dict(same, distribute='mirrored'),
      dict(same, distribute='mirrored', steps_per_run=4))
  assert sorted(k4['losses'], key=int) == ['4', '8', '12', '16', '20', '23']
  assert k4['results']['global_step'] == 23
  assert_same_losses(k4, one)
  assert_same_checkpoints(k4['results']['job_dir'],
                          mirrored['results']['job_dir'])


def test_mirrored_dropout_trains_the_same_model_at_any_k(tmp_path, mnist_dir):
  """With the custom model's default dropout, K = 4 on 2 devices trains
  K = 1's model: each replica's masks depend on its rows, not on the run."""
  same = dict(SMALL, model_type='custom', summary_steps=1, train_steps=11,
              distribute='mirrored')
  (k1, k4), _ = logical_devices(2, mnist_dir, tmp_path, same,
                                dict(same, steps_per_run=4))
  assert sorted(k4['losses'], key=int) == ['4', '8', '11']
  assert_same_losses(k4, k1)
  assert_same_checkpoints(k4['results']['job_dir'], k1['results']['job_dir'])


def test_mirrored_accuracy_matches_one_device(tmp_path, mnist_dir):
  """The premade model (its initial weights differ under a strategy: the
  graph seed gives each op a seed by its place in the graph)."""
  same = dict(SMALL, model_type='premade', train_steps=60)
  (one, two), stderr = logical_devices(2, mnist_dir, tmp_path,
                                       dict(same, distribute='none'),
                                       dict(same, distribute='mirrored'))
  assert two['results']['replicas'] == 2
  # The progress lines show the global batch's mean loss, not the sum of
  # the replicas' (twice as large): close to one device's at step 1.
  first, mirrored = map(float, re.findall(r'step 1/60  loss (\S+)', stderr))
  assert 0.8 < mirrored / first < 1.25, (first, mirrored)
  accuracies = [r['results']['accuracy'] for r in (one, two)]
  assert abs(accuracies[0] - accuracies[1]) <= 0.005, accuracies
  assert min(accuracies) > 0.9


TARGET = 60


def exports(job_dir, name):
  folder = os.path.join(job_dir, 'export', name)
  return [d for d in os.listdir(folder)
          if tf.saved_model.contains_saved_model(os.path.join(folder, d))]


@pytest.fixture(scope='module')
def multiworker(tmp_path_factory, mnist_dir):
  """local_cluster.py --workers 2 --ps 0 --evaluator, to TARGET steps."""
  job_dir = str(tmp_path_factory.mktemp('multiworker') / 'job')
  result = processes.run([
      *processes.LOCAL_CLUSTER, '--workers', '2', '--ps', '0', '--evaluator',
      '--', '--data-dir', mnist_dir, '--job-dir', job_dir, '--train-steps',
      str(TARGET), '--hidden-units', '64,32', '--batch-size', '48',
      '--log-every-steps', '20', '--eval-secs', '0'])
  logs = {}
  for name in ('chief-0', 'worker-0', 'worker-1', 'evaluator-0'):
    with open(os.path.join(job_dir, 'logs', f'{name}.log')) as f:
      logs[name] = f.read()
  return job_dir, result, logs


def test_multiworker_ends_at_the_target_with_one_export(multiworker):
  job_dir, result, logs = multiworker
  results = processes.last_json(result)
  assert results['global_step'] == TARGET
  assert results['strategy'] == 'multiworker' and results['replicas'] == 3
  assert results['config']['steps_per_run'] == 10
  assert results['accuracy'] > 0.9
  assert processes.newest_step(job_dir) == TARGET
  for name in ('latest', 'best'):
    assert len(exports(job_dir, name)) == 1
  assert logs['chief-0'].count('exporting step') == 1


def test_every_worker_trains_in_sync_and_exits(multiworker):
  _, result, logs = multiworker
  assert 'chief 0: replica 1 of 3, synchronous (multiworker)' in logs[
      'chief-0']
  for index, name in enumerate(('worker-0', 'worker-1'), 2):
    log = logs[name]
    assert f'replica {index} of 3, synchronous (multiworker)' in log
    # The premade model's default there: 10 steps a run (the first ends
    # at step 10).
    assert re.findall(r'step (\d+)/60 ', log) == ['10', '20', '40', '60']
    assert 'done; the chief reports the results' in log
    assert 'exporting step' not in log
  evaluated = re.findall(r'evaluator: step (\d+) accuracy', logs['evaluator-0'])
  assert int(evaluated[-1]) == TARGET
  pids = [int(p) for p in re.findall(r'\(pid (\d+)\)', result.stderr)]
  assert len(pids) == 4 and not [p for p in pids if processes.is_running(p)]


def master_and_worker(job_dir, mnist_dir, model_type, steps=30):
  """A master and a worker from hand-written TF_CONFIGs, started together;
  (master out, master err, worker err) once both exited 0."""
  ports = processes.free_ports(2)
  cluster = {'master': [f'127.0.0.1:{ports[0]}'],
             'worker': [f'127.0.0.1:{ports[1]}']}
  procs = []
  try:
    for task_type in ('worker', 'master'):
      env = dict(processes.env(), TF_CONFIG=json.dumps({
          'cluster': cluster, 'task': {'type': task_type, 'index': 0}}))
      procs.append(subprocess.Popen(
          hand_written_args(job_dir, mnist_dir, model_type, steps),
          cwd=processes.ROOT, env=env, stdin=subprocess.DEVNULL,
          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    (_, worker_err), (out, master_err) = [p.communicate(timeout=300)
                                          for p in procs]
  finally:
    for proc in procs:
      processes.stop(proc, timeout=0)
  assert [p.returncode for p in procs] == [0, 0], (
      f'worker:\n{worker_err[-2000:]}\nmaster:\n{master_err[-2000:]}')
  return out, master_err, worker_err


def hand_written_args(job_dir, mnist_dir, model_type, steps):
  return [*processes.TASK, '--model-type', model_type, '--data-dir',
          mnist_dir, '--job-dir', job_dir, '--train-steps', str(steps),
          '--hidden-units', '64,32', '--batch-size', '32',
          '--log-every-steps', '10', '--eval-secs', '0']


@pytest.fixture(scope='module')
def keras_initial_weights(tmp_path_factory, mnist_dir):
  """<job>/keras/: the Keras initial weights model_to_estimator saves first
  (--validate-only builds the estimator, which saves them)."""
  job_dir = str(tmp_path_factory.mktemp('keras') / 'job')
  result = processes.run(hand_written_args(job_dir, mnist_dir, 'keras', 4) +
                         ['--validate-only'])
  assert result.returncode == 0, result.stderr[-2000:]
  return os.path.join(job_dir, 'keras')


def test_hand_written_tf_configs_with_a_master_train_in_sync(
    tmp_path, mnist_dir):
  out, master_err, worker_err = master_and_worker(
      str(tmp_path / 'job'), mnist_dir, 'custom')
  results = json.loads(out.strip().splitlines()[-1])
  assert results['global_step'] == 30 and results['replicas'] == 2
  assert results['strategy'] == 'multiworker'
  assert 'chief 0: replica 1 of 2, synchronous (multiworker)' in master_err
  assert 'step 30/30 ' in worker_err
  assert tf.saved_model.contains_saved_model(results['export_dir'])


def test_the_keras_model_trains_in_a_master_and_worker_job(
    tmp_path, mnist_dir, keras_initial_weights):
  """Keras gives Sequential a v1 or v2 base class, for the whole process,
  by the mode each model is built in: the master's second estimator, built
  before graph mode, lost its attributes ('_v1_compile_was_called')
  whenever the worker had saved the Keras initial weights first (about 1
  run in 7 when both start together; every run once they are there before
  the master starts, as here, so one run is the test)."""
  job_dir = str(tmp_path / 'job')
  # As if the worker had saved them before the master looked: the order in
  # which the master failed.
  shutil.copytree(keras_initial_weights, os.path.join(job_dir, 'keras'))
  out, _, _ = master_and_worker(job_dir, mnist_dir, 'keras', steps=4)
  results = json.loads(out.strip().splitlines()[-1])
  assert results['global_step'] == 4 and results['model_type'] == 'keras'
  assert tf.saved_model.contains_saved_model(results['export_dir'])


def chief_and_worker(mnist_dir, jobs_dir, settings):
  """A chief and a worker (TF_CONFIG, loopback) train `settings` with
  train.run (tests/support/logical_devices.py); the chief's output."""
  ports = processes.free_ports(2)
  cluster = {'chief': [f'127.0.0.1:{ports[0]}'],
             'worker': [f'127.0.0.1:{ports[1]}']}
  procs = []
  try:
    for task_type in ('worker', 'chief'):
      env = dict(processes.env(), TF_CONFIG=json.dumps({
          'cluster': cluster, 'task': {'type': task_type, 'index': 0}}))
      procs.append(subprocess.Popen(
          [sys.executable, SCRIPT, '1', mnist_dir, str(jobs_dir),
           json.dumps(settings)], cwd=processes.ROOT, env=env,
          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True))
    (_, worker_err), (out, chief_err) = [p.communicate(timeout=300)
                                         for p in procs]
  finally:
    for proc in procs:
      processes.stop(proc, timeout=10)
  assert [p.returncode for p in procs] == [0, 0], (
      f'worker:\n{worker_err[-2000:]}\nchief:\n{chief_err[-2000:]}')
  run, = json.loads(out.strip().splitlines()[-1])
  return run


def test_multiworker_steps_per_run_trains_as_one_step(tmp_path, mnist_dir):
  """K = 5 over 23 steps in a chief and a worker: K = 1's losses at every
  run's last step, its global step and its checkpoint."""
  same = dict(NO_DROPOUT, train_steps=23)
  one = chief_and_worker(mnist_dir, tmp_path / 'k1', same)
  k5 = chief_and_worker(mnist_dir, tmp_path / 'k5',
                        dict(same, steps_per_run=5))
  for run in (one, k5):
    results = run['results']
    assert results['strategy'] == 'multiworker' and results['replicas'] == 2
    assert results['global_step'] == processes.newest_step(
        results['job_dir']) == 23
  assert sorted(k5['losses'], key=int) == ['5', '10', '15', '20', '23']
  assert_same_losses(k5, one)
  assert_same_checkpoints(k5['results']['job_dir'], one['results']['job_dir'])


def test_batch_norm_is_refused_in_a_multiworker_job(tmp_path):
  """Tried: a chief and a worker hung before step 1 (TF 2.15)."""
  cfg = config.Config(job_dir=str(tmp_path), batch_norm=True)
  with pytest.raises(config.UsageError, match='^--batch-norm is not '
                     'supported with --distribute multiworker'):
    cfg.with_strategy('multiworker')
  assert cfg.with_strategy('ps').distribute == 'ps'
