"""The tasks of a cluster started one by one, as a platform does, for faults.

scripts/local_cluster.py stops a whole job when one task fails; Vertex AI
and AI Platform instead restart the failed replica with the same TF_CONFIG.
Tasks here are separate `python -m trainer.task` processes on loopback
ports, each started, killed and started again by name ('chief-0'); every
process is stopped by its PID on leaving.
"""

import json
import os
import signal
import subprocess
import sys
import time

from tests.support import processes

sys.path.insert(0, os.path.join(processes.ROOT, 'scripts'))
import local_cluster  # pylint: disable=g-import-not-at-top,wrong-import-position


class Tasks:
  """Context manager: a cluster spec and the processes of its tasks."""

  def __init__(self, workers, ps, trainer_args, logs_dir):
    self.spec = local_cluster.cluster_spec(workers, ps)
    self.args = list(trainer_args)
    self.logs_dir = logs_dir
    self.procs = {}
    self.exits = {}  # name -> [(status, time.monotonic() when seen)]
    os.makedirs(logs_dir, exist_ok=True)

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    for proc in self.procs.values():
      if proc.poll() is None:
        proc.kill()
        proc.wait()

  def log(self, name):
    return os.path.join(self.logs_dir, f'{name}.log')

  def start(self, name):
    """Starts task `name` (type-index) with its TF_CONFIG, appending to its
    log; the same TF_CONFIG each time, as a platform restarts a replica."""
    task_type, index = name.rsplit('-', 1)
    environ = {**processes.env(), 'TF_CONFIG': json.dumps(
        local_cluster.tf_config(self.spec, task_type, int(index), self.args))}
    with open(self.log(name), 'a') as log:
      log.write(f'--- started {time.strftime("%H:%M:%S")}\n')
      log.flush()
      self.procs[name] = subprocess.Popen(
          [*processes.TASK, *self.args], cwd=processes.ROOT, env=environ,
          stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return self.procs[name]

  def start_all(self):
    for task_type, index in local_cluster.tasks(self.spec, evaluator=False):
      self.start(f'{task_type}-{index}')

  def kill(self, name):
    """SIGKILL, as a machine lost; returns time.monotonic() of the kill."""
    self.procs[name].send_signal(signal.SIGKILL)
    self.procs[name].wait()
    return time.monotonic()

  def wait(self, names, timeout):
    """Waits until every task in names exits; returns {name: (status, when)}."""
    deadline = time.monotonic() + timeout
    ended = {}
    while len(ended) < len(names):
      for name in names:
        if name not in ended and self.procs[name].poll() is not None:
          ended[name] = (self.procs[name].returncode, time.monotonic())
      if time.monotonic() > deadline:
        raise AssertionError(
            f'{sorted(set(names) - set(ended))} still running after '
            f'{timeout}s; logs in {self.logs_dir}')
      time.sleep(0.1)
    return ended

  def output(self, name):
    with open(self.log(name), errors='replace') as f:
      return f.read()
