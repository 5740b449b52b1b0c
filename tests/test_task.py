"""`python -m trainer.task` end to end, in subprocesses, as users run it.

The long tables of bad inputs run `task.main` in this process instead (what
`python -m trainer.task` runs after importing TensorFlow, which costs a few
seconds per subprocess); each kind of error also has a subprocess test.
"""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.support import mnist_files
from tests.support import processes
from tests.support.processes import last_json
from trainer import config as config_lib
from trainer import jobdir
from trainer import task

ROOT = processes.ROOT
SMALL = ['--hidden-units', '64,32', '--batch-size', '32', '--eval-secs', '0',
         '--log-every-steps', '10']


def run_task(*args, env=None, timeout=300):
  return processes.run([*processes.TASK, *args], timeout=timeout,
                       **(env or {}))


@pytest.fixture
def main_in_process(monkeypatch, capsys):
  """Runs task.main on flags in this process, as `python -m trainer.task`.

  Returns a CompletedProcess with the exit status and stderr.
  """
  def run(*args, env=None):
    monkeypatch.delenv('MNIST_DATA_DIR', raising=False)
    for name, value in (env or {}).items():
      monkeypatch.setenv(name, value)
    task.FLAGS.unparse_flags()
    capsys.readouterr()
    try:
      task.main(task.parse_flags(['trainer.task', *args]))
      status = 0
    except SystemExit as e:  # as the interpreter does: a message means 1
      status = e.code
      if isinstance(status, str):
        print(status, file=sys.stderr)
        status = 1
    return subprocess.CompletedProcess(args, status, '',
                                       capsys.readouterr().err)
  # Parsing the flags sets absl's log level, and task.main quiets
  # TensorFlow's: later tests in this process must see the same levels.
  loggers = [logging.getLogger('absl'), tf.get_logger()]
  levels = [logger.level for logger in loggers]
  yield run
  task.FLAGS.unparse_flags()
  for logger, level in zip(loggers, levels):
    logger.setLevel(level)


def assert_refused(result, message):
  """Exit status 1 and a single line on stderr: 'error: ...message...'."""
  assert result.returncode == 1, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
  assert message in lines[0]


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
  assert 'step 20/40' in result.stderr, 'progress lines are logged'
  assert os.listdir(os.path.join(job_dir, 'eval')), 'eval event files'
  lines = result.stderr.strip().splitlines()
  assert f'starting {job_dir} from step 0 of 40' in lines
  assert lines[-1] == (f'test accuracy {results["accuracy"]:.2%} after 40 '
                       f'steps ({results["wall_time_secs"]:.0f} s); '
                       f'SavedModel: {results["export_dir"]}')


@pytest.mark.slow
def test_rerun_with_more_steps_resumes(first_run, mnist_dir, tmp_path):
  job_dir, _ = first_run
  resumed = tmp_path / 'resumed'
  subprocess.run(['cp', '-r', job_dir, str(resumed)], check=True)
  result = run_task(
      '--model-type', 'custom', '--data-dir', mnist_dir, '--job_dir',
      str(resumed), '--train-steps', '70', *SMALL, '--log-every-steps', '5')
  results = last_json(result)
  assert results['resumed_from_step'] == 40
  assert results['global_step'] == 70
  assert f'resuming from step 40 of 70 in {resumed}' in (
      result.stderr.splitlines())
  with open(resumed / 'trainer_config.json') as f:
    saved = json.load(f)
  assert [(s['from_step'], s['train_steps'], s['log_every_steps'])
          for s in saved['segments']] == [(0, 40, 10), (40, 70, 5)], (
              'each segment\'s length and operational settings')
  assert saved['train_steps'] == 70 and saved['learning_rate'] == 0.002


@pytest.mark.slow
def test_rerun_of_a_finished_job_reports_its_results(first_run, mnist_dir):
  job_dir, first = first_run
  before = snapshot(job_dir)
  result = run_task(
      '--model-type', 'custom', '--data-dir', mnist_dir, '--job-dir', job_dir,
      '--train-steps', '40', *SMALL, '--eval-secs', '5')
  assert last_json(result) == last_json(first)
  assert (f'{job_dir} already holds step 40 of 40: reporting its results'
          in result.stderr.splitlines())
  assert snapshot(job_dir) == before, 'no training, evaluation or export'


