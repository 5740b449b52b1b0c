"""A picture of what a model gets wrong on the MNIST test set.

`python -m trainer.predict --model JOB --report OUT` writes into OUT (local
or gs://):

  confusion.png  test images per (label, prediction): the off-diagonal
                 cells are the mistakes
  mistakes.png   the most confident mistakes: image, label, prediction and
                 the probability the model gave its wrong answer
  report.md      per-class precision and recall, and the mistakes shown
  report.json    the same numbers

The numbers come from the export's answers, so they are what a server
would return. The pictures need matplotlib (the `[plots]` extra), loaded
only when they are drawn (trainer/figures.py).
"""

import math
import os

import numpy as np
import tensorflow as tf

from trainer import data
from trainer import figures
from trainer import jobdir

CONFUSION_PNG = 'confusion.png'
MISTAKES_PNG = 'mistakes.png'
REPORT_MD = 'report.md'
REPORT_JSON = 'report.json'
FILES = (CONFUSION_PNG, MISTAKES_PNG, REPORT_MD, REPORT_JSON)
MISTAKES_SHOWN = 32
REPORT_FLAG = 'python -m trainer.predict --report'  # what needs matplotlib
_COLUMNS = 8  # tiles per row of mistakes.png


def confusion(labels, predictions):
  """counts[label, prediction] over the 10 digits."""
  counts = np.zeros((data.NUM_CLASSES, data.NUM_CLASSES), np.int64)
  np.add.at(counts, (np.asarray(labels, np.int64),
                     np.asarray(predictions, np.int64)), 1)
  return counts


def per_class(counts):
  """One dict per digit; a rate with nothing to divide by is None."""
  rows = []
  for digit in range(data.NUM_CLASSES):
    correct = int(counts[digit, digit])
    support, predicted = int(counts[digit].sum()), int(counts[:, digit].sum())
    rows.append({'digit': digit, 'support': support, 'predicted': predicted,
                 'correct': correct,
                 'precision': correct / predicted if predicted else None,
                 'recall': correct / support if support else None})
  return rows


def confident_mistakes(labels, predictions, probabilities, limit):
  """Indices of the wrong answers, most confident first (ties: by index)."""
  wrong = np.flatnonzero(labels != predictions)
  confidence = probabilities[wrong, predictions[wrong]]
  return wrong[np.argsort(-confidence, kind='stable')][:limit]


def summarize(labels, outputs, source, limit=MISTAKES_SHOWN):
  """The report's numbers, as report.json holds them.

  `outputs` is what the export returned (class_ids, probabilities);
  `source` names the model and the data for the reader.
  """
  labels = np.asarray(labels)
  predictions = np.asarray(outputs['class_ids']).ravel()
  probabilities = np.asarray(outputs['probabilities'])
  counts = confusion(labels, predictions)
  correct = int(np.trace(counts))
  mistakes = [{'index': int(i), 'label': int(labels[i]),
               'prediction': int(predictions[i]),
               'probability': float(probabilities[i, predictions[i]]),
               'label_probability': float(probabilities[i, labels[i]])}
              for i in confident_mistakes(labels, predictions, probabilities,
                                          limit)]
  return {**source, 'count': len(labels), 'correct': correct,
          'accuracy': correct / len(labels),
          'mistakes_total': len(labels) - correct,
          'confusion': counts.tolist(), 'classes': per_class(counts),
          'mistakes': mistakes}


# --- Pictures. ----------------------------------------------------------------

def confusion_chart(summary):
  """PNG bytes: counts per (label, prediction), log-coloured, all written."""
  plt = figures.pyplot(REPORT_FLAG)
  from matplotlib import colors  # pylint: disable=import-outside-toplevel
  counts = np.array(summary['confusion'])
  fig, ax = plt.subplots(figsize=(6.4, 5.6))
  shown = np.ma.masked_equal(counts, 0)
  image = ax.imshow(shown, cmap='Blues', norm=colors.LogNorm(
      vmin=1, vmax=max(2, counts.max())))
  for (label, prediction), count in np.ndenumerate(counts):
    if count:
      dark = count > math.sqrt(max(2, counts.max()))
      ax.text(prediction, label, f'{count}', ha='center', va='center',
              fontsize='x-small', color='white' if dark else 'black',
              fontweight='normal' if label == prediction else 'bold')
  digits = range(data.NUM_CLASSES)
  ax.set(xticks=digits, yticks=digits, xlabel='prediction',
         ylabel='label (the true digit)')
  ax.set_title(f'{summary["mistakes_total"]:,} mistakes in '
               f'{summary["count"]:,} test images (accuracy '
               f'{summary["accuracy"]:.2%})', fontsize='medium')
  fig.colorbar(image, ax=ax, label='test images (log scale)', shrink=0.8)
  return figures.png_bytes(fig)


