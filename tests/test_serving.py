"""The export's signatures, reloaded and through saved_model_cli, per model."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from trainer import config as config_lib
from trainer import data
from trainer import export
from trainer import inputs
from trainer import model
from trainer import train

SIGNATURES = {
    export.DEFAULT_SIGNATURE: (export.SERVING_INPUT, tf.float32),
    export.UINT8_SIGNATURE: (export.SERVING_INPUT, tf.uint8),
    export.IMAGE_SIGNATURE: (export.IMAGE_INPUT, tf.string),
}
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable),
                               'saved_model_cli')


def tiny_config(job_dir, data_dir, model_type, **overrides):
  """A model that learns the small data in 40 steps, in a few seconds."""
  settings = dict(job_dir=job_dir, data_dir=data_dir, model_type=model_type,
                  train_steps=40, batch_size=32, hidden_units=(32,),
                  eval_secs=0)
  settings.update(overrides)
  return config_lib.Config(**settings)


@pytest.fixture(scope='module', params=config_lib.MODEL_TYPES)
def job(request, tmp_path_factory, mnist_dir):
  """(config, results, estimator predictions on the test split)."""
  cfg = tiny_config(str(tmp_path_factory.mktemp('job') / request.param),
                    mnist_dir, request.param)
  results = train.run(cfg)
  estimator = model.build_estimator(cfg, train.estimator_config(cfg))
  predictions = list(estimator.predict(
      inputs.predict_input_fn(data.load(mnist_dir).test, 100)))
  expected = {key: np.array([p[key] for p in predictions])
              for key in model.SERVING_OUTPUTS}
  expected['class_ids'] = expected['class_ids'].ravel()
  return cfg, results, expected


@pytest.fixture(scope='module')
def signatures(job):
  loaded = tf.saved_model.load(job[1]['export_dir'])
  return loaded, loaded.signatures


def png(image):
  return tf.io.encode_png(image.reshape(28, 28, 1)).numpy()


def test_export_has_three_signatures(signatures):
  _, found = signatures
  assert set(found) == set(SIGNATURES)
  for name, (input_name, dtype) in SIGNATURES.items():
    (spec,) = found[name].structured_input_signature[1].values()
    assert list(found[name].structured_input_signature[1]) == [input_name]
    assert spec.dtype == dtype
    assert set(found[name].structured_outputs) == set(model.SERVING_OUTPUTS)


@pytest.mark.parametrize('form', [
    'float 28x28', 'float 784', 'uint8 28x28', 'uint8 784', 'png'])
def test_signatures_match_estimator_predict(signatures, job, mnist_arrays,
                                            form):
  _, found = signatures
  _, _, expected = job
  images = mnist_arrays['test'][0]
  kind, _, shape = form.partition(' ')
  if kind == 'png':
    got = found[export.IMAGE_SIGNATURE](
        image_bytes=tf.constant([png(image) for image in images]))
  else:
    pixels = images.reshape(-1, 784) if shape == '784' else images
    name, dtype = {'float': (export.DEFAULT_SIGNATURE, np.float32),
                   'uint8': (export.UINT8_SIGNATURE, np.uint8)}[kind]
    got = found[name](x=tf.constant(pixels.astype(dtype)))
  np.testing.assert_array_equal(got['class_ids'].numpy(),
                                expected['class_ids'])
  for key in ('probabilities', 'logits'):
    np.testing.assert_allclose(got[key].numpy(), expected[key], rtol=1e-4,
                               atol=1e-5)


def test_wrong_shape_is_refused_not_reshaped(signatures):
  _, found = signatures
  for bad in ([784, 2], [3, 10], [784]):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match='x must be a batch of images'):
      found[export.DEFAULT_SIGNATURE](x=tf.zeros(bad))


def test_decode_keeps_28x28_and_fits_other_sizes():
  """Other sizes keep their aspect ratio, padded with black (MNIST's)."""
  white = np.full((28, 56, 1), 255, np.uint8)
  image = np.arange(784, dtype=np.uint32).reshape(28, 28, 1) % 256
  rgb = np.repeat(image.astype(np.uint8), 3, axis=2)
  decoded = export.decode_images(tf.constant([
      tf.io.encode_png(white).numpy(),
      tf.io.encode_png(image.astype(np.uint8)).numpy(),
      tf.io.encode_png(rgb).numpy(),
      tf.io.encode_jpeg(rgb, quality=100).numpy()])).numpy()
  assert decoded.shape == (4, 28, 28) and decoded.dtype == np.uint8
  expected_white = np.zeros((28, 28), np.uint8)
  expected_white[7:21] = 255
  np.testing.assert_array_equal(decoded[0], expected_white)
  np.testing.assert_array_equal(decoded[1], image[:, :, 0])
  np.testing.assert_array_equal(decoded[2], image[:, :, 0])
  assert np.abs(decoded[3].astype(int) - image[:, :, 0]).mean() < 8


def saved_model_cli(*args):
  result = subprocess.run([SAVED_MODEL_CLI, *args], capture_output=True,
                          text=True, timeout=120, check=False,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.mark.slow
def test_saved_model_cli_shows_the_documented_signatures(job):
  _, results, _ = job
  shown = saved_model_cli('show', '--dir', results['export_dir'], '--all')
  blocks = {block.split("']")[0]: block
            for block in shown.split("signature_def['")[1:]}
  assert set(blocks) == set(SIGNATURES)
  assert "inputs['x']" in blocks['serving_default']
  assert 'DT_FLOAT' in blocks['serving_default']
  assert 'unknown_rank' in blocks['serving_default']
  assert 'DT_UINT8' in blocks[export.UINT8_SIGNATURE]
  assert "inputs['image_bytes']" in blocks[export.IMAGE_SIGNATURE]
  assert 'DT_STRING' in blocks[export.IMAGE_SIGNATURE]
  for block in blocks.values():
    assert "outputs['class_ids']" in block and 'DT_INT64' in block
    assert "outputs['probabilities']" in block
    assert "outputs['logits']" in block


@pytest.mark.slow
def test_saved_model_cli_run_returns_the_same_classes(job, mnist_arrays,
                                                      tmp_path):
  _, results, expected = job
  images = mnist_arrays['test'][0][:8]
  saved_model_cli(
      'run', '--dir', results['export_dir'], '--tag_set', 'serve',
      '--signature_def', export.DEFAULT_SIGNATURE, '--input_exprs',
      f'x={images.reshape(8, 784).tolist()}', '--outdir',
      str(tmp_path / 'pixels'))
  np.testing.assert_array_equal(np.load(tmp_path / 'pixels' / 'class_ids.npy'),
                                expected['class_ids'][:8])

  # Bytes do not fit --input_exprs (it splits on ';' and '='): use --inputs.
  np.save(tmp_path / 'pngs.npy', np.array([png(image) for image in images]))
  saved_model_cli(
      'run', '--dir', results['export_dir'], '--tag_set', 'serve',
      '--signature_def', export.IMAGE_SIGNATURE, '--inputs',
      f'image_bytes={tmp_path / "pngs.npy"}', '--outdir',
      str(tmp_path / 'images'))
  np.testing.assert_array_equal(np.load(tmp_path / 'images' / 'class_ids.npy'),
                                expected['class_ids'][:8])
