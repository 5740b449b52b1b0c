#!/usr/bin/env python3
"""Runs the training image as a Vertex AI custom job or tuning job.

  scripts/submit_vertex.py --bucket B --region R --image-uri URI
      [--job-name N] [--tuning | --workers W] [--spec FILE] [--spec-out FILE]
      [--no-restart-job-on-worker-restart] [--dry-run] [-- TRAINER_ARGS]

Fills in configs/vertex/gpu.yaml (tuning.yaml with --tuning; with --workers
W, multi-worker.yaml: a chief and W workers, one GPU each, training in
sync) with the image, gs://B/jobs/N as the base output directory and
TRAINER_ARGS, then
runs `gcloud ai custom-jobs create` (or `gcloud ai hp-tuning-jobs create`)
with it. The filled-in spec stays in jobs/<job name>.yaml (or --spec-out),
so the printed command works when pasted, --dry-run included.

Before it submits, the trainer checks TRAINER_ARGS against the job's pools
offline (`--validate-only --validate-gpus N`, with the CLUSTER_SPEC Vertex
AI will set): flags the job would refuse at its start stop here, in one
line. A job of several synchronous replicas (a chief and workers, no
parameter servers) gets scheduling.restartJobOnWorkerRestart: TensorFlow
cannot take a restarted replica back into its all-reduce, so Vertex AI
restarts every replica when one restarts, and the job resumes from its
newest checkpoint (docs/distributed.md#faults).
The trainer writes to $AIP_CHECKPOINT_DIR and copies the best SavedModel to
$AIP_MODEL_DIR, both under gs://B/jobs/N/ (per trial: gs://B/jobs/N/<id>/).
"""

import argparse
import json
import os
import re
import string
import subprocess
import sys

import cloudcmd

SPECS = os.path.join(cloudcmd.ROOT, 'configs', 'vertex')


def render(spec_path, image, output_dir, trainer_args, workers=None):
  """The spec with its placeholders filled in; JSON values are valid YAML."""
  with open(spec_path) as f:
    template = string.Template(f.read())
  values = dict(IMAGE_URI=json.dumps(image), OUTPUT_DIR=json.dumps(output_dir),
                TRAINER_ARGS=json.dumps(trainer_args))
  if workers is not None:
    values['WORKER_COUNT'] = json.dumps(workers)
  try:
    return template.substitute(values)
  except KeyError as e:
    if e.args[0] == 'WORKER_COUNT':
      cloudcmd.fail(f'--spec {spec_path} has a pool of WORKER_COUNT workers; '
                    'give --workers N')
    cloudcmd.fail(f'--spec {spec_path} has an unknown placeholder ({e}); '
                  'use IMAGE_URI, OUTPUT_DIR, TRAINER_ARGS and WORKER_COUNT')
  except ValueError as e:
    cloudcmd.fail(f'--spec {spec_path} has an unknown placeholder ({e}); '
                  'use IMAGE_URI, OUTPUT_DIR, TRAINER_ARGS and WORKER_COUNT')


def pools(spec):
  """[(replicas, GPUs each)] of the spec's worker pools, in order (pool 0
  the chief, 1 workers, 2 parameter servers, 3 an evaluator)."""
  found = re.search(r'^( *)workerPoolSpecs:\s*$', spec, re.MULTILINE)
  if not found:
    cloudcmd.fail('the spec has no workerPoolSpecs; start from '
                  'configs/vertex/gpu.yaml')
  key_indent, items = len(found.group(1)), []
  for line in spec[found.end():].splitlines()[1:]:
    text = line.strip()
    if not text or text.startswith('#'):
      continue
    indent = len(line) - len(line.lstrip())
    if indent <= key_indent and not text.startswith('-'):
      break
    if text.startswith('-') and (not items or indent == items[0][0]):
      items.append((indent, []))
    if items:
      items[-1][1].append(text)
  return [_pool(' '.join(lines)) for _, lines in items]