def mistakes_chart(summary, images):
  """PNG bytes: one tile per mistake in summary, most confident first."""
  plt = figures.pyplot(REPORT_FLAG)
  mistakes = summary['mistakes']
  rows = max(1, math.ceil(len(mistakes) / _COLUMNS))
  fig, axes = plt.subplots(rows, _COLUMNS, figsize=(_COLUMNS * 1.15,
                                                    0.4 + rows * 1.45),
                           squeeze=False)
  for ax in axes.flat:
    ax.axis('off')
  size = data.IMAGE_SIZE
  for ax, mistake in zip(axes.flat, mistakes):
    ax.imshow(np.asarray(images[mistake['index']]).reshape(size, size),
              cmap='gray', vmin=0, vmax=255)
    probability = _floor4(mistake['probability'])
    ax.set_title(f'#{mistake["index"]}: {mistake["label"]} as '
                 f'{mistake["prediction"]}\np={probability}', fontsize='small')
  if not mistakes:
    axes[0, 0].text(0, 0.5, 'no mistakes', fontsize='large')
  fig.suptitle(f'The {len(mistakes)} most confident of '
               f'{summary["mistakes_total"]:,} mistakes: test image, '
               'label as prediction, probability of the prediction',
               fontsize='small')
  return figures.png_bytes(fig)


def _floor4(probability):
  """Four decimals, rounded down: 0.99996 is not certainty (1.0000)."""
  return f'{math.floor(probability * 1e4) / 1e4:.4f}'


# --- Text. --------------------------------------------------------------------

def _rate(value):
  return '-' if value is None else f'{value:.2%}'


def class_table(summary):
  """Markdown: precision and recall per digit, what the command prints."""
  lines = ['| digit | precision | recall | test images | predicted as it |',
           '| ---: | ---: | ---: | ---: | ---: |']
  for row in summary['classes']:
    lines.append(f'| {row["digit"]} | {_rate(row["precision"])} | '
                 f'{_rate(row["recall"])} | {row["support"]:,} | '
                 f'{row["predicted"]:,} |')
  lines.append(f'| all | | {summary["accuracy"]:.2%} accuracy | '
               f'{summary["count"]:,} | |')
  return '\n'.join(lines)


def markdown(summary):
  mistakes = ['| test image | label | prediction | probability | '
              'probability of the label |', '| ---: | ---: | ---: | ---: | '
              '---: |']
  mistakes += [f'| {m["index"]} | {m["label"]} | {m["prediction"]} | '
               f'{_floor4(m["probability"])} | '
               f'{_floor4(m["label_probability"])} |'
               for m in summary['mistakes']]
  return '\n\n'.join([
      '# What the model gets wrong',
      f'Model `{summary["model"]}` on the MNIST test set in '
      f'`{summary["data_dir"]}`: {summary["correct"]:,} of '
      f'{summary["count"]:,} right ({summary["accuracy"]:.2%}), '
      f'{summary["mistakes_total"]:,} mistakes.',
      class_table(summary),
      'Precision: of the images predicted as the digit, the share that are '
      'it. Recall: of the images of the digit, the share predicted as it.',
      f'![confusion matrix]({CONFUSION_PNG})',
      '## The most confident mistakes',
      f'![most confident mistakes]({MISTAKES_PNG})',
      '\n'.join(mistakes)]) + '\n'


# --- Files. -------------------------------------------------------------------

def write(folder, summary, images):
  """Writes the four files into folder (made if missing); their paths."""
  contents = {
      CONFUSION_PNG: confusion_chart(summary),
      MISTAKES_PNG: mistakes_chart(summary, images),
      REPORT_MD: markdown(summary),
  }
  tf.io.gfile.makedirs(folder)
  paths = []
  for name, content in contents.items():
    paths.append(os.path.join(folder, name))
    with tf.io.gfile.GFile(paths[-1], 'wb' if isinstance(content, bytes)
                           else 'w') as f:
      f.write(content)
  paths.append(jobdir.write_json(os.path.join(folder, REPORT_JSON), summary))
  return paths
