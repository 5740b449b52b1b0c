"""Faults in cluster jobs, with real processes on loopback.

A chief, a worker and a ps, each `python -m trainer.task` with its own
TF_CONFIG. Mid-run one task is SIGKILLed (a machine lost) and started again
with the same TF_CONFIG, as Vertex AI and AI Platform restart a replica:
the job still ends at exactly --train-steps with one export. A task lost
for good ends the others within --lost-task-secs. A synchronous job (a
chief and 2 workers) whose worker is killed is restarted as a whole, as
Vertex AI's restartJobOnWorkerRestart does, twice, and still ends at its
target; lost for good, it leaves no task running. Each test prints what
its fault cost (steps redone, seconds) as one JSON line.
"""

import datetime
import json
import os
import re
import signal
import time

import pytest
import tensorflow as tf

from tests.support import cluster_tasks
from tests.support import processes
from trainer import jobdir
from trainer import peers

# Real clusters, killed and restarted; bounds on the seconds a fault costs.
pytestmark = [pytest.mark.slow, pytest.mark.serial]

TARGET = 4000  # the chief trains alone while the worker starts (5 s)
SYNC_TARGET = 1200  # synchronous steps are slower here, and start later
TRAINERS = ('chief-0', 'worker-0')


def job_args(mnist_dir, job_dir, lost_task_secs, target=TARGET):
  return ['--data-dir', mnist_dir, '--job-dir', job_dir, '--train-steps',
          str(target), '--eval-secs', '3600', *processes.SMALL,
          '--log-every-steps', '100', '--lost-task-secs',
          str(lost_task_secs)]


def kill_mid_run(tasks, job_dir, victim, target=TARGET, after=0):
  """Once both trainers train and a checkpoint past `after` exists, SIGKILLs
  victim; returns time.monotonic() and time.time() of the kill and the
  newest checkpoint's step."""
  processes.wait_for_line(tasks.log('worker-0'), rf'step \d+/{target}',
                          tasks.procs['worker-0'], timeout=240)
  processes.wait_for_checkpoint_after(job_dir, after, tasks.procs['chief-0'])
  newest = processes.newest_step(job_dir)
  assert newest < target * 2 // 3, 'killed mid-run'
  return tasks.kill(victim), time.time(), newest


_LINE = re.compile(r'^I(\d{4} \d\d:\d\d:\d\d\.\d+) .*\] step (\d+)/', re.M)


def progress(tasks):
  """{trainer: [(time.time(), step)]}: its progress lines, in order."""
  year = datetime.date.today().year
  found = {}
  for name in TRAINERS:
    found[name] = [
        (datetime.datetime.strptime(f'{year}{stamp}',
                                    '%Y%m%d %H:%M:%S.%f').timestamp(),
         int(step)) for stamp, step in _LINE.findall(tasks.output(name))]
  return found


def cost(tasks, killed_at):
  """What the fault cost: the most steps the global step went back by (work
  redone; each trainer's lines read the true step, so a drop within one
  trainer's lines is real), and the seconds from the kill until a trainer
  passed the step reached before that drop (with nothing redone: until a
  trainer logged progress again)."""
  lines = progress(tasks)
  redone, peak = 0, 0
  for series in lines.values():
    best = 0
    for _, step in series:
      if best - step > redone:
        redone, peak = best - step, best
      best = max(best, step)
  after = sorted(when for series in lines.values() for when, step in series
                 if when > killed_at and step > peak)
  return {'steps_redone': redone,
          'secs_set_back': round(after[0] - killed_at, 1) if after else None}


def assert_one_export_at_the_target(job_dir, target=TARGET):
  with open(os.path.join(job_dir, 'results.json')) as f:
    results = json.load(f)
  assert results['global_step'] == target, 'exactly, not past it'
  assert jobdir.global_step(job_dir) == target
  for name in ('latest', 'best'):
    exports = os.listdir(os.path.join(job_dir, 'export', name))
    assert len(exports) == 1, exports
    assert tf.saved_model.contains_saved_model(
        os.path.join(job_dir, 'export', name, exports[0]))
  return results


