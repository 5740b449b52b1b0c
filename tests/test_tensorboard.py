"""AIP_TENSORBOARD_LOG_DIR gets the event files while the block runs."""

import os
import time

import tensorflow as tf

from trainer import tensorboard


def write_scalar(folder, tag, step):
  writer = tf.summary.create_file_writer(str(folder))
  with writer.as_default():
    tf.summary.scalar(tag, 0.5, step=step)
  writer.close()


def events(folder):
  return tf.io.gfile.glob(os.path.join(str(folder), 'events.out.tfevents.*'))


def wait_for(condition, timeout=20):
  deadline = time.monotonic() + timeout
  while not condition():
    assert time.monotonic() < deadline, 'the sync did not happen'
    time.sleep(0.02)


def test_event_files_are_copied_while_the_job_runs(tmp_path):
  job_dir, log_dir = tmp_path / 'job', tmp_path / 'logs'
  write_scalar(job_dir, 'loss', 1)
  env = {tensorboard.ENV: str(log_dir)}
  with tensorboard.synced(str(job_dir), environ=env, every_secs=0.05):
    wait_for(lambda: events(log_dir))
    write_scalar(job_dir / 'eval', 'accuracy', 1)  # a new file, a subfolder
    wait_for(lambda: events(log_dir / 'eval'))
  copied, = events(log_dir / 'eval')
  tags = {v.tag for e in tf.compat.v1.train.summary_iterator(copied)
          for v in e.summary.value}
  assert tags == {'accuracy'}
  assert len(events(log_dir)) == len(events(job_dir))


def test_nothing_is_copied_without_the_variable_or_for_other_tasks(tmp_path):
  job_dir, log_dir = tmp_path / 'job', tmp_path / 'logs'
  write_scalar(job_dir, 'loss', 1)
  with tensorboard.synced(str(job_dir), environ={}) as sync:
    assert sync is None
  with tensorboard.synced(str(job_dir), active=False,
                          environ={tensorboard.ENV: str(log_dir)}) as sync:
    assert sync is None
  assert not log_dir.exists()
