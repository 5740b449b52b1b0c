"""Preemption: SIGKILL, SIGTERM or Ctrl-C a real trainer mid-run, then rerun it.

A rerun of the same command must continue from the newest complete
checkpoint (the global step never goes backwards) and finish: export and
results.json once the target step is reached.
"""

import glob
import json
import os
import re
import shlex
import signal
import subprocess

import pytest
import tensorflow as tf

from tests.support import processes
from trainer import config as config_lib
from trainer import jobdir

# Kills and resumes real trainer processes, timed against their steps.
pytestmark = [pytest.mark.slow, pytest.mark.serial]

TARGET = 3000  # steps: a few seconds, so the run is still going when stopped


# Model flags, and the steps per Session.run they train with: every
# checkpoint falls on a multiple of it.
MODELS = {'premade': (['--steps-per-run', '1'], 1),
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


def assert_every_checkpoint_readable(job_dir, steps_per_run=1):
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


# No periodic checkpoint after step 0: the one past step 500 is the signal's.
NO_PERIODIC = ['--checkpoint-secs', '3600', '--checkpoint-steps', '1000000']


# One signal per model: the handler is the same for both signals and both
# models, and each pair costs a run and a rerun.
@pytest.mark.parametrize('command, sig, last_line', [
    ('premade', signal.SIGTERM,
     'preempted: stopped on SIGTERM; the newest checkpoint in {job_dir} is '
     'step {saved}; rerun the same command to resume'),
    ('custom-k7', signal.SIGINT,
     'stopped: Ctrl-C (SIGINT); the newest checkpoint in {job_dir} is step '
     '{saved}; rerun the same command to resume'),
], indirect=['command'])
def test_sigterm_or_ctrl_c_saves_a_final_checkpoint_then_rerun_resumes(
    command, tmp_path, sig, last_line):
  job_dir, args, steps_per_run = command
  log = tmp_path / 'stopped.log'
  args = [*args, *NO_PERIODIC]
  _, status = interrupt(
      args, log, sig,
      lambda proc: processes.wait_for_line(log, rf'step \d{{3,}}/{TARGET}',
                                           proc))  # at step 500 or later
  saved = jobdir.global_step(job_dir)
  assert status == 128 + sig
  assert log.read_text().strip().splitlines()[-1] == last_line.format(
      job_dir=job_dir, saved=saved)
  assert 500 <= saved < TARGET
  assert 'Traceback' not in log.read_text()
  assert_every_checkpoint_readable(job_dir, steps_per_run)
  assert [os.path.basename(path) for path in tf.train.get_checkpoint_state(
      job_dir).all_model_checkpoint_paths] == [
          'model.ckpt-0', f'model.ckpt-{saved}'], 'the start and the stop'
  assert not os.path.exists(os.path.join(job_dir, 'results.json'))
  rerun_finishes(job_dir, args, resumed_from=saved)


def test_a_second_signal_stops_at_once(command, tmp_path):
  """Two signals delivered together: the second stops the process at once.

  The process is paused while both are sent, so the second one finds the
  first still being handled whatever the machine's speed. Which of the two
  Python handles first depends on which threads the kernel wakes, so the
  exit status must be that of the one named in the last line.
  """
  job_dir, args, steps_per_run = command
  log = tmp_path / 'twice.log'
  args = [*args, *NO_PERIODIC]
  with processes.started(args, log) as proc:
    processes.wait_for_line(log, rf'step \d{{3,}}/{TARGET}', proc)
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    proc.wait(timeout=120)
  last = log.read_text().strip().splitlines()[-1]
  second = re.fullmatch(
      r'stopped at once on a second (SIGINT|SIGTERM); the checkpoints already '
      r'written are complete; rerun the same command to resume', last)
  assert second, last
  assert proc.returncode == 128 + signal.Signals[second.group(1)]
  assert jobdir.global_step(job_dir) < 500, 'no checkpoint for the stop'
  assert_every_checkpoint_readable(job_dir, steps_per_run)


def test_sigkill_with_default_checkpoints_loses_at_most_their_steps(
    tmp_path, mnist_dir):
  """Default cadence: a run killed after a few seconds kept recent work."""
  every = config_lib.Config(job_dir='unused').checkpoint_steps
  job_dir = str(tmp_path / 'job')
  log = tmp_path / 'killed.log'
  args = [*processes.TASK, '--data-dir', mnist_dir, '--job-dir', job_dir,
          '--train-steps', '1000000', '--hidden-units', '64,32',
          '--batch-size', '32', '--log-every-steps', '100',
          # One step per run, so the step count, not the save cost, paces
          # the checkpoints on this machine.
          '--steps-per-run', '1']
  with processes.started(args, log) as proc:
    reached = int(processes.wait_for_line(
        log, r'step (\d*[3-9]\d{3})/1000000', proc, timeout=240).group(1))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
  assert_every_checkpoint_readable(job_dir)
  assert jobdir.global_step(job_dir) >= reached - every


def test_train_local_sh_prints_the_command_that_resumes(tmp_path, mnist_dir):
  """Ctrl-C in a terminal reaches the script and the trainer (one group)."""
  venv = tmp_path / 'venv'
  (venv / 'bin').mkdir(parents=True)
  python = venv / 'bin' / 'python'
  python.write_text(f'#!/bin/sh\nexec {shlex.quote(processes.TASK[0])} "$@"\n')
  python.chmod(0o755)
  stamp = subprocess.run(  # what scripts/env.sh compares: no install runs
      'cat requirements.txt requirements.txt setup.py | sha256sum | cut -c1-64',
      shell=True, cwd=processes.ROOT, capture_output=True, text=True,
      check=True).stdout
  (venv / '.installed').write_text(stamp)
  script = os.path.join(processes.ROOT, 'scripts', 'train_local.sh')
  environ = {**processes.env(), 'VENV': str(venv),
             'JOBS_DIR': str(tmp_path / 'jobs')}
  log = tmp_path / 'train_local.log'
  with open(log, 'w') as out:
    proc = subprocess.Popen(
        ['bash', script, '--data-dir', mnist_dir, '--train-steps',
         str(TARGET), *processes.SMALL], env=environ, stdout=out,
        stderr=subprocess.STDOUT, start_new_session=True)
  try:
    job_dir = processes.wait_for_line(log, r'starting (\S+) from step 0',
                                      proc).group(1)
    processes.wait_for_checkpoint_after(job_dir, 0, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    proc.wait(timeout=120)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
  assert proc.returncode == 128 + signal.SIGINT
  saved = jobdir.global_step(job_dir)
  assert saved > 0
  assert glob.glob(str(tmp_path / 'jobs' / 'mnist-*')) == [job_dir]
  resume = log.read_text().strip().splitlines()[-1]
  assert resume == 'to resume:  scripts/train_local.sh ' + shlex.join(
      ['--job-dir', job_dir, '--data-dir', mnist_dir, '--train-steps',
       str(TARGET), *processes.SMALL])
  command = shlex.split(resume.split(':', 1)[1])
  rerun = subprocess.run(['bash', script, *command[1:]], env=environ,
                         capture_output=True, text=True, timeout=300,
                         check=False)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert (f'resuming from step {saved:,} of {TARGET:,} in {job_dir}' in
          rerun.stderr.splitlines())
  with open(os.path.join(job_dir, 'results.json')) as f:
    assert json.load(f)['global_step'] == TARGET


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
