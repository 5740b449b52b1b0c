#!/usr/bin/env python3
"""Runs a distributed `python -m trainer.task` job on this machine.

Starts a chief, --workers workers, --ps parameter servers and, with
--evaluator, an evaluator, each a separate process with its own TF_CONFIG
(the shape `gcloud ai-platform local train --distributed` gives) on a free
127.0.0.1 port; writes each task's output to <logs-dir>/<task>.log; waits
until the chief, workers and evaluator are done, then stops the parameter
servers (they serve until stopped, as on Google Cloud). Every shape runs:
`--ps 0` is a synchronous multi-worker job (docs/distributed.md), `--master`
names the chief `master` as legacy AI Platform did, and `--vertex` describes
the job as Vertex AI does, in CLUSTER_SPEC pools (workerpool0-3, the
evaluator listed as pool 3) instead of TF_CONFIG.

Before any task starts, the trainer checks the flags, data and job dir
once (`--validate-only`, as the chief); a bad one stops the script with the
trainer's one-line error. If a task fails, or on Ctrl-C or SIGTERM, every
task still running gets SIGTERM (the chief then saves a checkpoint) and,
after --grace-secs, SIGKILL. Tasks die with this script too (Linux).
Rerunning the same command resumes.

With --restart-job-on-worker-restart a failed task (non-zero status, or
killed) instead restarts the whole job, as Vertex AI's
scheduling.restartJobOnWorkerRestart does: every task still running is
stopped as above, then every task starts again with the same TF_CONFIG
and the job resumes from its newest checkpoint; at most --max-job-restarts
times.

  scripts/local_cluster.py --workers 2 --ps 1 --evaluator -- \\
      --job-dir jobs/cluster --data-dir DIR --train-steps 2000

Exit status: 0 when the job finished (the chief's results JSON is printed),
1 when the trainer flags are refused or a task failed, 130 on Ctrl-C, 143 on
SIGTERM.
"""

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

from trainer import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_POLL_SECS = 0.2


def parse_args(argv):
  parser = cli.ArgumentParser(
      description=__doc__.split('\n\n', maxsplit=1)[0],
      usage='%(prog)s [options] -- TRAINER_FLAGS (with --job-dir)')
  parser.add_argument('--workers', type=int, default=1,
                      help='workers besides the chief (default 1)')
  parser.add_argument('--ps', type=int, default=1,
                      help='parameter servers (default 1)')
  parser.add_argument('--evaluator', action='store_true',
                      help='add an evaluator that evaluates each checkpoint')
  parser.add_argument('--master', action='store_true',
                      help='name the chief task master (legacy AI Platform)')
  parser.add_argument('--vertex', action='store_true',
                      help='set CLUSTER_SPEC (Vertex AI pools), not TF_CONFIG')
  parser.add_argument('--logs-dir',
                      help='folder for <task>.log (default <job-dir>/logs)')
  parser.add_argument('--grace-secs', type=float, default=30,
                      help='seconds from SIGTERM to SIGKILL when stopping')
  parser.add_argument('--restart-job-on-worker-restart', action='store_true',
                      help='when a task fails, restart every task (Vertex '
                      'AI\'s scheduling.restartJobOnWorkerRestart)')
  parser.add_argument('--max-job-restarts', type=int, default=5,
                      help='with --restart-job-on-worker-restart: restarts '
                      'before a failure ends the job (default 5)')
  parser.add_argument('--python', default=sys.executable,
                      help='Python that runs trainer.task')
  parser.add_argument('trainer_args', nargs='*', metavar='TRAINER_FLAGS')
  args = parser.parse_args(argv)
  if args.workers < 0 or args.ps < 0 or args.max_job_restarts < 0:
    parser.error('--workers, --ps and --max-job-restarts must be 0 or more')
  job_dir = _flag_value(args.trainer_args, 'job_dir')
  if not job_dir:
    parser.error('pass the trainer flags after --, including --job-dir')
  if not args.logs_dir:
    if '://' in job_dir:
      parser.error(f'--job-dir {job_dir} is not local; give --logs-dir')
    args.logs_dir = os.path.join(job_dir, 'logs')
  return args


