"""Trains in a process whose CPU is split into logical devices; prints JSON.

  python tests/support/logical_devices.py DEVICES DATA_DIR JOBS_DIR CONFIG_JSON...

Run by tests/test_distributed.py in a process of its own: the split must
happen before TensorFlow starts its runtime, and then holds for the whole
process. Each CONFIG_JSON (trainer.config.Config fields; job_dir is made
under JOBS_DIR) is trained by train.run, one after the other; the line
printed is a list of {"results": results.json, "losses": {step: loss}},
the losses read from the event files (one summary per --summary-steps).
With TF_CONFIG set, the process is that task of its cluster (a worker's
results are null; the losses are those the chief wrote).
"""

import glob
import json
import os
import sys

from absl import logging
import tensorflow as tf

# trainer/, for a script run from anywhere.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def split_cpu(count):
  cpu, = tf.config.list_physical_devices('CPU')
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def losses(job_dir):
  found = {}
  for path in glob.glob(os.path.join(job_dir, 'events.out.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'loss':
          found[event.step] = value.simple_value
  return found


def main(devices, data_dir, jobs_dir, *configs):
  split_cpu(int(devices))
  from trainer import cluster  # pylint: disable=g-import-not-at-top
  from trainer import config  # pylint: disable=g-import-not-at-top
  from trainer import train  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel('ERROR')
  logging.set_verbosity(logging.INFO)  # the progress lines, as trainer.task
  out = []
  for i, settings in enumerate(configs):
    settings = json.loads(settings)
    for name in ('hidden_units', 'dropout'):
      if name in settings:
        settings[name] = tuple(settings[name])
    job_dir = os.path.join(jobs_dir, f'job{i}')
    results = train.run(config.Config(job_dir=job_dir, data_dir=data_dir,
                                      **settings), cluster.from_environment())
    out.append({'results': results, 'losses': losses(job_dir)})
  print(json.dumps(out))


if __name__ == '__main__':
  main(*sys.argv[1:])