@pytest.mark.slow
def test_changed_learning_setting_on_a_finished_job_is_refused(first_run,
                                                               mnist_dir):
  job_dir, _ = first_run
  before = snapshot(job_dir)
  result = run_task('--model-type', 'custom', '--data-dir', mnist_dir,
                    '--job-dir', job_dir, '--train-steps', '40', *SMALL,
                    '--learning-rate', '0.01')
  assert_refused(result, f'--job-dir {job_dir} holds a model trained with '
                 '--learning-rate=0.002, not --learning-rate=0.01; use a new '
                 "--job-dir to train with these settings, or the job dir's "
                 'to resume it')
  assert snapshot(job_dir) == before


@pytest.mark.parametrize('args, message', [
    (['--seed', '7', '--batch-size', '64'],
     'trained with --batch-size=32 --seed=42, not --batch-size=64 --seed=7'),
    (['--noscale-inputs'], 'trained with --scale-inputs, not --noscale-inputs'),
    (['--dropout', '0.1,0.1'], 'trained with --dropout=0.3,0.3, not '
                               '--dropout=0.1,0.1'),
    (['--optimizer', 'sgd'], 'trained with --optimizer=adam, not '
                             '--optimizer=sgd'),
])
def test_changed_learning_settings_are_refused(main_in_process, first_run,
                                               mnist_dir, args, message):
  job_dir, _ = first_run
  before = snapshot(job_dir)
  result = main_in_process('--model-type', 'custom', '--data-dir', mnist_dir,
                           '--job-dir', job_dir, '--train-steps', '80',
                           *SMALL, *args)
  assert_refused(result, message)
  assert snapshot(job_dir) == before


@pytest.mark.parametrize('args, message', [
    (['--train-steps', '0'], '--train-steps=0 must be greater than 0'),
    (['--batch-size', '-1'], '--batch-size=-1 must be greater than 0'),
    (['--checkpoint-steps', '0'],
     '--checkpoint-steps=0 must be greater than 0'),
    (['--learning-rate', '0'], '--learning-rate=0.0 must be greater than 0'),
    (['--optimizer', 'adamw'], '--optimizer=adamw is not supported'),
    (['--activation', 'swish'], '--activation=swish is not supported'),
    (['--model-type', 'keras2'], '--model-type=keras2 is not supported'),
    (['--hidden-units', ''], 'must list one or more positive layer widths'),
    (['--hidden-units', '64,x'], 'must be a comma-separated list of int'),
    (['--dropout', '1.0'], 'every rate must be in [0, 1)'),
    (['--input-dropout', '0.1'], 'not supported by the premade model'),
    (['--model-type', 'custom', '--dropout', '0,0', '--input-dropout', '1'],
     '--input-dropout=1.0 must be in [0, 1)'),
    (['--train-steps', '5', '--num-epochs', '1'], 'not both'),
    (['--batch-size', 'ten'], "flag --batch-size=ten"),
    (['--no-such-flag', '1'], 'unknown flag --no-such-flag (see --help)'),
    (['--train-stepz', '1'],
     'unknown flag --train-stepz; did you mean --train-steps?'),
    (['--dropout', '-0.1'], 'every rate must be in [0, 1)'),
    (['--model-type', 'custom', '--dropout', '0.1,0.2,0.3'],
     'has 3 rates but --hidden-units=64,32 has 2 layers; give one rate for '
     'all layers or one per layer'),
    (['--dropout', '0.1,0.2'], 'the premade model takes one rate'),
    (['--distribute', 'tpu'], '--distribute=tpu is not supported'),
    (['--model-type', 'keras', '--steps-per-run', '2'],
     '--steps-per-run=2 is supported by the custom model and the premade one '
     'without --dropout or --batch-norm'),
    (['--model-type', 'custom', '--steps-per-run', '11', '--distribute',
      'mirrored'], '--steps-per-run=11 is more than 10, the most steps a run '
     'unrolls under --distribute mirrored'),
])
def test_bad_flags_fail_with_one_line_and_touch_nothing(
    main_in_process, first_run, mnist_dir, args, message):
  job_dir, _ = first_run
  before = snapshot(job_dir)
  base = ['--data-dir', mnist_dir, '--job-dir', job_dir, '--train-steps',
          '40', '--hidden-units', '64,32']
  assert_refused(main_in_process(*base, *args), message)
  assert snapshot(job_dir) == before


