"""Faults in a parameter-server job, with real processes on loopback.

A chief, a worker and a ps, each `python -m trainer.task` with its own
TF_CONFIG. Mid-run one task is SIGKILLed (a machine lost) and started again
with the same TF_CONFIG, as Vertex AI and AI Platform restart a replica:
the job still ends at exactly --train-steps with one export. A task lost
for good ends the others within --lost-task-secs. Each test prints what
its fault cost (steps redone, seconds) as one JSON line.
"""

import datetime
import json
import os
import re
import time

import pytest
import tensorflow as tf

from tests.support import cluster_tasks
from tests.support import processes
from trainer import jobdir
from trainer import peers

pytestmark = pytest.mark.slow  # real clusters, killed and restarted

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



def test_multiworker_a_killed_worker_ends_the_job_and_a_rerun_resumes(
    tmp_path, mnist_dir):
  """A chief and a worker, synchronous (all-reduce, no ps): the worker is
  SIGKILLed and started again. TensorFlow 2.15 cannot take it back into the
  all-reduce group, so the chief exits 1 within seconds (trainer/peers.py),
  and a rerun of the whole job resumes from the newest checkpoint and ends
  at its target with one export."""
  job_dir = str(tmp_path / 'job')
  target = SYNC_TARGET
  # Progress every 10 steps: the step reached at the kill, to within 10.
  args = job_args(mnist_dir, job_dir, 120, target) + ['--log-every-steps',
                                                      '10']
  with cluster_tasks.Tasks(1, 0, args, str(tmp_path / 'logs')) as tasks:
    tasks.start_all()
    killed, _, newest = kill_mid_run(tasks, job_dir, 'worker-0', target,
                                     after=100)
    tasks.start('worker-0')
    (status, when), = tasks.wait(['chief-0'], timeout=120).values()
    chief = tasks.output('chief-0')
    reached = max(step for _, step in progress(tasks)['chief-0'])
  # The restarted worker is stopped on leaving, as a platform ends a job
  # whose chief failed.
  assert status == peers.EXIT_STATUS, chief[-3000:]
  bound = peers.SYNC_MISSES * (peers.POLL_SECS + peers.PROBE_SECS) + 5
  assert when - killed <= bound, when - killed
  assert re.search(r'error: chief 0 stops: worker 0 \(127\.0\.0\.1:\d+\) went '
                   'away during synchronous training', chief)
  saved = jobdir.global_step(job_dir)
  assert 100 < newest <= saved < target
  rerun_started = time.monotonic()
  with cluster_tasks.Tasks(1, 0, args, str(tmp_path / 'rerun')) as rerun:
    rerun.start_all()
    ended = rerun.wait(TRAINERS, timeout=300)
    assert {name: status for name, (status, _) in ended.items()} == {
        name: 0 for name in TRAINERS}, {n: rerun.output(n)[-2000:]
                                        for n in TRAINERS}
  results = assert_one_export_at_the_target(job_dir, target)
  assert results['resumed_from_step'] == saved
  print(json.dumps({'fault': 'SIGKILL worker-0, synchronous',
                    'chief_exited_after_secs': round(when - killed, 1),
                    'checkpoint_at_kill': newest, 'resumed_from': saved,
                    'steps_redone': max(0, reached - saved),
                    'rerun_secs': round(time.monotonic() - rerun_started, 1)}))
