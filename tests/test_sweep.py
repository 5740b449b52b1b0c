"""`python -m trainer.sweep` and its charts: plans, tables, charts, resume."""

import csv
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from trainer import config as config_lib
from trainer.sweep import chapter
from trainer.sweep import plan as sweep
from trainer.sweep import plots
from trainer.sweep import tables as sweep_tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SIZE = 60000


def _plan(experiments, max_epochs=None, **kwargs):
  return sweep.plan(experiments, '/sweep', '/data', TRAIN_SIZE, max_epochs,
                    **kwargs)


def test_chapter_presets_plan_one_run_per_distinct_setting():
  runs = _plan(chapter.EXPERIMENTS)
  assert len(runs) == len(chapter.EXPERIMENTS)
  assert len({r.config.job_dir for r in runs}) == 21
  first = runs[0].config
  assert (first.model_type, first.hidden_units, first.activation,
          first.scale_inputs, first.optimizer, first.learning_rate,
          first.batch_size, first.num_epochs) == (
              'keras', (1000,), 'sigmoid', False, 'sgd', 0.01, 1024, 10)
  assert all(r.config.job_dir.startswith('/sweep/runs/') for r in runs)


def test_reduced_budget_cuts_long_runs_only():
  runs = _plan(chapter.EXPERIMENTS, max_epochs=10)
  assert {r.config.num_epochs for r in runs} == {10, None}
  assert {r.chapter_budget for r in runs} == {
      '10 epochs', '300 epochs', '2,000 steps'}
  steps = {r.experiment.label: r.config.train_steps for r in runs
           if r.config.train_steps}
  assert set(steps.values()) == {2000}, '2,000 steps of 128 < 10 epochs'
  assert len({r.config.job_dir for r in runs}) == 17, (
      'a 300-epoch row cut to 10 epochs is its 10-epoch row')
  assert _plan(chapter.group('estimators'), max_epochs=1)[0].steps == 469


def test_run_ids_follow_the_settings():
  experiment = chapter.group('optimizer')[0]
  same = _plan([experiment, experiment])
  assert same[0].config.job_dir == same[1].config.job_dir
  other_seed = _plan([experiment], seed=7)[0]
  assert other_seed.config.job_dir != same[0].config.job_dir
  assert os.path.basename(same[0].config.job_dir).startswith(
      'keras-relu-scaled-sgd0.01-h1000-b1024-e10-')


def test_chapter_numbers_are_the_reported_ones():
  reported = {e.reported for e in chapter.EXPERIMENTS} - {None}
  assert reported == {91.0, 94.9, 29.75, 88.1, 95.76, 92.89, 94.6, 88.0, 93.0,
                      98.44, 98.4, 97.24, 89.91, 97.77, 97.2}


def test_grid_file_expands_to_every_combination(tmp_path):
  path = tmp_path / 'lr.json'
  path.write_text(json.dumps({
      'base': {'model_type': 'keras', 'num_epochs': 1},
      'grid': {'optimizer': ['sgd', 'adam'], 'hidden_units': [[8], [8, 4]]}}))
  found = sweep.load_grid(str(path))
  assert [e.label for e in found] == [
      'optimizer=sgd, hidden_units=8', 'optimizer=sgd, hidden_units=8,4',
      'optimizer=adam, hidden_units=8', 'optimizer=adam, hidden_units=8,4']
  assert {e.group for e in found} == {'lr'}
  assert found[3].settings == {'model_type': 'keras', 'num_epochs': 1,
                               'optimizer': 'adam', 'hidden_units': [8, 4]}


@pytest.mark.parametrize('content, message', [
    ('{"grid": ', 'is not a readable grid file'),
    ('{"grid": {"optimiser": ["sgd"]}}', "unexpected keyword argument "
                                         "'optimiser'"),
    ('{"grid": {"optimizer": ["sgdx"]}}', '--optimizer=sgdx is not supported'),
    ('{"grid": {"optimizer": "adam"}}',
     '"optimizer" must be a list of the values to try, e.g. \\["adam"\\], '
     'not "adam"'),
])
def test_bad_grid_file_is_a_usage_error(tmp_path, content, message):
  path = tmp_path / 'bad.json'
  path.write_text(content)
  with pytest.raises(config_lib.UsageError, match=message):
    _plan(sweep.load_grid(str(path)))


def test_markdown_sets_the_chapters_number_beside_ours():
  row = {'group': 'optimizer', 'label': 'Adam', 'chapter_accuracy_pct': 98.4,
         'chapter_budget': '10 epochs', 'accuracy_pct': 98.123,
         'budget': '10 epochs', 'wall_time_secs': 41.3, 'note': ''}
  lines = sweep_tables.markdown([row, dict(row, accuracy_pct=None,
                                    chapter_accuracy_pct=None)]).splitlines()
  assert lines[2] == ('| optimizer | Adam | 98.4% | 10 epochs | **98.12%** | '
                      '10 epochs | 41 s |  |')
  assert lines[3].startswith('| optimizer | Adam | – | 10 epochs | not run |')


