"""Event files where Vertex AI's TensorBoard reads them, while the job runs.

A Vertex AI custom job created with a TensorBoard instance (the job spec's
`tensorboard` and `serviceAccount` fields) gets AIP_TENSORBOARD_LOG_DIR and
uploads what appears there as the job runs. The Estimator writes its event
files beside its checkpoints (training: <job-dir>/, evaluation:
<job-dir>/eval/), which a resumed job needs where they are. So a thread
copies each new or grown event file to the same place under the log dir
every SYNC_SECS, and once more when the run ends: TensorBoard shows the
runs `.` (training) and `eval` as it does for the job dir itself.
"""

import contextlib
import logging
import os
import threading

import tensorflow as tf

ENV = 'AIP_TENSORBOARD_LOG_DIR'
SYNC_SECS = 30
_EVENTS = 'events.out.tfevents.*'


class Sync:
  """Copies the job dir's event files that changed since the last call."""

  def __init__(self, job_dir, log_dir):
    self.job_dir, self.log_dir = job_dir.rstrip('/'), log_dir.rstrip('/')
    self._sizes = {}

  def once(self):
    """Copies what changed; returns how many files it copied."""
    copied = 0
    for pattern in (_EVENTS, f'*/{_EVENTS}'):
      for path in tf.io.gfile.glob(f'{self.job_dir}/{pattern}'):
        size = tf.io.gfile.stat(path).length
        if self._sizes.get(path) == size:
          continue
        target = self.log_dir + path[len(self.job_dir):]
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(path, target, overwrite=True)
        self._sizes[path] = size
        copied += 1
    return copied


@contextlib.contextmanager
def synced(job_dir, active=True, environ=None, every_secs=SYNC_SECS):
  """Keeps AIP_TENSORBOARD_LOG_DIR up to date while the block runs.

  Does nothing when the variable is unset or `active` is false (tasks
  that write no events). A failed copy is logged and retried at the next
  sync: TensorBoard is worth no failed job.
  """
  log_dir = (os.environ if environ is None else environ).get(ENV)
  if not log_dir or not active:
    yield None
    return
  sync, stop = Sync(job_dir, log_dir), threading.Event()

  def loop():
    while not stop.wait(every_secs):
      _try(sync)

  thread = threading.Thread(target=loop, name='tensorboard-sync',
                            daemon=True)
  thread.start()
  logging.info('copying event files to %s=%s every %ss', ENV, log_dir,
               every_secs)
  try:
    yield sync
  finally:
    stop.set()
    thread.join()
    _try(sync)


def _try(sync):
  try:
    sync.once()
  except tf.errors.OpError as e:
    logging.warning('could not copy event files to %s: %s', sync.log_dir,
                    e.message.splitlines()[0])
