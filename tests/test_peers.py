"""Which tasks each task needs, and when one counts as lost (fake clock)."""

import queue
import socket
import time

from trainer import cluster
from trainer import laststep
from trainer import peers

PS_JOB = {'chief': ('c:1',), 'worker': ('w:2', 'w:3'), 'ps': ('p:4',)}
SYNC_JOB = {'chief': ('c:1',), 'worker': ('w:2', 'w:3')}


def test_who_needs_whom():
  role = lambda t, i=0, spec=PS_JOB: cluster.Role(t, i, spec)  # noqa: E731
  assert peers.needed(role('chief')) == {'ps 0': 'p:4'}
  assert peers.needed(role('worker', 1)) == {'ps 0': 'p:4', 'chief 0': 'c:1'}
  assert peers.needed(role('ps')) == {'chief 0': 'c:1'}
  assert peers.needed(role('evaluator')) == {'chief 0': 'c:1'}
  assert peers.needed(role('worker', 0, SYNC_JOB)) == {'chief 0': 'c:1',
                                                       'worker 1': 'w:3'}
  assert peers.needed(cluster.Role()) == {}


class Clock:
  now = 0.0

  def __call__(self):
    return self.now


def test_a_task_is_lost_after_the_bound_since_it_was_last_reached():
  clock, up = Clock(), {'ps 0': True}
  watch = peers.Watch({'ps 0': 'p:4'}, 30, probe=lambda a: up['ps 0'],
                      clock=clock)
  clock.now = 5
  assert watch.check() is None
  up['ps 0'] = False  # killed at 5 s
  clock.now = 34
  assert watch.check() is None
  up['ps 0'] = True  # restarted in time
  clock.now = 36
  assert watch.check() is None
  up['ps 0'] = False
  clock.now = 65
  assert watch.check() is None
  clock.now = 66
  assert watch.check() == 'ps 0'
  assert 'ps 0 (p:4) has refused connections for 30 s' in watch.describe(
      'ps 0')


def test_a_task_never_reached_gets_longer_to_start():
  clock = Clock()
  watch = peers.Watch({'chief 0': 'c:1'}, 30, probe=lambda a: False,
                      clock=clock)
  clock.now = peers.FIRST_CONTACT_SECS - 1
  assert watch.check() is None
  clock.now = peers.FIRST_CONTACT_SECS
  assert watch.check() == 'chief 0'
  assert 'never accepted a connection' in watch.describe('chief 0')


def test_reachable_probes_a_real_port():
  with socket.socket() as server:
    server.bind(('127.0.0.1', 0))
    server.listen()
    address = '127.0.0.1:%d' % server.getsockname()[1]
    assert peers.reachable(address)
  assert not peers.reachable(address)
  assert not peers.reachable('no-such-host.invalid:1')


def test_workers_of_an_asynchronous_job_leave_the_last_steps_to_the_chief():
  chief, worker = (cluster.Role('chief', 0, PS_JOB),
                   cluster.Role('worker', 1, PS_JOB))
  assert [h.last_step for h in laststep.hooks(chief, 3000)] == [3000]
  assert [h.last_step for h in laststep.hooks(worker, 3000)] == [
      3000 - 3 * laststep.MARGIN_PER_TRAINER]
  assert laststep.hooks(cluster.Role('ps', 0, PS_JOB), 3000) == []
  assert laststep.hooks(cluster.Role('worker', 0, SYNC_JOB), 3000) == []
  assert laststep.hooks(cluster.Role(), 3000) == []


def test_a_synchronous_peer_that_went_away_is_lost_even_if_it_comes_back():
  clock, up = Clock(), [True]
  watch = peers.Watch({'worker 0': 'w:2'}, 600, went_away=True,
                      probe=lambda a: up[0], clock=clock)
  assert watch.check() is None
  up[0] = False
  clock.now = 1
  assert watch.check() is None, 'one refused probe is not enough'
  clock.now = 2
  assert watch.check() == 'worker 0'
  assert 'went away during synchronous training' in watch.describe(
      'worker 0')


def test_synchronous_jobs_are_those_without_parameter_servers():
  assert peers.synchronous(cluster.Role('worker', 0, SYNC_JOB))
  assert not peers.synchronous(cluster.Role('worker', 0, PS_JOB))
  assert not peers.synchronous(cluster.Role('evaluator', 0, SYNC_JOB))


def test_watching_ends_the_process_once_a_needed_task_is_lost(
    monkeypatch, capsys):
  """A ps whose chief has gone: status 1 and one line, or 0 once the job is
  done (os._exit is recorded instead of taken)."""
  exits = queue.Queue()
  monkeypatch.setattr(peers.os, '_exit', exits.put)
  monkeypatch.setattr(peers, 'POLL_SECS', 0.05)
  for done, status in ((False, peers.EXIT_STATUS), (True, 0)):
    chief = socket.socket()
    chief.bind(('127.0.0.1', 0))
    chief.listen()
    address = '127.0.0.1:%d' % chief.getsockname()[1]
    role = cluster.Role('ps', 0, {'chief': (address,), 'ps': ('p:4',)})
    with peers.watching(role, 0.3, finished=lambda done=done: done):
      time.sleep(0.2)  # reached
      chief.close()
      assert exits.get(timeout=10) == status
    line = capsys.readouterr().err.strip().splitlines()[0]
    if done:
      assert line == 'ps 0: the job is done and chief 0 has gone; stopping'
    else:
      assert line == (f'error: ps 0 stops: chief 0 ({address}) has refused '
                      'connections for 0.3 s, and this task cannot go on '
                      'without it (--lost-task-secs 0.3); once every task is '
                      'stopped, rerun the job to resume from its newest '
                      'checkpoint')
    while not exits.empty():
      exits.get()