@pytest.mark.parametrize('tf_config, args, message', [
    ('{"cluster": ', [], 'TF_CONFIG is not valid JSON'),
    ('{"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}, '
     '"task": {"type": "worker", "index": 1}}', [],
     'TF_CONFIG task worker 1 is not in its cluster (1 chief, 1 worker)'),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, '
     '"task": {"type": "worker", "index": 0}}', [],
     'TF_CONFIG cluster has 0 chief/master tasks; it needs exactly one'),
    ('{"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}, '
     '"task": {"type": "chief", "index": 0}}', ['--distribute', 'mirrored'],
     '--distribute mirrored cannot run here: TF_CONFIG names a chief and '
     'workers without parameter servers (1 chief, 1 worker); drop '
     '--distribute (auto chooses multiworker here) or change TF_CONFIG'),
    ('{"cluster": {"master": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}, '
     '"task": {"type": "worker", "index": 0}}', ['--distribute', 'ps'],
     '--distribute ps cannot run here: TF_CONFIG names a chief and workers'),
    ('{"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"], '
     '"ps": ["127.0.0.1:3"]}, "task": {"type": "worker", "index": 0}}',
     ['--distribute', 'multiworker'], '--distribute multiworker cannot run '
     'here: TF_CONFIG names parameter servers (1 chief, 1 ps, 1 worker); '
     'drop --distribute (auto chooses ps here)'),
    ('{"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", '
     '"127.0.0.1:3"]}, "task": {"type": "worker", "index": 1}}', [],
     '--batch-size=32 must be a multiple of the 3 replicas --distribute '
     'multiworker trains here: each takes an equal share of a batch'),
    ('', ['--distribute', 'multiworker'], '--distribute multiworker cannot '
     'run here: no TF_CONFIG cluster: this task trains alone'),
    ('{"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}, '
     '"task": {"type": "chief", "index": 0}}', ['--steps-per-run', '11'],
     '--steps-per-run=11 is more than 10, the most steps a run unrolls under '
     '--distribute multiworker'),
])
def test_bad_tf_config_fails_with_one_line_and_touches_nothing(
    main_in_process, first_run, mnist_dir, tf_config, args, message):
  job_dir, _ = first_run
  before = snapshot(job_dir)
  result = main_in_process(
      '--model-type', 'custom', '--data-dir', mnist_dir, '--job-dir', job_dir,
      '--train-steps', '80', *SMALL, *args, env={'TF_CONFIG': tf_config})
  assert_refused(result, message)
  assert snapshot(job_dir) == before


@pytest.mark.parametrize('case', sorted(mnist_files.BROKEN))
def test_bad_data_fails_with_one_line_and_touches_nothing(
    main_in_process, first_run, mnist_dir, tmp_path, case):
  job_dir, _ = first_run
  before = snapshot(job_dir)
  broken = str(tmp_path / 'mnist')
  shutil.copytree(mnist_dir, broken)
  message = mnist_files.break_mnist(broken, case)
  result = main_in_process('--model-type', 'custom', '--data-dir', broken,
                           '--job-dir', job_dir, '--train-steps', '80', *SMALL)
  assert_refused(result, message)
  assert snapshot(job_dir) == before


def test_missing_data_dir_names_the_flag_and_creates_nothing(tmp_path):
  result = run_task('--data-dir', str(tmp_path / 'none'), '--job-dir',
                    str(tmp_path / 'job'))
  assert_refused(result, 'does not exist or is not a folder; pass --data-dir')
  assert not (tmp_path / 'job').exists()


