"""The answers, one row per input: a table or JSON lines, and the accuracy."""

import json

FORMATS = ('table', 'json')


def rows_of(batch, outputs):
  for i, name in enumerate(batch.names):
    row = {'input': name,
           'class_ids': int(outputs['class_ids'][i]),
           'probabilities': outputs['probabilities'][i].tolist(),
           'logits': outputs['logits'][i].tolist()}
    if batch.labels is not None:
      row['label'] = int(batch.labels[i])
    yield row


def accuracy(rows):
  """{'accuracy', 'correct', 'count'} over the rows with labels, or None."""
  labelled = [row for row in rows if 'label' in row]
  if not labelled:
    return None
  correct = sum(row['class_ids'] == row['label'] for row in labelled)
  return {'accuracy': correct / len(labelled), 'correct': correct,
          'count': len(labelled)}


def write_rows(rows, fmt, out):
  summary = accuracy(rows)
  if fmt == 'json':
    for row in rows:
      out.write(json.dumps(row) + '\n')
    if summary:
      out.write(json.dumps(summary) + '\n')
    return
  width = max([len('input')] + [len(row['input']) for row in rows])
  out.write(f'{"input":<{width}}  class  probability  label\n')
  for row in rows:
    probability = row['probabilities'][row['class_ids']]
    label = row.get('label', '-')
    out.write(f'{row["input"]:<{width}}  {row["class_ids"]:>5}  '
              f'{probability:>11.4f}  {label:>5}\n')
  if summary:
    out.write(f'accuracy {summary["accuracy"]:.4f} ({summary["correct"]}/'
              f'{summary["count"]})\n')
