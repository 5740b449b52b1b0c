"""`python -m trainer.predict`: classify digits with an exported SavedModel.

The model is a SavedModel folder or a job dir (its newest export), local or
gs://. Inputs: PNG/JPEG files, a .npy array of pixels, a JSON file of
instances (a request body or JSON lines, as sent to TensorFlow Serving or
Vertex AI), or the MNIST test set of a data dir, with accuracy; --report
draws what the model gets wrong on that test set (report.py). Each input
goes through the signature a server would use for it, so what this prints
is what a server returns. An input that does not look like an MNIST digit
gets a warning line (mnist_like.py).
"""

import json
import sys

import tensorflow as tf

from trainer import cli
from trainer import data
from trainer import figures
from trainer.errors import InputError
from trainer.predict import readers
from trainer.predict import report
from trainer.predict import rows as rows_lib
from trainer.predict import savedmodel


def parse_args(argv):
  parser = cli.ArgumentParser(prog='python -m trainer.predict',
                              description=__doc__.split('\n\n')[0])
  parser.add_argument('inputs', nargs='*', metavar='INPUT',
                      help='PNG/JPEG images (white digit on black, any size: '
                      'scaled to 28x28), .npy arrays of 0-255 pixels '
                      '[n, 784] or [n, 28, 28], .json/.jsonl files of '
                      'instances')
  parser.add_argument('--model', '--model-dir', '--model_dir', required=True,
                      help='SavedModel folder, or a job dir (its newest '
                      'export); local or gs://')
  parser.add_argument('--export', choices=('latest', 'best'),
                      default='latest',
                      help='for a job dir: export/latest (the last '
                      'evaluated checkpoint, as in results.json) or '
                      'export/best')
  cli.add_data_dir(parser, 'also predict the MNIST test set in this folder '
                   'and print the accuracy; with --report, the test set '
                   'to report on (default $MNIST_DATA_DIR, else the '
                   'download cache, as for trainer.task)')
  parser.add_argument('--report', metavar='OUT',
                      help='write what the model gets wrong on the test set '
                      'into this folder: confusion.png, mistakes.png, '
                      'report.md (precision and recall per digit, also '
                      'printed), report.json; needs matplotlib '
                      "(pip install '.[plots]')")
  parser.add_argument('--format', choices=rows_lib.FORMATS, default='table',
                      help='a table, or JSON lines (one object per input, '
                      'then the accuracy when labels are known)')
  args = parser.parse_args(argv)
  if not args.inputs and not args.data_dir and not args.report:
    parser.error('give input files, --data-dir or --report')
  return args


def check_report_folder(folder):
  """Fails before predicting, not after, if the report cannot be written."""
  figures.pyplot(report.REPORT_FLAG)
  if tf.io.gfile.exists(folder) and not tf.io.gfile.isdir(folder):
    raise InputError(f'--report {folder} is a file; give a folder for the '
                     'report')
  try:
    tf.io.gfile.makedirs(folder)
  except tf.errors.OpError as e:
    raise InputError(f'--report {folder} cannot be made ({e.message}); give '
                     'a folder you can write to') from None


def write_report(folder, test, outputs, source, fmt):
  """The report on the test set (report.py); its class table, printed."""
  summary = report.summarize(test.labels, outputs, source)
  try:
    paths = report.write(folder, summary, test.values)
  except tf.errors.OpError as e:
    cli.fail(f'error: --report {folder} could not be written ({e.message}); '
             'give a folder you can write to')
  if fmt == 'json':
    print(json.dumps(summary))
  else:
    print(report.class_table(summary))
    print('wrote ' + ', '.join(paths))


def main(argv=None):
  args = parse_args(argv)
  tf.get_logger().setLevel('ERROR')
  data_dir = args.data_dir
  with cli.one_line_errors():
    path = savedmodel.resolve_model(args.model, args.export)
    if args.report:
      check_report_folder(args.report)
      data_dir = data.resolve_data_dir(data_dir)
    batches = readers.read_inputs(args.inputs, data_dir)
    loaded = savedmodel.load_model(path)
    outputs = [savedmodel.predict(loaded, batch) for batch in batches]
  for line in readers.input_warnings(batches):
    print(line, file=sys.stderr)
  if args.report:  # the test set, last: reported, not listed
    test, test_outputs = batches.pop(), outputs.pop()
  rows = [row for batch, output in zip(batches, outputs)
          for row in rows_lib.rows_of(batch, output)]
  if rows:
    rows_lib.write_rows(rows, args.format, sys.stdout)
  if args.report:
    write_report(args.report, test, test_outputs,
                 {'model': path, 'data_dir': data_dir}, args.format)