@pytest.mark.parametrize('victim', ['chief-0', 'worker-0', 'ps-0'])
def test_a_task_killed_and_restarted_the_job_ends_at_its_target(
    tmp_path, mnist_dir, victim):
  job_dir = str(tmp_path / 'job')
  started = time.monotonic()
  with cluster_tasks.Tasks(1, 1, job_args(mnist_dir, job_dir, 120),
                           str(tmp_path / 'logs')) as tasks:
    tasks.start_all()
    _, killed_at, newest = kill_mid_run(tasks, job_dir, victim)
    tasks.start(victim)
    ended = tasks.wait(TRAINERS, timeout=300)
    assert {name: status for name, (status, _) in ended.items()} == {
        name: 0 for name in TRAINERS}, {n: tasks.output(n)[-2000:]
                                        for n in TRAINERS}
    results = assert_one_export_at_the_target(job_dir)
    figures = {'fault': f'SIGKILL {victim}', 'checkpoint_at_kill': newest,
               **cost(tasks, killed_at),
               'job_secs': round(time.monotonic() - started, 1)}
  assert tasks.output(victim).count('--- started') == 2
  if victim == 'chief-0':
    assert results['resumed_from_step'] == newest
    assert f'resuming from step {newest:,} of {TARGET:,}' in tasks.output(
        victim)
  print(json.dumps(figures))


def test_a_task_lost_for_good_ends_the_others_within_the_bound(
    tmp_path, mnist_dir):
  """The ps is killed and not started again: the trainers exit with status
  1 within --lost-task-secs and a few seconds, each saying why."""
  job_dir = str(tmp_path / 'job')
  bound = 10
  with cluster_tasks.Tasks(1, 1, job_args(mnist_dir, job_dir, bound),
                           str(tmp_path / 'logs')) as tasks:
    tasks.start_all()
    killed, _, newest = kill_mid_run(tasks, job_dir, 'ps-0')
    ended = tasks.wait(TRAINERS, timeout=bound + 60)
  slack = peers.POLL_SECS + peers.PROBE_SECS + 5  # and the exit itself
  for name, (status, when) in ended.items():
    assert status == peers.EXIT_STATUS, tasks.output(name)[-2000:]
    assert when - killed <= bound + slack, (name, when - killed)
    last = tasks.output(name).strip().splitlines()[-1]
    assert re.fullmatch(
        rf'error: {name.replace("-", " ")} stops: ps 0 \(127\.0\.0\.1:\d+\) '
        rf'has refused connections for {bound} s, and this task cannot go on '
        rf'without it \(--lost-task-secs {bound}\); once every task is '
        'stopped, rerun the job to resume from its newest checkpoint',
        last), last
  assert jobdir.global_step(job_dir) >= newest, 'the checkpoints are kept'
  print(json.dumps({'fault': 'ps-0 lost', 'lost_task_secs': bound,
                    'exited_after_secs': {
                        n: round(w - killed, 1) for n, (_, w) in
                        ended.items()}}))


RESTART_TARGET = 2000  # two kills and two restarts, each after a checkpoint


def restart_job_args(mnist_dir, job_dir, target=RESTART_TARGET):
  """A chief and 2 workers in sync, restarted as a whole on a task's loss."""
  return [*processes.LOCAL_CLUSTER, '--workers', '2', '--ps', '0',
          '--restart-job-on-worker-restart', '--grace-secs', '10', '--',
          *job_args(mnist_dir, job_dir, 120, target), '--batch-size', '48',
          '--log-every-steps', '10']


def segments(log_path):
  """Each start of the chief, in order: (the step it resumed from, its
  progress [(time.time(), step)])."""
  with open(log_path, errors='replace') as f:
    starts = f.read().split('--- ')[1:]
  year = datetime.date.today().year
  found = []
  for text in starts:
    resumed = re.search(r'resuming from step ([\d,]+) of', text)
    found.append((int(resumed.group(1).replace(',', '')) if resumed else 0, [
        (datetime.datetime.strptime(f'{year}{stamp}',
                                    '%Y%m%d %H:%M:%S.%f').timestamp(),
         int(step)) for stamp, step in _LINE.findall(text)]))
  return found


def worker_pids(launcher_log):
  with open(launcher_log) as f:
    return [int(p) for p in re.findall(r'started worker-1 \(pid (\d+)\)',
                                       f.read())]


def kill_worker_after_a_checkpoint(launcher, launcher_log, job_dir, start,
                                   after):
  """Once start `start` of worker 1 runs and a checkpoint past step `after`
  exists, SIGKILLs worker 1; returns time.time()."""
  deadline = time.monotonic() + 240
  while len(worker_pids(launcher_log)) < start:
    assert launcher.poll() is None and time.monotonic() < deadline, (
        'the job was not restarted')
    time.sleep(0.1)
  processes.wait_for_checkpoint_after(job_dir, after, launcher)
  time.sleep(0.5)  # mid-way between checkpoints, not just after one
  os.kill(worker_pids(launcher_log)[-1], signal.SIGKILL)
  return time.time()


