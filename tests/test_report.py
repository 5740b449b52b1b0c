"""`python -m trainer.predict --report`: what a trained model gets wrong."""

import json
import math
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from trainer import export
from trainer.predict import command as predict
from trainer.predict import report
from trainer import train

from tests.support import processes  # pylint: disable=g-bad-import-order
from tests import test_serving

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
MAX_PNG_BYTES = 200_000
PREDICT = processes.TASK[:-1] + ['trainer.predict']


@pytest.fixture(scope='module')
def job(tmp_path_factory, mnist_dir):
  """(job dir, results) of a model trained briefly enough to make mistakes."""
  job_dir = str(tmp_path_factory.mktemp('job') / 'premade')
  return job_dir, train.run(test_serving.tiny_config(
      job_dir, mnist_dir, 'premade', train_steps=8, hidden_units=(8,)))


@pytest.fixture(scope='module')
def expected(job, mnist_arrays):
  """The export's answers on the test set, got here without trainer.predict."""
  loaded = tf.saved_model.load(job[1]['export_dir'])
  images, labels = mnist_arrays['test']
  got = loaded.signatures[export.UINT8_SIGNATURE](x=tf.constant(images))
  return (labels.astype(int), got['class_ids'].numpy().astype(int),
          got['probabilities'].numpy())


@pytest.fixture(scope='module')
def made(job, mnist_dir, tmp_path_factory):
  """(process result, report folder) of one real --report run."""
  folder = str(tmp_path_factory.mktemp('report') / 'out')
  run = processes.run(PREDICT + ['--model', job[0], '--data-dir', mnist_dir,
                                 '--report', folder], TF_CPP_MIN_LOG_LEVEL='3')
  assert run.returncode == 0, run.stderr[-3000:]
  return run, folder


def read_json(folder):
  with open(os.path.join(folder, report.REPORT_JSON)) as f:
    return json.load(f)


def test_json_holds_the_numbers_computed_here(made, expected, job):
  labels, predictions, probabilities = expected
  got = read_json(made[1])
  pairs = labels * 10 + predictions
  matrix = np.bincount(pairs, minlength=100).reshape(10, 10)
  assert got['confusion'] == matrix.tolist()
  assert got['count'] == 200
  assert got['correct'] == int((labels == predictions).sum())
  assert got['accuracy'] == pytest.approx(job[1]['accuracy'], abs=1e-6)
  for row in got['classes']:
    digit = row['digit']
    said = predictions == digit
    assert row['support'] == int((labels == digit).sum())
    assert row['predicted'] == int(said.sum())
    assert row['recall'] == pytest.approx(
        (predictions[labels == digit] == digit).mean())
    if said.any():
      assert row['precision'] == pytest.approx((labels[said] == digit).mean())
    else:
      assert row['precision'] is None

  wrong = [i for i in range(200) if labels[i] != predictions[i]]
  assert got['mistakes_total'] == len(wrong) > report.MISTAKES_SHOWN, (
      'the tiny model should make enough mistakes to fill the grid')
  wrong.sort(key=lambda i: (-probabilities[i, predictions[i]], i))
  assert [m['index'] for m in got['mistakes']] == wrong[:report.MISTAKES_SHOWN]
  for m in got['mistakes']:
    i = m['index']
    assert (m['label'], m['prediction']) == (labels[i], predictions[i])
    assert m['probability'] == pytest.approx(probabilities[i, predictions[i]])
    assert m['label_probability'] == pytest.approx(probabilities[i,
                                                                 labels[i]])
  assert got['model'] == job[1]['export_dir']


def test_the_per_class_table_is_printed_and_written(made):
  run, folder = made
  got = read_json(folder)
  lines = run.stdout.splitlines()
  assert lines[0].split('|')[1:-1] == [
      ' digit ', ' precision ', ' recall ', ' test images ',
      ' predicted as it ']
  for row, line in zip(got['classes'], lines[2:12]):
    cells = [cell.strip() for cell in line.split('|')[1:-1]]
    precision = ('-' if row['precision'] is None
                 else f'{100 * row["precision"]:.2f}%')
    assert cells == [str(row['digit']), precision,
                     f'{100 * row["recall"]:.2f}%', str(row['support']),
                     str(row['predicted'])]
  assert f'{100 * got["accuracy"]:.2f}% accuracy' in lines[12]
  assert lines[13] == 'wrote ' + ', '.join(
      os.path.join(folder, name) for name in report.FILES)
  assert run.stderr.strip() == ''
  with open(os.path.join(folder, report.REPORT_MD)) as f:
    markdown = f.read()
  assert '\n'.join(lines[:13]) in markdown
  assert f'![confusion matrix]({report.CONFUSION_PNG})' in markdown
  first = got['mistakes'][0]
  assert (f'| {first["index"]} | {first["label"]} | {first["prediction"]} | '
          in markdown)


