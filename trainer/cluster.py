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

A cluster of one training task (a single-replica cloud job, with or
without an evaluator) or an empty one (`gcloud ai-platform local train`)
runs exactly like a local run: in train_and_evaluate a lone `chief` would
train but never evaluate or export. A legacy `master` is renamed `chief`:
TensorFlow turns any distribution strategy off when it sees one
(tensorflow#32081). Without TF_CONFIG, Vertex AI's CLUSTER_SPEC (pools
workerpool0-3: chief, workers, parameter servers, evaluators) is read.

`choose` then names how the task trains (--distribute): `ps` (asynchronous,
parameter servers), `multiworker` (synchronous all-reduce between a chief
and workers), `mirrored` (the devices of one machine) or `none`.
"""

import contextlib
import dataclasses
import json
import os
import re
from typing import Mapping, Tuple

import tensorflow as tf

from trainer.errors import UsageError

LOCAL = 'local'
CHIEFS = ('chief', 'master')
TRAINERS = CHIEFS + ('worker',)
TASK_TYPES = TRAINERS + ('ps', 'evaluator')
# Vertex AI's CLUSTER_SPEC pools, in order.
POOLS = ('chief', 'worker', 'ps', 'evaluator')
# --distribute: what each value does where (trainer.config lists 'auto' too).
STRATEGIES = ('none', 'mirrored', 'multiworker', 'ps')

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
  def replicas(self):
    """Training tasks of the cluster: the chief and the workers."""
    return sum(len(self.cluster.get(t, ())) for t in TRAINERS) or 1

  @property
  def has_ps(self):
    return bool(self.cluster.get('ps'))

  @property
  def shard(self):
    """(index, count) among the training replicas: each its own data order."""
    replicas = [(t, i) for t in TRAINERS
                for i in range(len(self.cluster.get(t, ())))]
    if (self.task_type, self.task_index) not in replicas:
      return 0, 1
    return replicas.index((self.task_type, self.task_index)), len(replicas)

  def tf_config(self):
    """TF_CONFIG as the Estimator must see it: no cluster when local, and
    no evaluator in it (an evaluator here evaluates on its own; in the
    cluster, TensorFlow would count or wait for it)."""
    if self.is_local:
      return {}
    cluster = {job: list(tasks) for job, tasks in self.cluster.items()
               if job != 'evaluator'}
    return {'cluster': cluster,
            'task': {'type': self.task_type, 'index': self.task_index}}


def from_environment(environ=None):
  """The Role that TF_CONFIG (else CLUSTER_SPEC) describes; a UsageError
  names what is wrong."""
  environ = os.environ if environ is None else environ
  var = 'TF_CONFIG'
  raw = environ.get(var, '')
  if not raw.strip() and environ.get('CLUSTER_SPEC', '').strip():
    var, raw = 'CLUSTER_SPEC', environ['CLUSTER_SPEC']
  if not raw.strip():
    return Role()
  try:
    tf_config = json.loads(raw)
  except ValueError as e:
    raise UsageError(f'{var} is not valid JSON ({e}); {_FIX}') from None
  if not isinstance(tf_config, dict):
    raise UsageError(f'{var} must be a JSON object, not {raw!r}; {_FIX}')
  if var == 'CLUSTER_SPEC':
    tf_config = _from_pools(tf_config)
  cluster = {job: tuple(tasks) for job, tasks in
             (tf_config.get('cluster') or {}).items() if tasks}
  task = tf_config.get('task') or {}
  training = sum(len(tasks) for job, tasks in cluster.items()
                 if job != 'evaluator')
  if training <= 1 and task.get('type') in (None,) + CHIEFS:
    return Role()
  return _as_chief(_validated(Role(task.get('type'),
                                   int(task.get('index', 0)), cluster)))


def _from_pools(cluster_spec):
  """Vertex AI's CLUSTER_SPEC (workerpool0-3) in TF_CONFIG's terms."""
  def job(pool):
    found = re.fullmatch(r'workerpool(\d)', str(pool))
    if not found or int(found.group(1)) >= len(POOLS):
      raise UsageError(f'CLUSTER_SPEC names pool {pool!r}; Vertex AI pools '
                       f'are workerpool0-{len(POOLS) - 1}; {_FIX}')
    return POOLS[int(found.group(1))]
  task = dict(cluster_spec.get('task') or {})
  if task.get('type') is not None:
    task['type'] = job(task['type'])
  return {'cluster': {job(pool): tasks for pool, tasks in
                      (cluster_spec.get('cluster') or {}).items()},
          'task': task}


def _as_chief(role):
  """A legacy `master` renamed `chief` (tensorflow#32081)."""
  if 'master' not in role.cluster:
    return role
  cluster = {('chief' if job == 'master' else job): tasks
             for job, tasks in role.cluster.items()}
  task_type = 'chief' if role.task_type == 'master' else role.task_type
  return Role(task_type, role.task_index, cluster)


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


def local_devices():
  """The devices MirroredStrategy mirrors over here: every GPU, else every
  logical CPU device (one, unless a process split the CPU into several)."""
  gpus = tf.config.list_logical_devices('GPU')
  return [d.name for d in gpus or tf.config.list_logical_devices('CPU')]


@dataclasses.dataclass(frozen=True)
class Placement:
  """How this task trains, resolved once before anything is built: the
  strategy --distribute gives it, the devices it mirrors over and the
  replicas that train in step. Every later part takes it as a value."""
  strategy: str
  devices: Tuple[str, ...]
  replicas: int


def place(distribute, role, devices=None):
  """The Placement of --distribute `distribute` for `role` here (devices:
  local_devices())."""
  devices = tuple(local_devices() if devices is None else devices)
  strategy = choose(distribute, role, devices)
  return Placement(strategy, devices, replicas(strategy, role, devices))


def choose(distribute, role, devices):
  """The strategy --distribute gives `role` on a machine with `devices`.

  auto: ps when the cluster has parameter servers; multiworker for a chief
  and workers; mirrored on one machine with several devices; else none.
  A forced value that cannot work here is refused in one line.
  """
  shape = _describe(role.cluster)
  if role.has_ps:
    auto, where = 'ps', f'TF_CONFIG names parameter servers ({shape})'
  elif role.replicas > 1:
    auto, where = 'multiworker', (f'TF_CONFIG names a chief and workers '
                                  f'without parameter servers ({shape})')
  else:
    auto = 'mirrored' if len(devices) > 1 else 'none'
    where = 'no TF_CONFIG cluster: this task trains alone'
  if distribute in ('auto', auto):
    return auto
  if {distribute, auto} == {'none', 'mirrored'}:
    return distribute  # one machine: mirrored runs on its one device too
  raise UsageError(f'--distribute {distribute} cannot run here: {where}; '
                   f'drop --distribute (auto chooses {auto} here) or change '
                   'TF_CONFIG')


def describe(strategy, role, devices):
  """How this task takes part, in a few words, for its start line."""
  if role.is_evaluator:
    return f'{role.name}: evaluating each new checkpoint ({strategy} training)'
  if role.task_type == 'ps':
    return (f'{role.name}: serving the variables of {role.replicas} '
            'asynchronous training tasks')
  index, count = role.shard
  if strategy == 'multiworker':
    return (f'{role.name}: replica {index + 1} of {count}, synchronous '
            '(multiworker)')
  if strategy == 'ps':
    return (f'{role.name}: task {index + 1} of {count}, asynchronous '
            '(parameter servers)')
  if strategy == 'none':
    return 'training on 1 device'
  kind = 'GPU' if 'GPU' in devices[0] else 'CPU device'
  plural = 's' if len(devices) > 1 else ''
  return f'training on {len(devices)} {kind}{plural}, mirrored'


def replicas(strategy, role, devices):
  """Replicas that train in step (results.json's `replicas`); with ps,
  the training tasks, each stepping on its own."""
  if strategy == 'mirrored':
    return len(devices)
  if strategy == 'multiworker':
    gpus = [d for d in devices if 'GPU' in d]
    return role.replicas * max(1, len(gpus))
  return role.replicas


def run_config(role, **kwargs):
  """A tf.estimator.RunConfig for `role`.

  RunConfig reads TF_CONFIG itself, with no way to pass it in; it is shown
  `role.tf_config()` while it is built, so a cluster of one runs locally.
  """
  with shown_to_tensorflow(role):
    return tf.estimator.RunConfig(**kwargs)


def shown_to_tensorflow(role):
  """Context: TF_CONFIG is role.tf_config() inside. MultiWorkerMirrored-
  Strategy and train_and_evaluate read it again, from the environment."""
  return _environment('TF_CONFIG', json.dumps(role.tf_config()))


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