@pytest.mark.slow
@pytest.mark.parametrize('args, message', [
    (['--model-type', 'premade'],
     'holds checkpoints of a model with model_type=custom, not '
     'model_type=premade; use a new --job-dir or the same settings'),
    (['--model-type', 'custom', '--hidden-units', '128,32'],
     'holds checkpoints of a model with hidden_units=[64, 32], not '
     'hidden_units=[128, 32]'),
])
def test_job_dir_of_another_model_is_refused(first_run, mnist_dir, args,
                                             message):
  job_dir, _ = first_run
  before = snapshot(job_dir)
  result = run_task('--data-dir', mnist_dir, '--job-dir', job_dir,
                    '--train-steps', '80', *SMALL, *args)
  assert_refused(result, message)
  assert snapshot(job_dir) == before


@pytest.fixture
def no_config_job(first_run, tmp_path):
  """A copy of the trained job dir without trainer_config.json."""
  job_dir = str(tmp_path / 'no-config')
  shutil.copytree(first_run[0], job_dir)
  os.remove(os.path.join(job_dir, 'trainer_config.json'))
  return job_dir


@pytest.mark.parametrize('args, message', [
    (['--hidden-units', '128,32'],
     'holds checkpoints where dense/kernel has shape [784, 64], but these '
     'settings build [784, 128]; use a new --job-dir or the settings the '
     'checkpoints were made with'),
    (['--optimizer', 'sgd'],
     'holds checkpoints without the variable SGD/decay that these settings '
     'build'),
    (['--lr-schedule', 'constant'],
     'holds checkpoints without the variable Adam/learning_rate'),
])
def test_checkpoints_without_trainer_config_are_checked_by_variables(
    main_in_process, no_config_job, mnist_dir, args, message):
  before = snapshot(no_config_job)
  result = main_in_process('--model-type', 'custom', '--data-dir', mnist_dir,
                           '--job-dir', no_config_job, '--train-steps', '80',
                           *SMALL, *args)
  assert_refused(result, message)
  assert snapshot(no_config_job) == before


def test_unreadable_checkpoint_is_refused(main_in_process, no_config_job,
                                          mnist_dir):
  for name in os.listdir(no_config_job):
    if name.startswith('model.ckpt-40.data'):
      os.remove(os.path.join(no_config_job, name))
  before = snapshot(no_config_job)
  result = main_in_process('--model-type', 'custom', '--data-dir', mnist_dir,
                           '--job-dir', no_config_job, '--train-steps', '80',
                           *SMALL)
  assert_refused(result, f'checkpoint {no_config_job}/model.ckpt-40 cannot be '
                 'read (')
  assert snapshot(no_config_job) == before


@pytest.mark.slow
def test_checkpoints_without_trainer_config_that_fit_resume(no_config_job,
                                                            mnist_dir):
  results = last_json(run_task(
      '--model-type', 'custom', '--data-dir', mnist_dir, '--job-dir',
      no_config_job, '--train-steps', '60', *SMALL))
  assert results['resumed_from_step'] == 40 and results['global_step'] == 60
  assert os.path.exists(os.path.join(no_config_job, 'trainer_config.json'))


def test_job_dir_that_is_a_file(tmp_path, mnist_dir):
  path = tmp_path / 'results'
  path.write_text('precious')
  result = run_task('--data-dir', mnist_dir, '--job-dir', str(path))
  assert_refused(result, 'is a file; give a folder path')
  assert path.read_text() == 'precious'


def test_job_dir_that_is_not_writable(tmp_path, mnist_dir):
  path = tmp_path / 'file'
  path.write_text('precious')
  result = run_task('--data-dir', mnist_dir, '--job-dir', str(path / 'job'))
  assert_refused(result, f'--job-dir {path / "job"} is not writable (')
  assert path.read_text() == 'precious'


def test_job_dir_is_required(mnist_dir):
  assert_refused(run_task('--data-dir', mnist_dir), '--job-dir is required')


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(no_config_job,
                                                          mnist_dir):
  """No trainer_config.json: it would refuse the new --learning-rate."""
  job_dir = no_config_job
  result = run_task('--model-type', 'custom', '--data-dir', mnist_dir,
                    '--job-dir', job_dir, '--train-steps', '80', *SMALL,
                    '--learning-rate', '1e10')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      'error: the training loss became NaN; the newest checkpoint (step 40) '
      f'in {job_dir} is kept; rerun with a lower --learning-rate (now '
      '10000000000.0) or a new --job-dir')
  assert jobdir.global_step(job_dir) == 40
  with open(os.path.join(job_dir, 'results.json')) as f:
    assert json.load(f)['global_step'] == 40, 'the step-40 results remain'


