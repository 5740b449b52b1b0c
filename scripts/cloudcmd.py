"""What the Google Cloud scripts share: checked inputs and the command echo.

Each input comes from a flag or its environment variable; a missing or bad
one stops the script with one line naming the flag, the variable and an
example. Every command is printed before it runs; with --dry-run it is only
printed, and gcloud or docker need not be installed.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_BUCKET = re.compile(r'^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$')
_JOB_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]{0,127}$')  # AI Platform's rule


def fail(message):
  """trainer/cli.py's convention: one line `error: ...`, exit status 1.

  These scripts run with any python3 (they need gcloud or docker, not the
  venv), so they cannot import the trainer package.
  """
  sys.exit(f'error: {message}')


class _Parser(argparse.ArgumentParser):
  """Usage errors through fail(), not argparse's usage and exit 2."""

  def error(self, message):
    fail(f'{message} (see --help)')


def parser(description):
  """An argument parser with the flags every script takes."""
  p = _Parser(
      description=description,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--dry-run', action='store_true',
                 help='print the commands without running them')
  return p


def add_job_flags(p):
  p.add_argument('--bucket', help='Cloud Storage bucket for the job '
                 '(default: $BUCKET)')
  p.add_argument('--region', help='region to run in (default: $REGION), '
                 'e.g. us-central1')
  p.add_argument('--job-name', help='job name (default: mnist_<time>)')
  p.add_argument('trainer_args', nargs='*', metavar='-- TRAINER_ARGS',
                 help='flags for python -m trainer.task, after --')


def setting(value, flag, variable, example):
  """A flag's value, else its environment variable's; fails when neither."""
  value = value or os.environ.get(variable)
  if not value:
    fail(f'no {flag.lstrip("-")} given: pass {flag} {example} or set '
         f'{variable}')
  return value


def bucket(value):
  """The bucket name from --bucket / $BUCKET (gs:// prefix allowed)."""
  name = setting(value, '--bucket', 'BUCKET', 'my-bucket')
  name = name[len('gs://'):] if name.startswith('gs://') else name
  name = name.rstrip('/')
  if not _BUCKET.match(name):
    fail(f'--bucket {value or name} is not a bucket name; give one like '
         'my-bucket (lowercase letters, digits, - _ .)')
  return name


def image_uri(value):
  """The training image from --image-uri / $IMAGE_URI."""
  return setting(value, '--image-uri', 'IMAGE_URI',
                 'us-central1-docker.pkg.dev/PROJECT/REPOSITORY/'
                 'mnist-trainer:v1')


def serving_image_uri(value):
  """The serving image (Dockerfile.serving) from --image-uri /
  $SERVING_IMAGE_URI."""
  return setting(value, '--image-uri', 'SERVING_IMAGE_URI',
                 'us-central1-docker.pkg.dev/PROJECT/REPOSITORY/'
                 'mnist-serving:v1')


def job_name(value):
  name = value or time.strftime('mnist_%Y%m%d_%H%M%S')
  if not _JOB_NAME.match(name):
    fail(f'--job-name {name} is not allowed: start with a letter, then '
         'letters, digits and underscores (128 at most)')
  return name


def tool(name, dry_run, install_hint):
  """The program to run; it must be on PATH unless only printing."""
  if not dry_run and shutil.which(name) is None:
    fail(f'{name} is not on PATH; {install_hint}, or add --dry-run to see '
         'the command')
  return name


def run(command, dry_run):
  """Prints the command, then runs it (unless dry_run); exits on failure."""
  print('+ ' + shlex.join(command), flush=True)
  if dry_run:
    return
  code = subprocess.call(command)
  if code:
    sys.exit(code)


def output(command):
  """Prints the command, runs it (also with --dry-run: only for commands
  that read) and returns its stdout; one line and exit on failure."""
  print('+ ' + shlex.join(command), flush=True)
  result = subprocess.run(command, capture_output=True, text=True,
                          check=False)
  if result.returncode:
    last = (result.stderr.strip().splitlines() or ['no output'])[-1]
    fail(f'{shlex.join(command)} exited {result.returncode}: {last}')
  return result.stdout


GCLOUD_HINT = ('install the Google Cloud CLI '
               '(https://cloud.google.com/sdk/docs/install)')