def _pool(text):
  def count(field):
    found = re.search(rf'\b{field}:\s*(\d+)', text)
    return int(found.group(1)) if found else None
  replicas = count('replicaCount')
  if replicas is None:  # an empty pool ({}) keeps the place of pool 1 or 2
    replicas = 1 if 'machineSpec' in text else 0
  return replicas, count('acceleratorCount') or 0


def synchronous_replicas(found_pools):
  """Replicas that train in step: the chief and workers of a job without
  parameter servers; 0 where they train asynchronously."""
  if len(found_pools) > 2 and found_pools[2][0]:
    return 0
  return sum(replicas for replicas, _ in found_pools[:2])


def with_restart(spec, restart, tuning):
  """spec with scheduling.restartJobOnWorkerRestart set to restart."""
  value = 'true' if restart else 'false'
  key = re.compile(r'^( *restartJobOnWorkerRestart:).*$', re.MULTILINE)
  if key.search(spec):
    return key.sub(rf'\1 {value}', spec)
  if not restart:
    return spec
  indent = '  ' if tuning else ''
  scheduling = re.search(rf'^{indent}scheduling:\s*$', spec, re.MULTILINE)
  if scheduling:
    at = scheduling.end() + 1
    return f'{spec[:at]}{indent}  restartJobOnWorkerRestart: true\n{spec[at:]}'
  block = f'{indent}scheduling:\n{indent}  restartJobOnWorkerRestart: true\n'
  if tuning:
    at = re.search(r'^trialJobSpec:\s*$', spec, re.MULTILINE).end() + 1
    return spec[:at] + block + spec[at:]
  return spec.rstrip('\n') + '\n' + block


def validate(trainer_args, found_pools, output_dir):
  """The trainer's own checks of trainer_args for these pools, offline;
  stops the script with the trainer's one line if it refuses them."""
  spec = {'cluster': {f'workerpool{i}': [f'workerpool{i}-{r}:2222'
                                         for r in range(replicas)]
                      for i, (replicas, _) in enumerate(found_pools)
                      if replicas},
          'task': {'type': 'workerpool0', 'index': 0}}
  env = {k: v for k, v in os.environ.items() if k != 'TF_CONFIG'}
  env.update(CLUSTER_SPEC=json.dumps(spec), PYTHONPATH=cloudcmd.ROOT,
             AIP_CHECKPOINT_DIR=f'{output_dir}/checkpoints',
             AIP_MODEL_DIR=f'{output_dir}/model')
  venv = os.path.join(cloudcmd.ROOT, '.venv', 'bin', 'python')
  python = venv if os.path.exists(venv) else sys.executable
  for gpus in sorted({gpus for _, gpus in found_pools[:2]}):
    result = subprocess.run(
        [python, '-m', 'trainer.task', *trainer_args, '--validate_only',
         '--validate_gpus', str(gpus)], env=env, capture_output=True,
        text=True, check=False)
    if result.returncode == 0:
      continue
    if 'No module named' in result.stderr:
      cloudcmd.fail('checking the trainer flags before submitting needs the '
                    "trainer's .venv; make it with scripts/train_local.sh "
                    '--help and rerun')
    line = (result.stderr.strip().splitlines() or ['no output'])[-1]
    sys.exit(f'{line} (for this job: {describe(found_pools)}; nothing was '
             'submitted)')


def describe(found_pools):
  names = ('chief', 'workers', 'parameter servers', 'evaluator')
  return ', '.join(f'{replicas} {name} ({gpus} GPU{"s" * (gpus != 1)})'
                   for name, (replicas, gpus) in zip(names, found_pools)
                   if replicas)


