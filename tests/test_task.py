"""`python -m trainer.task` end to end, in subprocesses, as users run it."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ['--hidden-units', '64,32', '--batch-size', '32', '--eval-secs', '0',
         '--log-every-steps', '10']


def run_task(*args, env=None, timeout=300):
  full_env = dict(os.environ, **(env or {}))
  full_env.pop('MNIST_DATA_DIR', None)
  return subprocess.run([sys.executable, '-m', 'trainer.task', *args],
                        cwd=ROOT, env=full_env, capture_output=True,
                        text=True, timeout=timeout, check=False)


def last_json(result):
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def snapshot(folder):
  """Every file under folder with its size and mtime."""
  found = {}
  for base, _, files in os.walk(folder):
    for name in files:
      stat = os.stat(os.path.join(base, name))
      found[os.path.relpath(os.path.join(base, name), folder)] = (
          stat.st_size, stat.st_mtime_ns)
  return found


@pytest.fixture(scope='module')
def first_run(tmp_path_factory, mnist_dir):
  """A custom-model job dir trained to step 40 through the CLI."""
  job_dir = str(tmp_path_factory.mktemp('job') / 'custom')
  result = run_task('--model-type', 'custom', '--data-dir', mnist_dir,
                    '--job-dir', job_dir, '--train-steps', '40', *SMALL)
  return job_dir, result


def test_cli_trains_evaluates_exports_and_reports(first_run):
  job_dir, result = first_run
  results = last_json(result)
  assert results['model_type'] == 'custom'
  assert results['global_step'] == 40 and results['resumed_from_step'] == 0
  assert results['accuracy'] > 0.9
  assert results['examples_per_sec'] > 0 and results['wall_time_secs'] > 0
  with open(os.path.join(job_dir, 'results.json')) as f:
    assert json.load(f) == results
  for key in ('export_dir', 'best_export_dir'):
    assert os.path.isfile(os.path.join(results[key], 'saved_model.pb'))
  assert 'step 30/40' in result.stderr, 'progress lines are logged'
  assert os.listdir(os.path.join(job_dir, 'eval')), 'eval event files'


def test_rerun_with_more_steps_resumes(first_run, mnist_dir, tmp_path):
  job_dir, _ = first_run
  resumed = tmp_path / 'resumed'
  subprocess.run(['cp', '-r', job_dir, str(resumed)], check=True)
  results = last_json(run_task(
      '--model-type', 'custom', '--data-dir', mnist_dir, '--job_dir',
      str(resumed), '--train-steps', '70', *SMALL))
  assert results['resumed_from_step'] == 40
  assert results['global_step'] == 70


def test_rerun_of_a_finished_job_does_not_train(first_run, mnist_dir):
  job_dir, first = first_run
  before = snapshot(os.path.join(job_dir, 'export'))
  results = last_json(run_task(
      '--model-type', 'custom', '--data-dir', mnist_dir, '--job-dir', job_dir,
      '--train-steps', '40', *SMALL))
  assert results['global_step'] == 40 and results['resumed_from_step'] == 40
  assert results['accuracy'] == last_json(first)['accuracy']
  assert snapshot(os.path.join(job_dir, 'export')) == before


@pytest.mark.parametrize('args, message', [
    (['--train-steps', '0'], '--train-steps=0 must be greater than 0'),
    (['--batch-size', '-1'], '--batch-size=-1 must be greater than 0'),
    (['--learning-rate', '0'], '--learning-rate=0.0 must be greater than 0'),
    (['--optimizer', 'adamw'], '--optimizer=adamw is not supported'),
    (['--activation', 'swish'], '--activation=swish is not supported'),
    (['--model-type', 'keras2'], '--model-type=keras2 is not supported'),
    (['--hidden-units', ''], 'must list one or more positive layer widths'),
    (['--hidden-units', '64,x'], 'must be a comma-separated list of int'),
    (['--model-type', 'custom', '--dropout', '0.1'],
     'has 1 rates but --hidden-units=64,32 has 2 layers'),
    (['--dropout', '1.0'], 'every rate must be in [0, 1)'),
    (['--input-dropout', '0.1'], 'not supported by the premade model'),
    (['--model-type', 'custom', '--dropout', '0,0', '--input-dropout', '1'],
     '--input-dropout=1.0 must be in [0, 1)'),
    (['--train-steps', '5', '--num-epochs', '1'], 'not both'),
    (['--batch-size', 'ten'], "flag --batch_size=ten"),
    (['--no-such-flag', '1'], "Unknown command line flag 'no_such_flag'"),
])
def test_bad_flags_fail_with_one_line_and_touch_nothing(first_run, mnist_dir,
                                                        args, message):
  job_dir, _ = first_run
  before = snapshot(job_dir)
  base = ['--data-dir', mnist_dir, '--job-dir', job_dir, '--train-steps',
          '40', '--hidden-units', '64,32']
  result = run_task(*base, *args)
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
  assert message in lines[0]
  assert snapshot(job_dir) == before


def test_job_dir_of_another_model_is_refused(first_run, mnist_dir):
  job_dir, _ = first_run
  before = snapshot(job_dir)
  result = run_task('--model-type', 'premade', '--data-dir', mnist_dir,
                    '--job-dir', job_dir, '--train-steps', '80', *SMALL)
  assert result.returncode != 0
  assert "holds checkpoints of a model with model_type=custom" in result.stderr
  assert snapshot(job_dir) == before


def test_job_dir_that_is_a_file(tmp_path, mnist_dir):
  path = tmp_path / 'results'
  path.write_text('precious')
  result = run_task('--data-dir', mnist_dir, '--job-dir', str(path))
  assert result.returncode != 0
  assert 'is a file; give a folder path' in result.stderr
  assert path.read_text() == 'precious'


def test_missing_data_names_the_flag(tmp_path):
  result = run_task('--data-dir', str(tmp_path / 'none'), '--job-dir',
                    str(tmp_path / 'job'))
  assert result.returncode != 0
  assert 'pass --data-dir' in result.stderr.strip().splitlines()[-1]


def test_job_dir_is_required(mnist_dir):
  result = run_task('--data-dir', mnist_dir)
  assert result.returncode != 0
  assert 'error: --job-dir is required' in result.stderr


@pytest.mark.parametrize('model_type', ['premade', 'custom'])
def test_default_models_learn_real_mnist(real_mnist_dir, tmp_path, model_type):
  """A short run of the default settings on the real data (MNIST_DATA_DIR)."""
  result = run_task('--model-type', model_type, '--data-dir', real_mnist_dir,
                    '--job-dir', str(tmp_path / model_type), '--train-steps',
                    '1000', '--eval-secs', '0')
  assert last_json(result)['accuracy'] > 0.95