@pytest.mark.parametrize('name, size_inches', [
    (report.CONFUSION_PNG, (6.4, 5.6)),
    (report.MISTAKES_PNG, (8 * 1.15, 0.4 + 4 * 1.45)),  # 32 tiles, 4 rows
])
def test_pictures_are_small_pngs_of_the_drawn_size(made, name, size_inches):
  with open(os.path.join(made[1], name), 'rb') as f:
    content = f.read()
  assert content.startswith(PNG_SIGNATURE)
  assert 10_000 < len(content) < MAX_PNG_BYTES
  height, width, _ = tf.io.decode_png(content).shape
  drawn = [90 * inches for inches in size_inches]  # 90 dpi, as trainer.plots
  assert np.allclose([width, height], drawn, atol=1)
  pixels = tf.io.decode_png(content, channels=1).numpy()
  assert pixels.std() > 20, 'a picture, not a blank canvas'


def test_json_format_prints_the_report_json(job, mnist_dir, tmp_path, capsys,
                                            made):
  predict.main(['--model', job[0], '--data-dir', mnist_dir, '--report',
                str(tmp_path), '--format', 'json'])
  printed = json.loads(capsys.readouterr().out)
  assert printed == read_json(str(tmp_path)) == read_json(made[1])


def test_data_dir_defaults_to_mnist_data_dir_as_for_training(job, mnist_dir,
                                                             tmp_path):
  run = processes.run(PREDICT + ['--model', job[0], '--report',
                                 str(tmp_path)], MNIST_DATA_DIR=mnist_dir)
  assert run.returncode == 0, run.stderr[-3000:]
  assert read_json(str(tmp_path))['data_dir'] == mnist_dir


def test_input_files_are_listed_beside_the_report(job, mnist_dir,
                                                  mnist_arrays, tmp_path,
                                                  capsys):
  np.save(tmp_path / 'two.npy', mnist_arrays['test'][0][:2])
  predict.main(['--model', job[0], '--data-dir', mnist_dir, '--report',
                str(tmp_path / 'out'), str(tmp_path / 'two.npy')])
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split() == ['input', 'class', 'probability', 'label']
  assert [line.split()[0] for line in lines[1:3]] == [
      f'{tmp_path / "two.npy"}[0]', f'{tmp_path / "two.npy"}[1]']
  assert lines[3].startswith('| digit |')
  assert not any(line.startswith('test[') for line in lines)


def test_a_report_path_that_is_a_file_fails_before_predicting(job, mnist_dir,
                                                              tmp_path):
  path = tmp_path / 'report.png'
  path.write_bytes(b'keep me')
  run = processes.run(PREDICT + ['--model', job[0], '--data-dir', mnist_dir,
                                 '--report', str(path)],
                      TF_CPP_MIN_LOG_LEVEL='3')
  assert run.returncode == 1
  assert run.stderr.strip().splitlines() == [
      f'error: --report {path} is a file; give a folder for the report']
  assert path.read_bytes() == b'keep me'


def test_an_unwritable_report_folder_fails_with_one_line(job, mnist_dir,
                                                         tmp_path):
  (tmp_path / 'file').write_text('x')
  folder = tmp_path / 'file' / 'out'
  with pytest.raises(SystemExit) as exit_info:
    predict.main(['--model', job[0], '--data-dir', mnist_dir, '--report',
                  str(folder)])
  error = str(exit_info.value.code)
  assert error.startswith(f'error: --report {folder} cannot be made (')
  assert error.endswith('); give a folder you can write to')
  assert '\n' not in error


def test_a_report_without_matplotlib_names_the_extra(job, mnist_dir,
                                                     tmp_path, monkeypatch):
  """A plain `pip install .` has no matplotlib; it fails before predicting."""
  monkeypatch.setitem(sys.modules, 'matplotlib', None)  # import fails
  with pytest.raises(SystemExit) as exit_info:
    predict.main(['--model', job[0], '--data-dir', mnist_dir, '--report',
                  str(tmp_path / 'out')])
  assert str(exit_info.value.code) == (
      'error: python -m trainer.predict --report needs matplotlib, which is '
      "not installed; pip install '.[plots]' (or pip install matplotlib)")
  assert not (tmp_path / 'out').exists()


def test_summary_of_hand_made_answers():
  """A digit never predicted has no precision; a tie keeps test order."""
  labels = np.array([0, 0, 1, 1, 2])
  probabilities = np.full((5, 10), 0.02)
  for i, (said, p) in enumerate([(0, .9), (1, .6), (1, .8), (0, .6),
                                 (0, .7)]):
    probabilities[i, said] = p
  outputs = {'class_ids': probabilities.argmax(axis=1),
             'probabilities': probabilities}
  summary = report.summarize(labels, outputs, {'model': 'm',
                                               'data_dir': 'd'})
  assert summary['correct'] == 2 and summary['mistakes_total'] == 3
  assert [m['index'] for m in summary['mistakes']] == [4, 1, 3]
  zero, one, two = summary['classes'][:3]
  assert (zero['precision'], zero['recall']) == (1 / 3, 0.5)
  assert (one['precision'], one['recall']) == (0.5, 0.5)
  assert (two['precision'], two['recall'], two['support']) == (None, 0.0, 1)
  assert summary['classes'][3]['recall'] is None
  table = report.class_table(summary).splitlines()
  assert table[4] == '| 2 | - | 0.00% | 1 | 0 |'
  assert table[5] == '| 3 | - | - | 0 | 0 |'
  assert math.isclose(summary['accuracy'], 0.4)
