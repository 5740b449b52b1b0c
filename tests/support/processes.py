"""Start, watch and stop real trainer processes in tests.

Waits are on files the trainer writes (a checkpoint past a given step), never
on elapsed time, and every process started is stopped by its PID.
"""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))  # tests/support/ -> the checkout
TASK = [sys.executable, '-m', 'trainer.task']
LOCAL_CLUSTER = [sys.executable, os.path.join(ROOT, 'scripts',
                                              'local_cluster.py')]
# Small, quick models whose runs still last a few seconds: long enough to
# be stopped after a periodic checkpoint and before the target step.
SMALL = ['--hidden-units', '64,32', '--batch-size', '32',
         '--checkpoint-secs', '1', '--keep-checkpoints', '50',
         '--log-every-steps', '500']


def env():
  """The environment of a trainer process: no MNIST_DATA_DIR, no TF_CONFIG."""
  return {k: v for k, v in os.environ.items()
          if k not in ('MNIST_DATA_DIR', 'TF_CONFIG')}


@contextlib.contextmanager
def started(args, log_path):
  """Popen(args) writing to log_path; on leaving, stops it if it still runs.

  SIGTERM first (local_cluster.py then stops its tasks by PID), SIGKILL
  if it has not exited a minute later.
  """
  with open(log_path, 'w') as log:
    proc = subprocess.Popen(args, cwd=ROOT, env=env(), stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
  try:
    yield proc
  finally:
    stop(proc)


def stop(proc, timeout=60):
  """SIGTERM, then SIGKILL if proc has not exited within timeout seconds."""
  if proc.poll() is None:
    proc.terminate()
    try:
      proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()


def run(args, timeout=300, **environ):
  """subprocess.run with env() plus environ; captures text output."""
  return subprocess.run(args, cwd=ROOT, env={**env(), **environ},
                        capture_output=True, text=True, timeout=timeout,
                        check=False)


def last_json(result):
  """The JSON a successful trainer (or local_cluster.py) run printed last."""
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def newest_step(job_dir):
  """Step of the newest checkpoint the `checkpoint` file names, or None."""
  try:
    with open(os.path.join(job_dir, 'checkpoint')) as f:
      found = re.search(r'model_checkpoint_path: "model\.ckpt-(\d+)"',
                        f.read())
  except FileNotFoundError:
    return None
  return int(found.group(1)) if found else None


def wait_for_checkpoint_after(job_dir, step, proc, timeout=240):
  """Waits until a checkpoint past `step` exists; fails if proc ends first."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    found = newest_step(job_dir)
    if found is not None and found > step:
      return found
    if proc.poll() is not None:
      raise AssertionError(f'{proc.args} exited ({proc.returncode}) before '
                           f'a checkpoint after step {step}')
    time.sleep(0.05)
  raise AssertionError(f'no checkpoint after step {step} in {timeout}s')


def wait_for_file(path, proc, timeout=120):
  """Waits until path exists; fails if proc ends first."""
  deadline = time.monotonic() + timeout
  while not os.path.exists(path):
    if proc.poll() is not None:
      raise AssertionError(f'{proc.args} exited ({proc.returncode}) before '
                           f'writing {path}')
    if time.monotonic() > deadline:
      raise AssertionError(f'no {path} after {timeout}s')
    time.sleep(0.05)


def wait_for_line(path, pattern, proc, timeout=60):
  """The first match of `pattern` in the file at path, once it is written."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    with open(path) as f:
      found = re.search(pattern, f.read())
    if found:
      return found
    if proc.poll() is not None:
      raise AssertionError(f'{proc.args} exited before printing {pattern}')
    time.sleep(0.05)
  raise AssertionError(f'{path} has no {pattern} after {timeout}s')


def is_running(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  return True


def free_ports(count):
  """`count` distinct free ports on 127.0.0.1, for hand-written TF_CONFIGs."""
  with contextlib.ExitStack() as stack:
    sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
    for s in sockets:
      s.bind(('127.0.0.1', 0))
    return [s.getsockname()[1] for s in sockets]
