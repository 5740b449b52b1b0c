"""A sweep's tables: results.csv, results.md and the machine they ran on.

The sweep writes them after each run; its charts (plots.py) read
results.csv to know which runs belong to which experiment.
"""

import csv
import io
import os
import platform

import tensorflow as tf

from trainer import jobdir

CSV_FILE = 'results.csv'
MARKDOWN_FILE = 'results.md'
COLUMNS = ('group', 'label', 'chapter_budget', 'budget',
           'chapter_accuracy_pct', 'accuracy_pct', 'global_step',
           'examples_per_sec', 'wall_time_secs', 'run', 'model_type',
           'hidden_units', 'activation', 'scale_inputs', 'optimizer',
           'learning_rate', 'lr_schedule', 'batch_size', 'dropout', 'seed',
           'note')


def budget(cfg):
  """e.g. '10 epochs' or '2,000 steps': how long cfg trains."""
  if cfg.train_steps:
    return count(cfg.train_steps, 'step')
  return count(cfg.num_epochs, 'epoch')


def count(number, noun):
  text = f'{number:,.0f}' if number == int(number) else f'{number:g}'
  return f'{text} {noun}{"s" * (number != 1)}'


def table_rows(runs, sweep_dir):
  """One dict per run (COLUMNS), with the results its job dir holds."""
  for run in runs:
    e, cfg = run.experiment, run.config
    results = jobdir.read_results(cfg.job_dir) or {}
    accuracy = results.get('accuracy')
    yield {
        'group': e.group, 'label': e.label,
        'chapter_budget': run.chapter_budget, 'budget': budget(cfg),
        'chapter_accuracy_pct': e.reported,
        'accuracy_pct': None if accuracy is None else round(100 * accuracy,
                                                            2),
        'global_step': results.get('global_step'),
        'examples_per_sec': _rounded(results.get('examples_per_sec')),
        'wall_time_secs': results.get('wall_time_secs'),
        'run': os.path.relpath(cfg.job_dir, sweep_dir),
        'model_type': cfg.model_type,
        'hidden_units': ','.join(map(str, cfg.hidden_units)),
        'activation': cfg.activation, 'scale_inputs': cfg.scale_inputs,
        'optimizer': cfg.optimizer, 'learning_rate': cfg.learning_rate,
        'lr_schedule': cfg.lr_schedule, 'batch_size': cfg.batch_size,
        'dropout': ','.join(map(str, cfg.dropout)), 'seed': cfg.seed,
        'note': e.note,
    }


def _rounded(value):
  return None if value is None else round(value)


def write(runs, sweep_dir, heading):
  """Writes results.csv and results.md; returns their paths."""
  rows = list(table_rows(runs, sweep_dir))
  text = io.StringIO()
  writer = csv.DictWriter(text, COLUMNS, lineterminator='\n')
  writer.writeheader()
  writer.writerows(rows)
  paths = (os.path.join(sweep_dir, CSV_FILE),
           os.path.join(sweep_dir, MARKDOWN_FILE))
  for path, content in zip(paths, (text.getvalue(),
                                   markdown(rows, heading))):
    with tf.io.gfile.GFile(path, 'w') as f:
      f.write(content)
  return paths


def markdown(rows, heading=''):
  """The results as a Markdown table, the chapter's number beside ours."""
  lines = [heading, ''] if heading else []
  lines += ['| experiment | setting | chapter | chapter\'s budget | ours | '
            'our budget | run time | note |',
            '| --- | --- | ---: | --- | ---: | --- | ---: | --- |']
  for r in rows:
    chapter_pct = ('–' if r['chapter_accuracy_pct'] is None
                   else f'{r["chapter_accuracy_pct"]:g}%')
    ours = ('not run' if r['accuracy_pct'] is None
            else f'**{r["accuracy_pct"]:.2f}%**')
    time_ = ('' if r['wall_time_secs'] is None
             else f'{r["wall_time_secs"]:.0f} s')
    lines.append(f'| {r["group"]} | {r["label"]} | {chapter_pct} | '
                 f'{r["chapter_budget"]} | {ours} | {r["budget"]} | {time_} | '
                 f'{r["note"]} |')
  return '\n'.join(lines) + '\n'


def describe_machine():
  """e.g. '2 CPU cores (Intel Xeon ...), no GPU, TensorFlow 2.15.1'."""
  cpu = platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(line.split(':', 1)[1].strip() for line in f
                 if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  gpus = [tf.config.experimental.get_device_details(g).get('device_name', 'GPU')
          for g in tf.config.list_physical_devices('GPU')]
  return (f'{os.cpu_count()} CPU cores ({cpu}), '
          f'{", ".join(gpus) if gpus else "no GPU"}, TensorFlow {tf.__version__}')