def main():
  p = cloudcmd.parser(__doc__)
  cloudcmd.add_job_flags(p)
  p.add_argument('--image-uri', help='training image (default: $IMAGE_URI; '
                 'see scripts/build_image.py)')
  p.add_argument('--tuning', action='store_true',
                 help='a hyperparameter tuning job (configs/vertex/'
                 'tuning.yaml) instead of one training run')
  p.add_argument('--workers', type=int,
                 help='a synchronous multi-worker job: the chief and this '
                 'many workers, one GPU each (configs/vertex/multi-worker.yaml)')
  p.add_argument('--spec', help='the job spec template (default: '
                 'configs/vertex/gpu.yaml, tuning.yaml with --tuning, '
                 'multi-worker.yaml with --workers)')
  p.add_argument('--spec-out', help='where to keep the filled-in spec that '
                 'gcloud reads (default: jobs/<job name>.yaml)')
  p.add_argument('--restart-job-on-worker-restart',
                 action=argparse.BooleanOptionalAction, default=True,
                 help='for several synchronous replicas: Vertex AI restarts '
                 'every replica when one restarts, and the job resumes from '
                 'its newest checkpoint (default: on)')
  args = p.parse_args()
  bucket = cloudcmd.bucket(args.bucket)
  region = cloudcmd.setting(args.region, '--region', 'REGION', 'us-central1')
  image = cloudcmd.image_uri(args.image_uri)
  name = cloudcmd.job_name(args.job_name)
  if args.workers is not None and (args.workers < 1 or args.tuning):
    cloudcmd.fail(f'--workers {args.workers}: give 1 or more workers, and '
                  'not with --tuning (its spec names its own pools)')
  default = ('tuning.yaml' if args.tuning else
             'multi-worker.yaml' if args.workers else 'gpu.yaml')
  spec = args.spec or os.path.join(SPECS, default)
  if not os.path.isfile(spec):
    cloudcmd.fail(f'--spec {spec} does not exist; give a YAML template such '
                  'as configs/vertex/gpu.yaml')
  output_dir = f'gs://{bucket}/jobs/{name}'
  rendered = render(spec, image, output_dir, args.trainer_args, args.workers)
  found_pools = pools(rendered)
  validate(args.trainer_args, found_pools, output_dir)
  in_step = synchronous_replicas(found_pools)
  if in_step > 1:
    restart = args.restart_job_on_worker_restart
    rendered = with_restart(rendered, restart, args.tuning)
    print(f'# {in_step} replicas train in step: restartJobOnWorkerRestart: '
          f'{str(restart).lower()} ' + (
              '(Vertex AI restarts every replica when one restarts)' if restart
              else '(a lost replica ends the job; a rerun resumes it)'))
  cloudcmd.tool('gcloud', args.dry_run, cloudcmd.GCLOUD_HINT)
  kind = 'hp-tuning-jobs' if args.tuning else 'custom-jobs'
  config = os.path.abspath(args.spec_out or os.path.join(
      cloudcmd.ROOT, 'jobs', f'{name}.yaml'))
  os.makedirs(os.path.dirname(config), exist_ok=True)
  with open(config, 'w') as f:
    f.write(rendered)
  print(f'# {config}:\n{rendered}' if args.dry_run else f'# {config}',
        end='' if args.dry_run else '\n')
  cmd = ['gcloud', 'ai', kind, 'create', '--region', region,
         '--display-name', name, '--config', config]
  if args.tuning:
    cmd += trial_counts(rendered)
  cloudcmd.run(cmd, args.dry_run)


def trial_counts(spec):
  """--max-trial-count and --parallel-trial-count from the spec's own.

  gcloud ai hp-tuning-jobs create takes both from its flags, which default
  to 1, so the study's counts are passed as flags too.
  """
  flags = []
  for field, flag in (('maxTrialCount', '--max-trial-count'),
                      ('parallelTrialCount', '--parallel-trial-count')):
    found = re.search(rf'^{field}:\s*(\d+)\s*$', spec, re.MULTILINE)
    if not found:
      cloudcmd.fail(f'the tuning spec has no top-level {field}: N; add it')
    flags += [flag, found.group(1)]
  return flags


if __name__ == '__main__':
  main()