@pytest.mark.parametrize('model_type', ['premade', 'custom'])
def test_default_models_learn_real_mnist(real_mnist_dir, tmp_path, model_type):
  """A short run of the default settings on the real data (MNIST_DATA_DIR)."""
  result = run_task('--model-type', model_type, '--data-dir', real_mnist_dir,
                    '--job-dir', str(tmp_path / model_type), '--train-steps',
                    '1000', '--eval-secs', '0')
  assert last_json(result)['accuracy'] > 0.95


def test_help_lists_hyphenated_flags_and_exits_0():
  result = run_task('--help')
  assert result.returncode == 0, result.stderr
  assert '  --job-dir\n' in result.stdout
  assert '  --[no]batch-norm\n' in result.stdout
  assert '  --checkpoint-steps\n' in result.stdout
  assert 'would cost more than 2% of training' in ' '.join(
      result.stdout.split()), 'the checkpoint rule'
  assert '--job_dir' not in result.stdout and '--train_steps' not in (
      result.stdout)
  # Per-model defaults come from config.MODEL_DEFAULTS, not restated.
  help_text = ' '.join(result.stdout.split())
  for name in ('num_epochs', 'batch_size', 'learning_rate', 'dropout'):
    assert config_lib.describe_defaults(name) in help_text, name
  assert config_lib.describe_defaults('batch_size') == (
      'premade 128, custom and keras 256')


@pytest.mark.slow
@pytest.mark.parametrize('level', ['0', '2'])
def test_one_line_errors_hold_under_the_users_tf_cpp_min_log_level(
    tmp_path, mnist_dir, level):
  """TensorFlow's C++ start-up lines (some at ERROR level) stay out."""
  result = run_task('--data-dir', mnist_dir, '--job-dir', str(tmp_path),
                    '--batch-size', '0', env={'TF_CPP_MIN_LOG_LEVEL': level})
  assert_refused(result, '--batch-size=0 must be greater than 0')


@pytest.mark.slow
def test_keras_run_shows_no_keras_deprecation_warnings(tmp_path, mnist_dir):
  result = run_task('--model-type', 'keras', '--data-dir', mnist_dir,
                    '--job-dir', str(tmp_path / 'keras'), '--train-steps',
                    '5', *SMALL)
  last_json(result)
  assert 'Warning' not in result.stderr, result.stderr


def _without_read_permission():
  """A command prefix that runs without the power to read any file.

  Root reads files whatever their mode; setpriv drops the capabilities that
  let it (the process stays root, so it can still run the venv's Python).
  """
  if os.geteuid() != 0:
    return []
  if not shutil.which('setpriv'):
    pytest.skip('running as root without setpriv: chmod cannot stop reads')
  caps = '-dac_override,-dac_read_search'
  return ['setpriv', f'--bounding-set={caps}', f'--inh-caps={caps}']


@pytest.mark.parametrize('unreadable', ['.', 'train-labels-idx1-ubyte.gz'])
def test_unreadable_data_says_permission_denied(tmp_path, mnist_dir,
                                                unreadable):
  data_dir = tmp_path / 'mnist'
  shutil.copytree(mnist_dir, data_dir)
  path = os.path.normpath(data_dir / unreadable)
  os.chmod(path, 0)
  try:
    result = processes.run([*_without_read_permission(), *processes.TASK,
                            '--data-dir', str(data_dir), '--job-dir',
                            str(tmp_path / 'job')])
  finally:
    os.chmod(path, 0o755)
  prefix = f'data dir {path}' if unreadable == '.' else path
  assert_refused(result, f'error: {prefix}: permission denied; give your '
                 'user read access to it, or pass --data-dir a folder you '
                 'can read')
  assert not (tmp_path / 'job').exists()
