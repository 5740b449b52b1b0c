"""Preemption: SIGKILL or SIGTERM a real trainer mid-run, then rerun it.

A rerun of the same command must continue from the newest complete
checkpoint (the global step never goes backwards) and finish: export and
results.json once the target step is reached.
"""

import json
import os
import signal

import pytest
import tensorflow as tf

import processes
from trainer import jobdir

TARGET = 3000  # steps: a few seconds, so the run is still going when stopped


# Model flags, and the steps per Session.run they train with: every
# checkpoint falls on a multiple of it.
MODELS = {'premade': ([], 1),
          'custom-k7': (['--model-type', 'custom', '--steps-per-run', '7'], 7)}


@pytest.fixture(params=sorted(MODELS))
def command(request, tmp_path, mnist_dir):
  """The same trainer command for the interrupted run and the rerun, and K."""
  job_dir = str(tmp_path / 'job')
  flags, steps_per_run = MODELS[request.param]
  return job_dir, [*processes.TASK, '--data-dir', mnist_dir, '--job-dir',
                   job_dir, '--train-steps', str(TARGET), '--eval-secs', '600',
                   *processes.SMALL, *flags], steps_per_run


def interrupt(args, log, sig, wait):
  """Runs args until wait(proc) returns, then sends sig; returns its value."""
  with processes.started(args, log) as proc:
    seen = wait(proc)
    proc.send_signal(sig)
    proc.wait(timeout=120)
  return seen, proc.returncode


def assert_every_checkpoint_readable(job_dir, steps_per_run):
  state = tf.train.get_checkpoint_state(job_dir)
  for path in state.all_model_checkpoint_paths:
    step = int(path.rsplit('-', 1)[1])
    assert tf.train.load_variable(path, 'global_step') == step
    assert step % steps_per_run == 0


def rerun_finishes(job_dir, args, resumed_from):
  results = processes.last_json(processes.run(args))
  assert results['resumed_from_step'] == resumed_from
  assert results['global_step'] == TARGET
  assert os.path.isfile(os.path.join(results['export_dir'], 'saved_model.pb'))
  with open(os.path.join(job_dir, 'results.json')) as f:
    assert json.load(f) == results


def test_sigkill_then_rerun_resumes_from_the_newest_checkpoint(command,
                                                               tmp_path):
  job_dir, args, steps_per_run = command
  seen, status = interrupt(
      args, tmp_path / 'killed.log', signal.SIGKILL,
      lambda proc: processes.wait_for_checkpoint_after(job_dir, 0, proc))
  assert status == -signal.SIGKILL
  assert_every_checkpoint_readable(job_dir, steps_per_run)
  newest = jobdir.global_step(job_dir)
  assert seen <= newest < TARGET
  assert not os.path.exists(os.path.join(job_dir, 'results.json'))
  rerun_finishes(job_dir, args, resumed_from=newest)


def test_sigterm_saves_a_final_checkpoint_then_rerun_resumes(command,
                                                             tmp_path):
  """No periodic checkpoint after step 0: the one past step 500 is SIGTERM's."""
  job_dir, args, steps_per_run = command
  log = tmp_path / 'terminated.log'
  args = [*args, '--checkpoint-secs', '3600']
  _, status = interrupt(  # the first progress line at step 500 or later
      args, log, signal.SIGTERM,
      lambda proc: processes.wait_for_line(log, rf'step \d{{3,}}/{TARGET}',
                                           proc))
  saved = jobdir.global_step(job_dir)
  assert status == 128 + signal.SIGTERM
  assert log.read_text().strip().splitlines()[-1] == (
      f'preempted: stopped on SIGTERM; the newest checkpoint in {job_dir} is '
      f'step {saved}; rerun the same command to resume')
  assert 500 <= saved < TARGET
  assert 'Traceback' not in log.read_text()
  assert_every_checkpoint_readable(job_dir, steps_per_run)
  assert not os.path.exists(os.path.join(job_dir, 'results.json'))
  rerun_finishes(job_dir, args, resumed_from=saved)


def test_ctrl_c_stops_local_cluster_and_its_chief_saves(tmp_path, mnist_dir):
  """--workers 0 --ps 0: a cluster of one chief, which runs like a local run."""
  job_dir = str(tmp_path / 'job')
  args = [*processes.LOCAL_CLUSTER, '--workers', '0', '--ps', '0', '--',
          '--data-dir', mnist_dir, '--job-dir', job_dir, '--train-steps',
          str(TARGET), '--eval-secs', '600', *processes.SMALL]
  log = tmp_path / 'local_cluster.log'
  with processes.started(args, log) as launcher:
    chief = int(processes.wait_for_line(log, r'started chief-0 \(pid (\d+)\)',
                                        launcher).group(1))
    processes.wait_for_checkpoint_after(job_dir, 0, launcher)
    launcher.send_signal(signal.SIGINT)
    launcher.wait(timeout=120)
  assert launcher.returncode == 128 + signal.SIGINT
  assert not processes.is_running(chief)
  output = log.read_text()
  assert 'stopping the cluster on SIGINT' in output
  assert (f'chief-0 exited with status 143: preempted: stopped on SIGTERM; '
          f'the newest checkpoint in {job_dir} is step '
          f'{jobdir.global_step(job_dir)}') in output
