"""`python -m trainer.predict` and scripts/make_request.py on a trained job."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from trainer import predict
from trainer import task

import test_serving  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_make_request():
  spec = importlib.util.spec_from_file_location(
      'make_request', os.path.join(ROOT, 'scripts', 'make_request.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


make_request = _load_make_request()


@pytest.fixture(scope='module')
def job(tmp_path_factory, mnist_dir):
  """(job dir, results) of a custom model trained for 40 steps."""
  job_dir = str(tmp_path_factory.mktemp('job') / 'custom')
  return job_dir, task.run(test_serving.tiny_config(job_dir, mnist_dir,
                                                    'custom'))


def run_cli(*args):
  return subprocess.run([sys.executable, '-m', 'trainer.predict', *args],
                        cwd=ROOT, capture_output=True, text=True, timeout=300,
                        check=False)


def predict_rows(capsys, *args):
  """JSON rows that `main` prints (the accuracy line, if any, last)."""
  predict.main([*args, '--format', 'json'])
  return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_accuracy_on_the_test_set_equals_results_json(job, mnist_dir):
  job_dir, results = job
  run = run_cli('--model', job_dir, '--data-dir', mnist_dir, '--format',
                'json')
  assert run.returncode == 0, run.stderr[-3000:]
  lines = [json.loads(line) for line in run.stdout.splitlines()]
  summary, rows = lines[-1], lines[:-1]
  assert len(rows) == summary['count'] == 200
  assert summary['correct'] == round(results['accuracy'] * 200)
  assert summary['accuracy'] == pytest.approx(results['accuracy'], abs=1e-6)
  assert rows[0]['input'] == 'test[0]' and 'label' in rows[0]


def test_images_arrays_and_instances_give_the_same_classes(
    job, mnist_arrays, tmp_path, capsys):
  """One image through each input form and signature, in the order given."""
  job_dir, _ = job
  images, labels = mnist_arrays['test'][0][:4], mnist_arrays['test'][1][:4]
  pngs = []
  for i, image in enumerate(images):
    path = tmp_path / f'digit{i}.png'
    path.write_bytes(test_serving.png(image))
    pngs.append(str(path))
  np.save(tmp_path / 'uint8.npy', images)
  np.save(tmp_path / 'float.npy', images.reshape(4, 784).astype(np.float64))
  with open(tmp_path / 'pixels.jsonl', 'w') as f:
    predict.write_instances(map(predict.pixels_instance, images), f, 'jsonl')

  rows = predict_rows(capsys, '--model', job_dir, *pngs,
                      str(tmp_path / 'uint8.npy'), str(tmp_path / 'float.npy'),
                      str(tmp_path / 'pixels.jsonl'))
  assert [row['input'] for row in rows[:5]] == pngs + [
      f'{tmp_path / "uint8.npy"}[0]']
  classes = np.array([row['class_ids'] for row in rows]).reshape(4, 4)
  assert (classes == classes[0]).all()
  assert (classes[0] == labels).mean() >= 0.75


def test_table_format_and_job_dir_resolution(job, mnist_dir, capsys):
  job_dir, results = job
  outputs = []
  for model_args in (['--model', job_dir], ['--model', results['export_dir']],
                     ['--model', job_dir, '--export', 'best']):
    predict.main([*model_args, '--data-dir', mnist_dir])
    outputs.append(capsys.readouterr().out.splitlines())
  header, first, last = outputs[0][0], outputs[0][1], outputs[0][-1]
  assert header.split() == ['input', 'class', 'probability', 'label']
  assert first.split()[0] == 'test[0]' and len(outputs[0]) == 202
  assert last == (f'accuracy {results["accuracy"]:.4f} '
                  f'({round(results["accuracy"] * 200)}/200)')
  assert outputs[1] == outputs[0], 'the job dir resolves to export_dir'
  assert outputs[2][-1].startswith('accuracy ')


@pytest.mark.parametrize('as_png', [False, True])
@pytest.mark.parametrize('fmt', ['request', 'jsonl'])
def test_request_files_round_trip(job, mnist_dir, tmp_path, capsys, fmt,
                                  as_png):
  """What make_request writes is what servers take, and predicts the same."""
  job_dir, _ = job
  path = str(tmp_path / ('request.json' if fmt == 'request'
                         else 'instances.jsonl'))
  make_request.main(['--data-dir', mnist_dir, '--count', '3', '--format',
                     fmt, '-o', path] + (['--as', 'png'] if as_png else []))
  stderr = capsys.readouterr().err
  with open(path) as f:
    text = f.read()
  if fmt == 'request':
    body = json.loads(text)
    instances = body['instances']
    assert body.get('signature_name') == (
        'image:serving_default' if as_png else None)
  else:
    instances = [json.loads(line) for line in text.splitlines()]
  assert len(instances) == 3
  if as_png:
    assert set(instances[0]) == {'image_bytes'}
    assert set(instances[0]['image_bytes']) == {'b64'}
  else:
    assert np.array(instances[0]['x']).shape == (28, 28)
  labels = [int(v) for v in stderr.split('labels: ')[1].split()[:3]]

  from_request = predict_rows(capsys, '--model', job_dir, path)
  from_test_set = predict_rows(capsys, '--model', job_dir, '--data-dir',
                               mnist_dir)
  assert ([row['class_ids'] for row in from_request] ==
          [row['class_ids'] for row in from_test_set[:3]])
  assert labels == [row['label'] for row in from_test_set[:3]]


def test_make_request_takes_image_files(tmp_path, mnist_arrays, capsys):
  path = tmp_path / 'digit.png'
  path.write_bytes(test_serving.png(mnist_arrays['test'][0][0]))
  make_request.main([str(path), '--format', 'jsonl'])
  (line,) = capsys.readouterr().out.splitlines()
  assert json.loads(line) == predict.image_instance(path.read_bytes())


def _write(path, content):
  if isinstance(content, np.ndarray):
    np.save(path, content)
  else:
    with open(path, 'wb' if isinstance(content, bytes) else 'w') as f:
      f.write(content)
  return str(path)


PIXELS = np.zeros((2, 784), np.uint8).tolist()
PNG = test_serving.png(np.zeros((28, 28), np.uint8))
BAD_INPUTS = {
    'missing.npy': (None, 'input {} does not exist'),
    'notes.txt': ('hello', 'give .png/.jpg/.jpeg images, a .npy array'),
    'text.png': ('not an image', '{} is not a PNG or JPEG image'),
    'photo.jpg': (b'\xff\xd8\xff\xe0 truncated', 'is not a PNG or JPEG image'),
    'shape.npy': (np.zeros((3, 10)), 'has shape [3, 10]; give images as'),
    'strings.npy': (np.array(['a', 'b']), 'holds <U1 values; pixels must be'),
    'scaled.npy': (np.full((1, 784), 0.5), 'values in [0, 1]; the model takes'
                   ' raw 0-255 pixels'),
    'range.npy': (np.full((1, 784), 300), 'values from 300 to 300'),
    'nan.npy': (np.full((1, 784), np.nan), 'NaN or infinite'),
    'fake.npy': ('not numpy', 'is not a NumPy .npy array'),
    'empty.npy': (np.zeros((0, 784)), 'holds no images'),
    'lines.jsonl': (json.dumps(PIXELS[0]) + '\n{oops\n',
                    'line 2 is not JSON'),
    'mixed.json': (json.dumps({'instances': [
        PIXELS[0], predict.image_instance(PNG)]}), 'mixes pixel and image'),
    'ragged.json': (json.dumps({'instances': [[1, 2], [3]]}),
                    'different shapes'),
    'b64.json': (json.dumps({'instances': [{'image_bytes': {'b64': '!!'}}]}),
                 'not base64'),
    'b64text.json': (json.dumps({'instances': [
        predict.image_instance(b'GIF? no')]}), 'is not a PNG or JPEG image'),
    'odd.json': (json.dumps({'instances': [{'pixels': [1]}]}),
                 'neither pixels'),
}


@pytest.mark.parametrize('name', sorted(BAD_INPUTS))
def test_bad_input_fails_with_one_line(job, tmp_path, name):
  job_dir, _ = job
  content, message = BAD_INPUTS[name]
  path = tmp_path / name
  if content is not None:
    _write(path, content)
  with pytest.raises(SystemExit) as exit_info:
    predict.main(['--model', job_dir, str(path)])
  error = str(exit_info.value.code)
  assert error.startswith('error: ') and '\n' not in error
  assert message.format(path) in error


@pytest.mark.parametrize('args, message', [
    (['--model', '{tmp}/none', 'x.npy'], 'model {tmp}/none does not exist'),
    (['--model', '{tmp}', 'x.npy'], 'holds no saved_model.pb and no '
     'export/latest/<timestamp>/'),
    (['--model', '{job}', '--data-dir', '{tmp}/none'],
     'data dir {tmp}/none does not exist'),
    (['--model', '{job}'], 'give input files, --data-dir, or both'),
    (['x.npy'], 'the following arguments are required: --model'),
    (['--model', '{job}', '--format', 'xml', 'x.npy'], "invalid choice: 'xml'"),
])
def test_bad_model_or_flags_fail_with_one_line(job, tmp_path, args, message):
  job_dir, _ = job
  fill = dict(tmp=tmp_path, job=job_dir)
  with pytest.raises(SystemExit) as exit_info:
    predict.main([arg.format(**fill) for arg in args])
  error = str(exit_info.value.code)
  assert error.startswith('error: ') and '\n' not in error
  assert message.format(**fill) in error


def test_cli_error_is_one_line_without_traceback(job, tmp_path):
  job_dir, _ = job
  path = _write(tmp_path / 'shape.npy', np.zeros((5, 5), np.uint8))
  run = run_cli('--model', job_dir, path)
  assert run.returncode == 1
  assert run.stderr.strip().splitlines() == [
      f'error: {path} has shape [5, 5]; give images as [n, 784] or '
      '[n, 28, 28] pixels (or one image)']
  assert run.stdout == ''



def test_real_mnist_export_serves_correct_classes(real_mnist_dir, tmp_path,
                                                  capsys):
  """A briefly trained model on the real data (MNIST_DATA_DIR): the predict
  command reproduces the trainer's accuracy, saved_model_cli its classes."""
  cfg = test_serving.tiny_config(str(tmp_path / 'job'), real_mnist_dir,
                                 'premade', train_steps=300, batch_size=128,
                                 hidden_units=(128,))
  results = task.run(cfg)
  rows = predict_rows(capsys, '--model', cfg.job_dir, '--data-dir',
                      real_mnist_dir)
  summary = rows.pop()
  assert summary['count'] == 10000 and summary['accuracy'] > 0.9
  assert summary['correct'] == round(results['accuracy'] * 10000)

  make_request.main(['--data-dir', real_mnist_dir, '--count', '10', '-o',
                     str(tmp_path / 'request.json')])
  with open(tmp_path / 'request.json') as f:
    pixels = [instance['x'] for instance in json.load(f)['instances']]
  test_serving.saved_model_cli(
      'run', '--dir', results['export_dir'], '--tag_set', 'serve',
      '--signature_def', 'serving_default', '--input_exprs', f'x={pixels}',
      '--outdir', str(tmp_path / 'out'))
  classes = np.load(tmp_path / 'out' / 'class_ids.npy')
  assert classes.tolist() == [row['class_ids'] for row in rows[:10]]
  labels = [row['label'] for row in rows[:10]]
  assert (classes == labels).sum() >= 9
