"""`python -m trainer.predict` and scripts/make_request.py on a trained job."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from trainer.predict import command as predict
from trainer.predict import request
from trainer import train

from tests.support import mnist_files  # pylint: disable=g-bad-import-order
from tests.support import processes
from tests import test_serving

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
  return job_dir, train.run(test_serving.tiny_config(job_dir, mnist_dir,
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
    request.write_instances(map(request.pixels_instance, images), f, 'jsonl')

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
  assert json.loads(line) == request.image_instance(path.read_bytes())


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
        PIXELS[0], request.image_instance(PNG)]}), 'mixes pixel and image'),
    'ragged.json': (json.dumps({'instances': [[1, 2], [3]]}),
                    'different shapes'),
    'b64.json': (json.dumps({'instances': [{'image_bytes': {'b64': '!!'}}]}),
                 'not base64'),
    'b64text.json': (json.dumps({'instances': [
        request.image_instance(b'GIF? no')]}), 'is not a PNG or JPEG image'),
    'odd.json': (json.dumps({'instances': [{'pixels': [1]}]}),
                 'neither pixels'),
    'text.json': (json.dumps({'instances': ['a seven\nor a one']}),
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
    (['--model', '{job}'], 'give input files, --data-dir or --report'),
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


def _model_file_cases(job_dir, export_dir, tmp):
  """{--model value: the whole error line} for files that are no model."""
  keras = _write(tmp / 'digits.h5', b'\x89HDF\r\n')
  notes = _write(tmp / 'notes.txt', 'hello')
  model_pb = os.path.join(export_dir, 'saved_model.pb')
  results = os.path.join(job_dir, 'results.json')
  expected = 'give a SavedModel folder (one holding saved_model.pb) or a job ' \
      'dir (one holding export/)'
  return {
      keras: f'model {keras} is a .h5 file (Keras), not a SavedModel; '
             f'{expected}',
      notes: f'model {notes} is a file (5 bytes), not a folder; {expected}',
      model_pb: f'model {model_pb} is a file inside the SavedModel folder '
                f'{export_dir}; give the folder: --model {export_dir}',
      results: f'model {results} is a file inside the job dir {job_dir}; '
               f'give the job dir: --model {job_dir}',
  }


def test_a_file_as_model_says_what_it_is_and_what_to_give(job, tmp_path):
  job_dir, results = job
  cases = _model_file_cases(job_dir, results['export_dir'], tmp_path)
  for model_path, message in cases.items():
    with pytest.raises(SystemExit) as exit_info:
      predict.main(['--model', model_path, 'x.npy'])
    assert exit_info.value.code == f'error: {message}'


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
  results = train.run(cfg)
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


def _border_mean(image):
  """Mean of the outer 2 rows and columns, computed here by a mask."""
  frame = np.ones((28, 28), bool)
  frame[2:-2, 2:-2] = False
  return np.asarray(image, float)[frame].mean()


def test_inputs_unlike_mnist_get_a_warning_with_the_fix(job, mnist_arrays,
                                                        tmp_path):
  """Dark on light and blank inputs are still answered, with a warning."""
  job_dir, _ = job
  digits = mnist_arrays['test'][0][:2]
  dark = 255 - digits
  paths = {
      'digit': _write(tmp_path / 'digit.png', test_serving.png(digits[0])),
      'dark png': _write(tmp_path / 'dark.png', test_serving.png(dark[0])),
      'dark npy': _write(tmp_path / 'dark.npy', dark),
      'blank': _write(tmp_path / 'blank.npy', np.zeros(784)),
      'white': _write(tmp_path / 'white.png', test_serving.png(
          np.full((28, 28), 255, np.uint8))),
  }
  run = processes.run([sys.executable, '-m', 'trainer.predict', '--model',
                       job_dir, *paths.values()], TF_CPP_MIN_LOG_LEVEL='3')
  assert run.returncode == 0, run.stderr[-3000:]

  def light(name, image):
    return (f'warning: {name} has a light background (border mean '
            f'{_border_mean(image):.0f} of 255; MNIST\'s is under 11): the '
            'model expects a white digit on black; invert it: 255 - pixels')

  def blank(name):
    return (f'warning: {name} is almost blank (0.0% of pixels stand out from '
            'the background; MNIST digits: 2-40%); give one digit drawn large '
            'and thick, white (255) on black (0), filling the middle 20x20 of '
            '28x28')

  assert run.stderr.splitlines() == [
      light(paths['dark png'], dark[0]),
      light(f'{paths["dark npy"]}[0]', dark[0]),
      light(f'{paths["dark npy"]}[1]', dark[1]),
      blank(f'{paths["blank"]}[0]'), blank(paths['white'])]
  assert len(run.stdout.splitlines()) == 1 + 6, 'every input is answered'


def test_the_fix_the_warning_names_gives_the_digit_back(job, mnist_arrays,
                                                        tmp_path, capsys):
  job_dir, _ = job
  digits = mnist_arrays['test'][0][:12]
  dark = _write(tmp_path / 'dark.npy', 255 - digits)
  fixed = _write(tmp_path / 'fixed.npy', 255 - np.load(dark))
  plain = _write(tmp_path / 'plain.npy', digits)
  predict.main(['--model', job_dir, dark, '--format', 'json'])
  warnings = capsys.readouterr().err.splitlines()
  assert len(warnings) == 11 and all('invert it' in w for w in warnings[:10])
  assert warnings[10] == ('warning: 2 more inputs do not look like MNIST '
                          'digits (first 10 shown)')
  rows = {}
  for path in (fixed, plain):
    rows[path] = predict_rows(capsys, '--model', job_dir, path)
    assert capsys.readouterr().err == ''
  assert ([row['class_ids'] for row in rows[fixed]] ==
          [row['class_ids'] for row in rows[plain]])


def test_make_request_warns_past_the_online_limit_and_says_how_to_split(
    tmp_path, capsys):
  """700 noisy pixel instances are about 2 MB; the advice's pieces fit."""
  data_dir = str(tmp_path / 'mnist')
  mnist_files.write_mnist(data_dir, n_train=10, n_test=700)
  request, lines = str(tmp_path / 'request.json'), str(tmp_path / 'x.jsonl')
  make_request.main(['--data-dir', data_dir, '--count', '700', '-o',
                     request])
  size = os.path.getsize(request)
  assert size > 1_500_000
  warning = capsys.readouterr().err.splitlines()[-1]
  per_file = int(warning.split('split -l ')[1].split()[0])
  files = -(-700 // per_file)
  assert warning == (
      f'warning: {request} holds 700 instances, {size / 1e6:.1f} MB; online '
      'prediction takes at most 1.5 MB per request: write JSON lines '
      f'(--format jsonl -o {tmp_path / "request.jsonl"}), then split them '
      f'into {files} requests of at most {per_file}: split -l {per_file} '
      f'{tmp_path / "request.jsonl"} part-')

  make_request.main(['--data-dir', data_dir, '--count', '700', '--format',
                     'jsonl', '-o', lines])
  warning = capsys.readouterr().err.splitlines()[-1]
  assert warning.startswith(f'warning: {lines} holds 700 instances, ')
  assert warning.endswith(f'split them into {files} requests of at most '
                          f'{per_file}: split -l {per_file} {lines} part-')
  with open(lines) as f:
    instances = [json.loads(line) for line in f]
  for start in range(0, 700, per_file):  # what `split -l` makes, as bodies
    body = {'instances': instances[start:start + per_file]}
    assert len(json.dumps(body).encode()) <= 1_500_000
  assert per_file * 2 > 700 / files, 'pieces are not needlessly small'


def test_make_request_under_the_limit_has_no_warning(mnist_dir, capsys):
  make_request.main(['--data-dir', mnist_dir, '--count', '200'])
  captured = capsys.readouterr()
  assert 'warning' not in captured.err
  assert len(captured.out) < 1_500_000
