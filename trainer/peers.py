"""Ends a task whose job lost a task it needs, within a bound.

TensorFlow waits a long time for a task that is gone: a worker waits up to
2 hours for the chief's session, a chief's CreateSession waits for a dead
parameter server without end, and so does an all-reduce. A platform
restarts a failed replica at the same address with the same TF_CONFIG, and
TensorFlow then recovers in place; one that does not come back would hold
every other machine of the job. So, while a task trains (or serves, or
evaluates), a thread connects to the gRPC port of each task it needs. A
task that refuses connections for --lost-task-secs after it was last
reached (or, one never reached, for max(--lost-task-secs, FIRST_CONTACT_SECS)
after this task began watching: replicas start minutes apart) is lost: this
task says so in one line and exits with status 1, and a rerun of the job
resumes from the newest checkpoint. A task therefore ends at most
--lost-task-secs plus a few seconds (POLL_SECS, PROBE_SECS) after the task
it needs is gone.

Who needs whom: with parameter servers (asynchronous), the chief and the
workers need every ps, the workers and the ps need the chief (the chief
alone saves), and a lost worker is no loss: the others train on. Without
parameter servers (synchronous), every trainer needs every other. An
evaluator needs the chief. A ps whose chief is gone because the job is
done (results.json at the target step) exits 0.
"""

import contextlib
import os
import socket
import sys
import threading
import time

import tensorflow as tf

FIRST_CONTACT_SECS = 600
POLL_SECS = 1.0
PROBE_SECS = 2.0
SYNC_MISSES = 2  # refused probes in a row that mean a synchronous peer left
EXIT_STATUS = 1


def needed(role):
  """{name: 'host:port'} of the tasks that `role` cannot do without."""
  cluster = role.cluster
  chiefs = [t for t in ('chief', 'master') if cluster.get(t)]
  if role.is_local or not chiefs:
    return {}
  if role.is_evaluator:
    wanted = chiefs
  elif cluster.get('ps'):
    wanted = (['ps'] if role.trains else []) + (
        [] if role.is_chief else chiefs)
  else:
    wanted = chiefs + ['worker']
  return {f'{t} {i}': address for t in wanted
          for i, address in enumerate(cluster.get(t, ()))
          if (t, i) != (role.task_type, role.task_index)}


def reachable(address, timeout=PROBE_SECS):
  """Whether a TCP connection to host:port (or [v6]:port) is accepted."""
  host, _, port = address.rpartition(':')
  try:
    with socket.create_connection((host.strip('[]'), int(port)),
                                  timeout=timeout):
      return True
  except (OSError, ValueError):
    return False


def synchronous(role):
  """All-reduce training (no ps): every step needs every trainer."""
  return not role.cluster.get('ps') and not role.is_evaluator


class Watch:
  """The watching thread's state; check() is one poll (tests call it).

  went_away: a task reached once and refused SYNC_MISSES probes in a row
  is lost at once, however soon it comes back (synchronous jobs: TF 2.15
  cannot take a restarted task back into its all-reduce group).
  """

  def __init__(self, peers, lost_secs, went_away=False, probe=reachable,
               clock=time.monotonic):
    self.peers = dict(peers)
    self.lost_secs = lost_secs
    self.went_away = went_away
    self.done = False  # set once training is done: peers may then leave
    self._probe = probe
    self._clock = clock
    started = clock()
    self._seen = {name: None for name in self.peers}
    self._since = {name: started for name in self.peers}
    self._misses = {name: 0 for name in self.peers}
    self._why = None

  def check(self):
    """The name of a lost task, or None; probes each task once."""
    now = self._clock()
    for name, address in self.peers.items():
      if self._probe(address):
        self._seen[name] = self._since[name] = now
        self._misses[name] = 0
        continue
      self._misses[name] += 1
      seen = self._seen[name] is not None
      if seen and self.went_away and (
          self._misses[name] >= SYNC_MISSES):
        self._why = ('went away during synchronous training, which '
                     'TensorFlow 2.15 cannot take up again in place')
        return name
      if not seen:
        allowed = max(self.lost_secs, FIRST_CONTACT_SECS)
        self._why = f'never accepted a connection in {allowed} s'
      else:
        allowed = self.lost_secs
        self._why = f'has refused connections for {allowed} s'
      if now - self._since[name] >= allowed:
        return name
    return None

  def describe(self, name):
    """Why `name`, which check() just returned, is lost."""
    return (f'{name} ({self.peers[name]}) {self._why}, and this task cannot '
            'go on without it')

  def hook(self, last_step):
    """A training hook that ends the watch once last_step is trained."""
    return _DoneAt(self, last_step)


class _DoneAt(tf.compat.v1.train.SessionRunHook):
  """Marks the watch done when the run that reaches last_step ends: the
  trainers of a synchronous job then leave together, and need each other
  no more.
  """

  def __init__(self, watch, last_step):
    self._watch = watch
    self._last_step = last_step

  def begin(self):
    self._global_step = tf.compat.v1.train.get_global_step()
    self._args = tf.compat.v1.train.SessionRunArgs(self._global_step)

  def after_create_session(self, session, coord):
    del coord
    if session.run(self._global_step) >= self._last_step:
      self._watch.done = True

  def before_run(self, run_context):
    del run_context
    return self._args

  def after_run(self, run_context, run_values):
    del run_context
    if run_values.results + 1 >= self._last_step:
      self._watch.done = True

  def end(self, session):
    del session
    self._watch.done = True


class _Nothing:
  """What `watching` yields where this task needs no other."""

  def hook(self, last_step):
    del last_step
    return tf.compat.v1.train.SessionRunHook()


@contextlib.contextmanager
def watching(role, lost_secs, finished=lambda: False):
  """While inside, ends this process once a task it needs is lost; yields
  the Watch, whose hook() ends it when training is done.

  finished() says whether the job is done, in which case a lost task is
  no failure (a ps outlives its chief) and the process exits 0.
  """
  peers = needed(role)
  if not peers:
    yield _Nothing()
    return
  watch = Watch(peers, lost_secs, went_away=synchronous(role))
  stop = threading.Event()

  def loop():
    while not stop.wait(POLL_SECS) and not watch.done:
      lost = watch.check()
      if lost and not stop.is_set() and not watch.done:
        _end(role, watch, lost, finished())

  thread = threading.Thread(target=loop, name='peers', daemon=True)
  thread.start()
  try:
    yield watch
  finally:
    stop.set()


def _end(role, watch, lost, finished):
  if finished:
    _say(f'{role.name}: the job is done and {lost} has gone; stopping')
    os._exit(0)  # pylint: disable=protected-access
  _say(f'error: {role.name} stops: {watch.describe(lost)} (--lost-task-secs '
       f'{watch.lost_secs}); once every task is stopped, rerun the job to '
       'resume from its newest checkpoint')
  os._exit(EXIT_STATUS)  # pylint: disable=protected-access


def _say(line):
  print(line, file=sys.stderr, flush=True)
