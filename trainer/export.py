"""SavedModel exports: serving signatures and exporters.

Exports live under <job-dir>/export/: `latest/<timestamp>` (the newest
evaluated checkpoint) and `best/<timestamp>` (the highest test accuracy so
far). One of each is kept, so the folder stays bounded however long a job
runs or however often it is resumed.
"""

import os

import tensorflow as tf

from trainer import data
from trainer import inputs

EXPORT_DIR = 'export'
SERVING_INPUT = 'x'
IMAGE_INPUT = 'image_bytes'  # TF Serving's JSON takes {"b64": ...} for *_bytes

# The Estimator names the signature of an alternative receiver
# '<receiver>:<export output key>', and the model's one key is serving_default.
DEFAULT_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
_UINT8, _IMAGE = 'uint8', 'image'
UINT8_SIGNATURE = f'{_UINT8}:{DEFAULT_SIGNATURE}'
IMAGE_SIGNATURE = f'{_IMAGE}:{DEFAULT_SIGNATURE}'


def serving_input_fn(scale_inputs):
  """Three signatures on one input chain, each feeding it at its own point.

  image_bytes (PNG/JPEG) -> uint8 pixels -> float32 pixels -> features:
  `serving_default` feeds `x` float32, `uint8:serving_default` feeds `x`
  uint8, `image:serving_default` feeds `image_bytes`; what lies upstream of
  the fed tensor does not run. Pixels are raw 0-255 (as in a PNG or the MNIST
  files), [batch, 784] or [batch, 28, 28]; the export scales them exactly as
  training did, so a client never needs to know how.
  """
  def receiver_fn():
    image_bytes = tf.compat.v1.placeholder(tf.string, [None],
                                           name=IMAGE_INPUT)
    pixels_uint8 = tf.compat.v1.placeholder_with_default(
        decode_images(image_bytes), shape=None, name='x_uint8')
    pixels = tf.compat.v1.placeholder_with_default(
        tf.cast(pixels_uint8, tf.float32), shape=None, name=SERVING_INPUT)
    return tf.estimator.export.ServingInputReceiver(
        inputs.pixels_to_features(_check_shape(pixels), scale_inputs),
        {SERVING_INPUT: pixels},
        receiver_tensors_alternatives={
            _UINT8: {SERVING_INPUT: pixels_uint8},
            _IMAGE: {IMAGE_INPUT: image_bytes},
        })
  return receiver_fn


def _check_shape(pixels):
  """Fails a request of the wrong shape instead of reshaping it silently."""
  shape = tf.shape(pixels)
  ok = tf.logical_and(
      tf.reduce_any(tf.equal(tf.size(shape), [2, 3])),
      tf.equal(tf.reduce_prod(shape[1:]), data.PIXELS))
  check = tf.debugging.Assert(ok, [
      f'{SERVING_INPUT} must be a batch of images, [batch, {data.PIXELS}] or '
      f'[batch, {data.IMAGE_SIZE}, {data.IMAGE_SIZE}]; got shape', shape])
  with tf.control_dependencies([check]):
    return tf.identity(pixels)


def decode_images(image_bytes):
  """PNG/JPEG strings [batch] -> uint8 grayscale [batch, 28, 28].

  A 28x28 image passes unchanged; another size is scaled to fit 28x28
  (aspect ratio kept, antialiased, padded with black, the MNIST background).
  """
  size = data.IMAGE_SIZE

  def decode(one):
    image = tf.io.decode_image(one, channels=1, expand_animations=False)
    image = tf.cond(
        tf.reduce_all(tf.equal(tf.shape(image)[:2], size)),
        lambda: image,
        lambda: tf.saturate_cast(tf.round(tf.image.resize_with_pad(
            image, size, size, antialias=True)), tf.uint8))
    return tf.reshape(image, [size, size])

  return tf.map_fn(decode, image_bytes,
                   fn_output_signature=tf.TensorSpec([size, size], tf.uint8))


def _higher_accuracy(best_eval_result, current_eval_result):
  """At least as accurate: BestExporter's first call reads the best result
  from the event files, which may already hold the current evaluation."""
  return (best_eval_result is None or
          current_eval_result['accuracy'] >= best_eval_result['accuracy'])


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