def run_sweep(*args, **environ):
  env = dict(os.environ, **environ)
  env.pop('MNIST_DATA_DIR', None)
  result = subprocess.run([sys.executable, '-m', 'trainer.sweep', *args],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_dry_run_needs_no_sweep_dir_data_or_network(tmp_path):
  """No --data-dir, no MNIST_DATA_DIR, an empty cache, no way out."""
  cache = tmp_path / 'cache'
  out = run_sweep('--dry-run', '--preset', 'estimators',
                  XDG_CACHE_HOME=str(cache), https_proxy='http://127.0.0.1:9',
                  http_proxy='http://127.0.0.1:9')
  lines = out.splitlines()
  assert lines[0] == '5 results from 5 distinct runs: 5 to train, 0 done before'
  assert lines[1].startswith(
      '[1/5] estimators: premade, chapter recipe (Adagrad 0.05), 2,000 steps '
      '(2,000 steps) -> SWEEP_DIR/runs/premade-relu-scaled-adagrad0.05-')
  assert not cache.exists(), 'nothing downloaded'


@pytest.fixture(scope='module')
def two_run_sweep(tmp_path_factory, mnist_dir):
  """A sweep of two small Keras runs, trained in two processes at once."""
  folder = tmp_path_factory.mktemp('sweep')
  grid = folder / 'small.json'
  grid.write_text(json.dumps({
      'name': 'small',
      'base': {'model_type': 'keras', 'hidden_units': [32],
               'dropout': [0.0], 'batch_size': 50, 'num_epochs': 2},
      'grid': {'optimizer': ['sgd', 'adam']}}))
  sweep_dir = str(folder / 'out')
  args = ['--sweep-dir', sweep_dir, '--grid', str(grid), '--data-dir',
          mnist_dir]
  return sweep_dir, args, run_sweep(*args, '--jobs', '2', '--deterministic')


@pytest.mark.slow
def test_sweep_writes_csv_markdown_and_charts(two_run_sweep):
  sweep_dir, _, out = two_run_sweep
  assert '2 results from 2 distinct runs: 2 to train' in out
  with open(os.path.join(sweep_dir, 'results.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [r['label'] for r in rows] == ['optimizer=sgd', 'optimizer=adam']
  assert all(r['global_step'] == '24' for r in rows), '2 epochs of 600 / 50'
  assert float(rows[1]['accuracy_pct']) > 90
  with open(os.path.join(sweep_dir, 'results.md')) as f:
    table = f.read()
  assert '| small | optimizer=adam | – | 2 epochs | **' in table
  for name in ('small.png', 'accuracy.png'):
    with open(os.path.join(sweep_dir, 'plots', name), 'rb') as f:
      png = f.read()
    assert png.startswith(b'\x89PNG\r\n\x1a\n')
    height, width, _ = tf.io.decode_png(png).shape
    assert width >= 600 and height >= 150


@pytest.mark.slow
def test_charts_read_loss_and_accuracy_from_event_files(two_run_sweep):
  sweep_dir, _, _ = two_run_sweep
  job_dir = os.path.join(sweep_dir, 'runs', os.listdir(
      os.path.join(sweep_dir, 'runs'))[0])
  loss = plots.scalars(job_dir, plots.TRAIN_LOSS_TAGS)
  assert len(loss) > 10 and loss[-1][0] == 24, 'a summary every step'
  accuracy = plots.scalars(os.path.join(job_dir, 'eval'), ('accuracy',))
  assert accuracy[-1][0] == 24 and 0 <= accuracy[-1][1] <= 1


@pytest.mark.slow
def test_rerun_skips_finished_runs(two_run_sweep):
  sweep_dir, args, _ = two_run_sweep
  results = [os.path.join(sweep_dir, 'runs', d, 'results.json')
             for d in os.listdir(os.path.join(sweep_dir, 'runs'))]
  before = [os.stat(p).st_mtime_ns for p in results]
  out = run_sweep(*args)
  assert '2 results from 2 distinct runs: 0 to train, 2 done before' in out
  assert [os.stat(p).st_mtime_ns for p in results] == before


@pytest.mark.slow
@pytest.mark.parametrize('command', ['trainer.sweep.plots', 'trainer.plots'])
def test_plots_command_redraws_a_sweep(two_run_sweep, command):
  """The old name, trainer.plots, still works and names the new one."""
  sweep_dir, _, _ = two_run_sweep
  os.remove(os.path.join(sweep_dir, 'plots', 'accuracy.png'))
  result = subprocess.run([sys.executable, '-m', command, sweep_dir],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert os.path.isfile(os.path.join(sweep_dir, 'plots', 'accuracy.png'))
  moved = 'python -m trainer.plots is now python -m trainer.sweep.plots'
  assert (moved in result.stderr) == (command == 'trainer.plots')


@pytest.mark.parametrize('args', [[], ['no-such-sweep']])
def test_the_old_plots_name_keeps_its_errors_to_one_line(tmp_path, args):
  result = subprocess.run([sys.executable, '-m', 'trainer.plots', *args],
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=120,
                          check=False)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith('error: ') and lines[0].endswith(
      '(note: python -m trainer.plots is now python -m trainer.sweep.plots)')