def restart_cost(starts, killed_at):
  """Steps redone and seconds lost by the kill at killed_at: from the step
  the chief had reached to the step the next start resumed from, and until
  the chief passed the step it had reached."""
  (_, before), (resumed, after) = starts
  reached = max(step for when, step in before if when <= killed_at)
  recent = [(w, s) for w, s in before if killed_at - 2 <= w <= killed_at]
  rate = (recent[-1][1] - recent[0][1]) / max(recent[-1][0] - recent[0][0],
                                             1e-3)
  passed = min(w for w, s in after if s > reached)
  return {'reached': reached, 'resumed_from': resumed,
          'steps_redone': reached - resumed, 'steps_per_sec': round(rate),
          'secs_lost': round(passed - killed_at, 1)}


def test_multiworker_the_whole_job_restarted_twice_ends_at_its_target(
    tmp_path, mnist_dir):
  """A chief and 2 workers in sync; worker 1 is SIGKILLed, every task is
  restarted with the same TF_CONFIG (Vertex AI's restartJobOnWorkerRestart,
  as local_cluster.py does it), and again after the first restart. The job
  ends at exactly its target with one export; each kill redoes at most the
  steps since the newest checkpoint (--checkpoint-secs 1)."""
  job_dir = str(tmp_path / 'job')
  log = str(tmp_path / 'local_cluster.log')
  started = time.monotonic()
  chief_log = os.path.join(job_dir, 'logs', 'chief-0.log')
  kills, after = [], 50
  with processes.started(restart_job_args(mnist_dir, job_dir), log) as job:
    for start in (1, 2):
      kills.append(kill_worker_after_a_checkpoint(job, log, job_dir, start,
                                                  after))
      # The next kill comes once the restart has passed this one's step.
      after = max(step for _, step in segments(chief_log)[-1][1]) + 50
    status = job.wait(timeout=400)
  with open(log) as f:
    launcher = f.read()
  assert status == 0, launcher[-3000:]
  assert launcher.count('restarting every task') == 2, launcher[-3000:]
  assert len(worker_pids(log)) == 3
  assert_one_export_at_the_target(job_dir, RESTART_TARGET)
  starts = segments(chief_log)
  assert len(starts) == 3
  costs = [restart_cost(starts[i:i + 2], killed_at)
           for i, killed_at in enumerate(kills)]
  for cost in costs:
    # A checkpoint at least every second, and progress lines every 10 steps.
    assert 0 <= cost['steps_redone'] <= cost['steps_per_sec'] * 1.5 + 20, (
        costs)
  print(json.dumps({'fault': 'SIGKILL worker-1 twice, whole job restarted',
                    'kills': costs,
                    'job_secs': round(time.monotonic() - started, 1)}))


def test_multiworker_a_worker_lost_for_good_ends_every_task(
    tmp_path, mnist_dir):
  """Without a restart: the chief and the other worker exit 1 within
  seconds, the evaluator once the chief has been gone --lost-task-secs;
  no task is left running."""
  job_dir = str(tmp_path / 'job')
  bound = 10
  args = job_args(mnist_dir, job_dir, bound, SYNC_TARGET) + [
      '--batch-size', '48']
  with cluster_tasks.Tasks(2, 0, args, str(tmp_path / 'logs')) as tasks:
    tasks.start_all()
    tasks.start('evaluator-0')
    killed, _, _ = kill_mid_run(tasks, job_dir, 'worker-1', SYNC_TARGET,
                                after=100)
    others = ['chief-0', 'worker-0', 'evaluator-0']
    ended = tasks.wait(others, timeout=bound + 60)
  slack = (peers.SYNC_MISSES + 1) * (peers.POLL_SECS + peers.PROBE_SECS) + 5
  for name, (status, when) in ended.items():
    assert status == peers.EXIT_STATUS, tasks.output(name)[-2000:]
    assert when - killed <= bound + slack, (name, when - killed)
  assert re.search(r'error: chief 0 stops: worker \d \(127\.0\.0\.1:\d+\) '
                   'went away during synchronous training',
                   tasks.output('chief-0'))
  assert re.search(r'error: evaluator 0 stops: chief 0 \(127\.0\.0\.1:\d+\) '
                   f'has refused connections for {bound} s',
                   tasks.output('evaluator-0'))
  print(json.dumps({'fault': 'worker-1 lost, synchronous, no restart',
                    'lost_task_secs': bound, 'exited_after_secs': {
                        n: round(w - killed, 1) for n, (_, w) in
                        ended.items()}}))