def _flag_value(argv, name):
  """The value of --name / --name-with-hyphens in argv, or None."""
  spellings = {'--' + name, '--' + name.replace('_', '-')}
  for i, arg in enumerate(argv):
    flag, eq, value = arg.partition('=')
    if flag in spellings:
      return value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
  return None


def free_ports(count):
  """`count` distinct free ports on 127.0.0.1."""
  with contextlib.ExitStack() as stack:
    sockets = []
    for _ in range(count):
      s = stack.enter_context(socket.socket())
      s.bind(('127.0.0.1', 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]


def cluster_spec(workers, ps):
  """{"chief": [...], "worker": [...], "ps": [...]} on free loopback ports."""
  ports = iter(free_ports(1 + workers + ps))
  spec = {'chief': [f'127.0.0.1:{next(ports)}']}
  if workers:
    spec['worker'] = [f'127.0.0.1:{next(ports)}' for _ in range(workers)]
  if ps:
    spec['ps'] = [f'127.0.0.1:{next(ports)}' for _ in range(ps)]
  return spec


def tasks(spec, evaluator):
  """(type, index) of every task; the evaluator is not in the cluster spec."""
  order = ('ps', 'chief', 'worker')
  found = [(t, i) for t in order for i in range(len(spec.get(t, ())))]
  return found + ([('evaluator', 0)] if evaluator else [])


def tf_config(spec, task_type, index, trainer_args):
  return {'cluster': spec, 'task': {'type': task_type, 'index': index},
          'job': {'job_name': 'local_cluster', 'args': trainer_args},
          'environment': 'cloud'}


POOLS = ('chief', 'worker', 'ps', 'evaluator')  # Vertex AI's workerpool0-3


def cluster_spec_env(spec, task_type, index, evaluator_address=None):
  """Vertex AI's CLUSTER_SPEC for a task: pools, the evaluator as pool 3."""
  jobs = dict(spec, **({'evaluator': [evaluator_address]}
                       if evaluator_address else {}))
  pool = {job: f'workerpool{i}' for i, job in enumerate(POOLS)}
  return {'cluster': {pool[job]: tasks for job, tasks in jobs.items()},
          'task': {'type': pool[task_type], 'index': index},
          'environment': 'cloud'}


def renamed(spec, task_type, name):
  """The spec and task type with the chief called `name` (e.g. master)."""
  spec = {(name if job == 'chief' else job): tasks
          for job, tasks in spec.items()}
  return spec, (name if task_type == 'chief' else task_type)


def _die_with_parent():
  """Runs in the child: SIGTERM when this script dies, even by SIGKILL."""
  os.setsid()  # Ctrl-C reaches this script only, which stops tasks in order
  if sys.platform.startswith('linux'):
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Cluster:
  """The task processes, started together and stopped by PID."""

  def __init__(self, args):
    self.args = args
    self.spec = cluster_spec(args.workers, args.ps)
    self.evaluator_address = (f'127.0.0.1:{free_ports(1)[0]}'
                              if args.evaluator and args.vertex else None)
    self.procs = {}
    self.logs = {}

  def _env(self, task_type, index):
    env = {k: v for k, v in os.environ.items()
           if k not in ('TF_CONFIG', 'CLUSTER_SPEC')}
    env['PYTHONPATH'] = os.pathsep.join(  # trainer/, even uninstalled
        filter(None, (ROOT, os.environ.get('PYTHONPATH'))))
    if self.args.vertex:
      env['CLUSTER_SPEC'] = json.dumps(cluster_spec_env(
          self.spec, task_type, index, self.evaluator_address))
    else:
      spec, task_type = renamed(self.spec, task_type,
                                'master' if self.args.master else 'chief')
      env['TF_CONFIG'] = json.dumps(tf_config(spec, task_type, index,
                                              self.args.trainer_args))
    return env

  def validate(self):
    """The trainer's one-line error for the flags, data or job dir, or None.

    Checked once, as the chief, before any task starts.
    """
    result = subprocess.run(
        [self.args.python, '-m', 'trainer.task', *self.args.trainer_args,
         '--validate_only'], env=self._env('chief', 0),
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        check=False)
    if result.returncode == 0:
      return None
    lines = result.stderr.strip().splitlines() or [
        f'the trainer exited with status {result.returncode}']
    return lines[-1]

  def start(self):
    os.makedirs(self.args.logs_dir, exist_ok=True)
    for task_type, index in tasks(self.spec, self.args.evaluator):
      name = f'{task_type}-{index}'
      env = self._env(task_type, index)
      path = os.path.join(self.args.logs_dir, f'{name}.log')
      variable = 'CLUSTER_SPEC' if self.args.vertex else 'TF_CONFIG'
      with open(path, 'a') as log:
        log.write(f'--- {time.strftime("%Y-%m-%d %H:%M:%S")} {name} '
                  f'{variable}={env[variable]}\n')
        log.flush()
        self.procs[name] = subprocess.Popen(
            [self.args.python, '-m', 'trainer.task', *self.args.trainer_args],
            env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
      self.logs[name] = path
      print(f'started {name} (pid {self.procs[name].pid}) -> {path}',
            file=sys.stderr)

  def wait(self):
    """Returns the first failed task's name, or None once all are done."""
    while True:
      for name, proc in self.procs.items():
        if proc.poll() not in (None, 0) and not name.startswith('ps-'):
          return name
      if all(p.poll() is not None for n, p in self.procs.items()
             if not n.startswith('ps-')):
        return None
      time.sleep(_POLL_SECS)

  def stop(self):
    """Stops every task still running: the parameter servers last.

    The chief saves its final checkpoint on SIGTERM, reading the
    variables from the parameter servers, so they must still be up.
    """
    ps = [p for n, p in self.procs.items() if n.startswith('ps-')]
    _stop([p for p in self.procs.values() if p not in ps],
          self.args.grace_secs)
    _stop(ps, self.args.grace_secs)

  def last_line(self, name):
    with open(self.logs[name], errors='replace') as f:
      lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else ''

  def resume_advice(self):
    """How to go on after a failure: only if there is something to resume."""
    job_dir = _flag_value(self.args.trainer_args, 'job_dir')
    if '://' in job_dir:
      return (f'; if {job_dir} holds a checkpoint, rerun the same command to '
              'resume from it')
    if os.path.exists(os.path.join(job_dir, 'checkpoint')):
      return '; rerun the same command to resume from the newest checkpoint'
    return ''

  def describe(self, name):
    code = self.procs[name].returncode
    how = (f'was killed by {signal.Signals(-code).name}' if code < 0
           else f'exited with status {code}')
    return f'{name} {how}: {self.last_line(name)} (log: {self.logs[name]})'


def _stop(procs, grace_secs):
  """SIGTERM to each live process, SIGKILL to those alive after the grace."""
  live = [p for p in procs if p.poll() is None]
  for proc in live:
    proc.send_signal(signal.SIGTERM)
  deadline = time.monotonic() + grace_secs
  for proc in live:
    try:
      proc.wait(timeout=max(0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()


class _Stopped(Exception):
  def __init__(self, signum):
    super().__init__(signum)
    self.signum = signum


def _raise_stopped(signum, frame):
  del frame
  raise _Stopped(signum)


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  cluster = Cluster(args)
  signal.signal(signal.SIGTERM, _raise_stopped)
  signal.signal(signal.SIGINT, _raise_stopped)
  failed, status = None, 0
  try:
    refused = cluster.validate()
    if refused:
      print(refused, file=sys.stderr)
      return 1
    cluster.start()
    failed = cluster.wait()
    restarts = 0
    while failed and args.restart_job_on_worker_restart and (
        restarts < args.max_job_restarts):
      restarts += 1
      print(f'restarting every task (restart {restarts} of at most '
            f'{args.max_job_restarts}): {cluster.describe(failed)}',
            file=sys.stderr, flush=True)
      cluster.stop()
      cluster.start()
      failed = cluster.wait()
  except _Stopped as e:
    print(f'stopping the cluster on {signal.Signals(e.signum).name}',
          file=sys.stderr)
    status = 128 + e.signum
  finally:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cluster.stop()
  if failed:
    print(f'error: {cluster.describe(failed)}{cluster.resume_advice()}',
          file=sys.stderr)
    return 1
  if status:
    if 'chief-0' in cluster.procs:
      print(cluster.describe('chief-0'), file=sys.stderr)
    return status
  print(cluster.last_line('chief-0'))
  return 0


if __name__ == '__main__':
  sys.exit(main())
