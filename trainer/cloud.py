"""Google Cloud specifics: the job dir on Vertex AI, tuning trials, buckets.

Where a run writes (docs/cloud.md has the whole table):
- `--job-dir` when given. In a tuning trial, its `<trial id>/` subfolder:
  legacy AI Platform passes every trial the same --job-dir, and trials must
  not resume each other's checkpoints.
- else Vertex AI's AIP_CHECKPOINT_DIR (`<baseOutputDirectory>[/<trial>]/
  checkpoints/`) holds everything the job dir holds: an Estimator keeps its
  checkpoints and event files in one folder, and Vertex AI gives a restarted
  job the same folder, so a preempted job resumes.
- AIP_MODEL_DIR (`.../model/`) gets a copy of the best SavedModel at its
  root, which is where Vertex AI's model import looks for one.
- AIP_TENSORBOARD_LOG_DIR is not written: the event files stay beside the
  checkpoints; point TensorBoard at the job dir.
"""

import contextlib
import json
import logging
import os
import uuid
import warnings

import tensorflow as tf

from trainer.errors import UsageError

# The scalar a tuning job maximizes. The Estimator writes it to the event
# files in <job-dir>/eval/ (legacy AI Platform reads those); report_metric
# sends it through cloudml-hypertune (Vertex AI reads that).
METRIC_TAG = 'accuracy'


def _task(environ, var):
  raw = environ.get(var)
  if not raw:
    return {}
  try:
    task = json.loads(raw).get('task')
  except (ValueError, AttributeError):
    raise UsageError(f'{var} is not a JSON object; unset it or give the '
                     'cluster description the service sets') from None
  return task if isinstance(task, dict) else {}


def trial_id(environ=None):
  """The tuning trial this process runs, or None outside a tuning job.

  Legacy AI Platform names it in TF_CONFIG's task; Vertex AI in
  CLUSTER_SPEC's (and TF_CONFIG's) task and in CLOUD_ML_TRIAL_ID.
  """
  environ = os.environ if environ is None else environ
  for var in ('TF_CONFIG', 'CLUSTER_SPEC'):
    trial = _task(environ, var).get('trial')
    if trial:
      return str(trial)
  return environ.get('CLOUD_ML_TRIAL_ID') or None


def resolve_job_dir(flag_value, environ=None):
  """--job-dir (per trial in a tuning job), else Vertex's AIP_CHECKPOINT_DIR.

  Vertex AI already puts the trial id into AIP_CHECKPOINT_DIR; None when
  neither is set, which the config reports as a missing --job-dir.
  """
  environ = os.environ if environ is None else environ
  if not flag_value:
    return environ.get('AIP_CHECKPOINT_DIR') or None
  trial = trial_id(environ)
  return os.path.join(flag_value, trial) if trial else flag_value


def storage_api():
  """google-cloud-storage, imported only for gs:// paths (and quietly)."""
  with warnings.catch_warnings():
    # google-api-core warns about Python versions on import; that line would
    # bury the one-line errors below.
    warnings.simplefilter('ignore', FutureWarning)
    from google.api_core import exceptions  # pylint: disable=g-import-not-at-top
    from google.auth import exceptions as auth_exceptions  # pylint: disable=g-import-not-at-top
    from google.cloud import storage  # pylint: disable=g-import-not-at-top
  # Its warning that the metadata server is unavailable would come before
  # the one line that names the missing credentials and the fix.
  logging.getLogger('google.auth._default').setLevel(logging.ERROR)
  return storage, exceptions, auth_exceptions


def check_bucket(path, flag='--job-dir'):
  """Fails fast, in one line, unless a gs:// path's bucket takes writes.

  TensorFlow's GCS client does not: making a folder in a missing bucket
  retries without end (TF 2.15), and a permission error surfaces only at
  the first checkpoint. Writes and deletes one empty object, as training
  will. Honours STORAGE_EMULATOR_HOST.
  """
  if not path.startswith('gs://'):
    return
  bucket, prefix = _split(path)
  with _storage_errors(f'{flag} {path}', bucket, 'write to') as storage:
    probe = storage.Client().bucket(bucket).blob(
        os.path.join(prefix, f'.write-test-{uuid.uuid4().hex}'))
    probe.upload_from_string(b'', retry=_retry())
    probe.delete(retry=_retry())


