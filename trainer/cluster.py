"""This process's part in a training job, read once from TF_CONFIG.

gcloud, Vertex AI and scripts/local_cluster.py describe a job in TF_CONFIG:
{"cluster": {"chief": [...], "worker": [...], "ps": [...]},
 "task": {"type": "worker", "index": 0}}. An evaluator gets the same cluster
with task type "evaluator"; it is not listed in the cluster (AI Platform and
`gcloud ai-platform local train --distributed` leave it out), so no other task
can tell whether one exists. Hence one rule that needs no such knowledge: the
chief (or a legacy `master`) is the only task that writes trainer_config.json,
checkpoints, the final evaluation, the export and results.json; an evaluator
only evaluates, for TensorBoard.

A cluster of one task (a single-replica cloud job) or an empty one (`gcloud
ai-platform local train`) runs exactly like a local run: in
train_and_evaluate a lone `chief` would train but never evaluate or export.
"""

import contextlib
import dataclasses
import json
import os
from typing import Mapping, Tuple

import tensorflow as tf

from trainer.errors import UsageError

LOCAL = 'local'
CHIEFS = ('chief', 'master')
TRAINERS = CHIEFS + ('worker',)
TASK_TYPES = TRAINERS + ('ps', 'evaluator')

_FIX = 'fix TF_CONFIG, or unset it to train locally'


@dataclasses.dataclass(frozen=True)
class Role:
  task_type: str = LOCAL
  task_index: int = 0
  cluster: Mapping[str, Tuple[str, ...]] = dataclasses.field(
      default_factory=dict)

  @property
  def name(self):
    return self.task_type if self.is_local else (
        f'{self.task_type} {self.task_index}')

  @property
  def is_local(self):
    return self.task_type == LOCAL

  @property
  def is_chief(self):
    """Writes checkpoints, the final evaluation, the export, results.json."""
    return self.is_local or self.task_type in CHIEFS

  @property
  def is_evaluator(self):
    return self.task_type == 'evaluator'

  @property
  def trains(self):
    return self.is_local or self.task_type in TRAINERS

  @property
  def shard(self):
    """(index, count) among the training replicas: each its own data order."""
    replicas = [(t, i) for t in TRAINERS
                for i in range(len(self.cluster.get(t, ())))]
    if (self.task_type, self.task_index) not in replicas:
      return 0, 1
    return replicas.index((self.task_type, self.task_index)), len(replicas)

  def tf_config(self):
    """TF_CONFIG as the Estimator must see it: no cluster when local."""
    if self.is_local:
      return {}
    cluster = {job: list(tasks) for job, tasks in self.cluster.items()}
    return {'cluster': cluster,
            'task': {'type': self.task_type, 'index': self.task_index}}


def from_environment(environ=None):
  """The Role that TF_CONFIG describes; a UsageError names what is wrong."""
  raw = (os.environ if environ is None else environ).get('TF_CONFIG', '')
  if not raw.strip():
    return Role()
  try:
    tf_config = json.loads(raw)
  except ValueError as e:
    raise UsageError(f'TF_CONFIG is not valid JSON ({e}); {_FIX}') from None
  if not isinstance(tf_config, dict):
    raise UsageError(f'TF_CONFIG must be a JSON object, not {raw!r}; {_FIX}')
  cluster = {job: tuple(tasks) for job, tasks in
             (tf_config.get('cluster') or {}).items() if tasks}
  task = tf_config.get('task') or {}
  if sum(map(len, cluster.values())) <= 1 and task.get('type') in (
      None,) + CHIEFS:
    return Role()
  return _validated(Role(task.get('type'), int(task.get('index', 0)),
                         cluster))


def _validated(role):
  unknown = sorted(set(role.cluster) - set(TASK_TYPES))
  if unknown:
    raise UsageError(f'TF_CONFIG cluster has job {unknown[0]!r}; jobs are '
                     f'{", ".join(TASK_TYPES)}; {_FIX}')
  chiefs = sum(len(role.cluster.get(job, ())) for job in CHIEFS)
  if chiefs != 1:
    raise UsageError(f'TF_CONFIG cluster has {chiefs} chief/master tasks; it '
                     f'needs exactly one; {_FIX}')
  if role.is_evaluator:
    if role.task_index != 0:
      raise UsageError(f'TF_CONFIG task is evaluator {role.task_index}; a job '
                       f'has at most one evaluator (index 0); {_FIX}')
    return role
  if not 0 <= role.task_index < len(role.cluster.get(role.task_type, ())):
    raise UsageError(f'TF_CONFIG task {role.task_type} {role.task_index} is '
                     f'not in its cluster ({_describe(role.cluster)}); '
                     f'{_FIX}')
  return role


def _describe(cluster):
  return ', '.join(f'{len(tasks)} {job}' for job, tasks in
                   sorted(cluster.items()))


def run_config(role, **kwargs):
  """A tf.estimator.RunConfig for `role`.

  RunConfig reads TF_CONFIG itself, with no way to pass it in; it is shown
  `role.tf_config()` while it is built, so a cluster of one runs locally.
  """
  with _environment('TF_CONFIG', json.dumps(role.tf_config())):
    return tf.estimator.RunConfig(**kwargs)


@contextlib.contextmanager
def _environment(name, value):
  saved = os.environ.get(name)
  os.environ[name] = value
  try:
    yield
  finally:
    if saved is None:
      del os.environ[name]
    else:
      os.environ[name] = saved
