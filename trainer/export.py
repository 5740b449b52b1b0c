"""SavedModel exports and results.json.

Exports live under <job-dir>/export/: `latest/<timestamp>` (the newest
evaluated checkpoint) and `best/<timestamp>` (the highest test accuracy so
far). One of each is kept, so the folder stays bounded however long a job
runs or however often it is resumed.
"""

import json
import os

import tensorflow as tf

from trainer import inputs

EXPORT_DIR = 'export'
RESULTS_FILE = 'results.json'
SERVING_INPUT = 'x'


def serving_input_fn(scale_inputs):
  """Serving takes raw 0-255 pixels, [batch, 784] or [batch, 28, 28].

  The export scales them exactly as training did, so a client sends pixels
  as it has them (from a PNG or the MNIST files) and never needs to know.
  """
  def receiver_fn():
    pixels = tf.compat.v1.placeholder(tf.float32, shape=None,
                                      name=SERVING_INPUT)
    return tf.estimator.export.ServingInputReceiver(
        inputs.pixels_to_features(pixels, scale_inputs),
        {SERVING_INPUT: pixels})
  return receiver_fn


def _higher_accuracy(best_eval_result, current_eval_result):
  return (best_eval_result is None or
          current_eval_result['accuracy'] > best_eval_result['accuracy'])


def exporters(scale_inputs):
  receiver_fn = serving_input_fn(scale_inputs)
  return (
      tf.estimator.LatestExporter('latest', receiver_fn, exports_to_keep=1),
      tf.estimator.BestExporter('best', receiver_fn, exports_to_keep=1,
                                compare_fn=_higher_accuracy),
  )


def newest_export(job_dir, name='latest'):
  """Path of the newest SavedModel under <job-dir>/export/<name>, or None."""
  folder = os.path.join(job_dir, EXPORT_DIR, name)
  if not tf.io.gfile.isdir(folder):
    return None
  stamps = sorted(d.rstrip('/') for d in tf.io.gfile.listdir(folder)
                  if d.rstrip('/').isdigit())
  return os.path.join(folder, stamps[-1]) if stamps else None


def write_results(job_dir, results):
  """Writes results.json atomically: readers never see half a file."""
  path = os.path.join(job_dir, RESULTS_FILE)
  tmp = path + '.tmp'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(results, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, path, overwrite=True)
  return path


def read_results(job_dir):
  path = os.path.join(job_dir, RESULTS_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)
