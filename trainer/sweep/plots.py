"""`python -m trainer.sweep.plots SWEEP_DIR`: PNG charts of a sweep.

Reads the sweep's results.csv (which runs belong to which experiment) and
each job dir's event files: the training loss that the Estimator writes
under the job dir, the test accuracy under <job-dir>/eval/. Draws, into
<sweep-dir>/plots/: one chart per experiment group (training loss and test
accuracy against step, one line per run) and accuracy.png (our final test
accuracy beside the chapter's, per row). The charts need matplotlib, the
`[plots]` extra (trainer/figures.py).
"""

from trainer import cli

if __name__ == '__main__':
  cli.quiet_unless_verbose([])

# pylint: disable=g-import-not-at-top,wrong-import-position
import csv
import os

import tensorflow as tf

from trainer import figures
from trainer.sweep import tables

COMMAND = 'trainer.sweep.plots'

PLOTS_DIR = 'plots'
EVAL_DIR = 'eval'
# The Estimator's training-loss summary; `loss_1` in Keras-built graphs,
# where an op named `loss` already exists.
TRAIN_LOSS_TAGS = ('loss', 'loss_1')
OURS, CHAPTER = '#1f77b4', '#b0b0b0'


def scalars(folder, tags):
  """[(step, value)] of a scalar (any of `tags`) in folder's event files.

  Sorted by step. A resumed job appends new event files; the newest value
  per step wins.
  """
  values = {}
  for path in sorted(tf.io.gfile.glob(os.path.join(folder,
                                                   'events.out.tfevents*'))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag in tags:
          values[event.step] = (value.simple_value if value.HasField(
              'simple_value') else float(tf.make_ndarray(value.tensor)))
  return sorted(values.items())


def read_rows(sweep_dir):
  with tf.io.gfile.GFile(os.path.join(sweep_dir, tables.CSV_FILE)) as f:
    return list(csv.DictReader(f))


def _legend_label(row, rows):
  """The row's label, plus its budget where the group mixes budgets."""
  if len({r['budget'] for r in rows}) > 1:
    return f'{row["label"]} ({row["budget"]})'
  return row['label']


def curves_chart(group, rows, sweep_dir):
  """PNG bytes: training loss and test accuracy against step, per run."""
  plt = figures.pyplot(f'python -m {COMMAND}')
  fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
  runs = {}  # one line per job dir: rows may share one
  for row in rows:
    runs.setdefault(row['run'], row)
  last_steps = []
  for run, row in runs.items():
    job_dir = os.path.join(sweep_dir, run)
    label = _legend_label(row, rows)
    for ax, folder, tags in ((loss_ax, job_dir, TRAIN_LOSS_TAGS),
                             (acc_ax, os.path.join(job_dir, EVAL_DIR),
                              ('accuracy',))):
      points = scalars(folder, tags)
      if points:
        steps, values = zip(*points)
        ax.plot(steps, values, marker='.' if len(points) < 20 else None,
                label=label)
        last_steps.append(steps[-1])
  loss_ax.set(title=f'{group}: training loss', xlabel='step',
              ylabel='loss (log scale)', yscale='log')
  acc_ax.set(title=f'{group}: test accuracy', xlabel='step',
             ylabel='accuracy')
  for ax in (loss_ax, acc_ax):
    if last_steps and max(last_steps) > 20 * min(last_steps):
      ax.set_xscale('log')  # e.g. batch 32 vs 30,000: 1,000x the steps
    ax.grid(alpha=0.3)
  acc_ax.legend(fontsize='small', loc='lower right')
  return figures.png_bytes(fig)


def accuracy_chart(rows):
  """PNG bytes: our final test accuracy beside the chapter's, per row."""
  plt = figures.pyplot(f'python -m {COMMAND}')
  fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(rows)))
  positions = range(len(rows))[::-1]
  ours = [_number(r['accuracy_pct']) for r in rows]
  theirs = [_number(r['chapter_accuracy_pct']) for r in rows]
  ax.barh([p + 0.2 for p in positions], theirs, height=0.4, color=CHAPTER,
          label='chapter')
  ax.barh([p - 0.2 for p in positions], ours, height=0.4, color=OURS,
          label='ours')
  for p, value in zip(positions, ours):
    if value:
      ax.text(value + 0.5, p - 0.2, f'{value:.1f}', va='center',
              fontsize='x-small')
  ax.set_yticks(list(positions))
  ax.set_yticklabels([_bar_label(r) for r in rows], fontsize='small')
  ax.set(xlim=(0, 105), xlabel='test accuracy, %')
  ax.set_title('MNIST test accuracy', loc='left')
  ax.legend(loc='lower right', bbox_to_anchor=(1.0, 1.0), ncol=2,
            fontsize='small', frameon=False)
  ax.grid(axis='x', alpha=0.3)
  return figures.png_bytes(fig)


def _bar_label(row):
  label = f'{row["group"]}: {row["label"]}, {row["chapter_budget"]}'
  if row['budget'] != row['chapter_budget']:
    label += f' (ours: {row["budget"]})'
  return label


def _number(text):
  return float(text) if text not in (None, '') else 0.0


def write_all(sweep_dir):
  """Draws every chart of the sweep into <sweep-dir>/plots/; returns paths."""
  rows = read_rows(sweep_dir)
  folder = os.path.join(sweep_dir, PLOTS_DIR)
  tf.io.gfile.makedirs(folder)
  charts = {}
  for group in dict.fromkeys(r['group'] for r in rows):
    members = [r for r in rows if r['group'] == group]
    charts[f'{group}.png'] = curves_chart(group, members, sweep_dir)
  charts['accuracy.png'] = accuracy_chart(rows)
  paths = []
  for name, png in charts.items():
    paths.append(os.path.join(folder, name))
    with tf.io.gfile.GFile(paths[-1], 'wb') as f:
      f.write(png)
  return paths


def main(argv=None):
  parser = cli.ArgumentParser(prog=f'python -m {COMMAND}',
                              description=__doc__.split('\n\n')[0])
  parser.add_argument('sweep_dir', metavar='SWEEP_DIR',
                      help='a folder written by python -m trainer.sweep')
  sweep_dir = parser.parse_args(argv).sweep_dir
  csv_file = tables.CSV_FILE
  if not tf.io.gfile.exists(os.path.join(sweep_dir, csv_file)):
    cli.fail(f'error: {sweep_dir} holds no {csv_file}; give a folder '
             'written by python -m trainer.sweep')
  with cli.one_line_errors():
    paths = write_all(sweep_dir)
  for path in paths:
    print(path)


if __name__ == '__main__':
  main()
