"""Runs an export's three signatures on given inputs, in any TensorFlow 2.x.

  python signatures_probe.py INPUTS.npz OUTPUTS.npz NAME=SAVED_MODEL...

INPUTS.npz holds `pixels` (float32 [n, 28, 28]) and `pngs` (bytes [n]).
OUTPUTS.npz gets NAME/SIGNATURE/OUTPUT arrays, plus `tensorflow` (the
version that ran them) and `has_estimator` (whether it has tf.estimator). The tests run it with a TensorFlow other than
their own, so it imports nothing but TensorFlow and NumPy.
"""

import sys

import numpy as np
import tensorflow as tf


def main(inputs_path, outputs_path, *models):
  inputs = np.load(inputs_path)
  feeds = {
      'serving_default': {'x': tf.constant(inputs['pixels'])},
      'uint8:serving_default': {
          'x': tf.constant(inputs['pixels'].astype(np.uint8))},
      'image:serving_default': {
          'image_bytes': tf.constant(list(inputs['pngs']))},
  }
  found = {'tensorflow': np.array(tf.__version__),
           'has_estimator': np.array(hasattr(tf, 'estimator'))}
  for model in models:
    name, _, path = model.partition('=')
    loaded = tf.saved_model.load(path)
    for signature, feed in feeds.items():
      for key, value in loaded.signatures[signature](**feed).items():
        found[f'{name}/{signature}/{key}'] = value.numpy()
  np.savez(outputs_path, **found)


if __name__ == '__main__':
  main(*sys.argv[1:])