def check_readable(path, flag, expected):
  """Fails fast, in one line, unless objects exist under a gs:// path.

  TensorFlow's GCS client reports a missing bucket, missing credentials and
  an unreachable service all as a path that does not exist, or as a
  traceback. `expected` says what should be there, for the message.
  """
  if not path.startswith('gs://'):
    return
  bucket, prefix = _split(path)
  with _storage_errors(f'{flag} {path}', bucket, 'read') as storage:
    found = list(storage.Client().list_blobs(
        bucket, prefix=prefix.rstrip('/') + '/' if prefix else None,
        max_results=1, retry=_retry()))
  if not found:
    raise UsageError(f'{flag} {path}: no objects under it in gs://{bucket}; '
                     f'give the gs:// folder that holds {expected}')


def _retry():
  """Transient errors retried briefly, not for the client's two minutes."""
  from google.cloud.storage import retry  # pylint: disable=g-import-not-at-top
  return retry.DEFAULT_RETRY.with_timeout(10)


def _split(path):
  bucket, _, prefix = path[len('gs://'):].partition('/')
  return bucket, prefix


@contextlib.contextmanager
def _storage_errors(where, bucket, action):
  """Turns google-cloud-storage's errors into one UsageError line each."""
  storage, exceptions, auth_exceptions = storage_api()
  try:
    yield storage
  except exceptions.NotFound:
    raise UsageError(
        f'{where}: bucket gs://{bucket} does not exist; create it (gcloud '
        f'storage buckets create gs://{bucket} --location REGION) or give '
        'another bucket') from None
  except exceptions.Forbidden as e:
    raise UsageError(
        f'{where}: this account may not {action} gs://{bucket} '
        f'({e.message}); grant it roles/storage.'
        f'{"objectAdmin" if action == "write to" else "objectViewer"} on the '
        'bucket or give another bucket') from None
  except auth_exceptions.GoogleAuthError as e:
    raise UsageError(
        f'{where}: no usable Google Cloud credentials ({_one_line(e)}); run '
        'gcloud auth application-default login or set '
        'GOOGLE_APPLICATION_CREDENTIALS') from None
  except (exceptions.RetryError, OSError) as e:
    raise UsageError(
        f'{where}: Cloud Storage cannot be reached ({_one_line(e)[:200]}); '
        'check the network connection (and STORAGE_EMULATOR_HOST if '
        'set)') from None
  except exceptions.GoogleAPIError as e:
    raise UsageError(f'{where}: Cloud Storage refused the request '
                     f'({_one_line(e)[:200]}); check the path') from None


def _one_line(error):
  return ' '.join(str(error).split())


def report_metric(results):
  """Sends the tuning metric to Vertex AI (cloudml-hypertune) in a trial.

  Returns whether it did; outside a tuning job there is nobody to tell.
  """
  if trial_id() is None:
    return False
  import hypertune  # pylint: disable=g-import-not-at-top
  hypertune.HyperTune().report_hyperparameter_tuning_metric(
      hyperparameter_metric_tag=METRIC_TAG,
      metric_value=results[METRIC_TAG],
      global_step=results['global_step'])
  return True


def publish_model(export_dir, environ=None):
  """Copies a SavedModel into AIP_MODEL_DIR, for Vertex AI's model import.

  Returns the folder it copied to, or None when Vertex AI asked for none.
  """
  environ = os.environ if environ is None else environ
  target = environ.get('AIP_MODEL_DIR')
  if not target or not export_dir:
    return None
  export_dir = export_dir.rstrip('/')
  for folder, _, files in tf.io.gfile.walk(export_dir):
    dest = os.path.join(target, folder[len(export_dir):].lstrip('/'))
    tf.io.gfile.makedirs(dest)
    for name in files:
      tf.io.gfile.copy(os.path.join(folder, name), os.path.join(dest, name),
                       overwrite=True)
  return target
