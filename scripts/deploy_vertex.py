#!/usr/bin/env python3
"""Deploys a trained model to a Vertex AI endpoint.

  scripts/deploy_vertex.py --region R
      (--job NAME [--bucket B] [--trial ID] | --job-dir DIR | --model-dir DIR)
      [--name N] [--container prebuilt|serving] [--image-uri URI]
      [--endpoint ID] [--spec FILE] [--machine-type M] [--min-replicas N]
      [--max-replicas N] [--spec-out FILE] [--dry-run]

The model: --job, a Vertex AI job of scripts/submit_vertex.py, whose best
SavedModel the trainer copied to gs://B/jobs/NAME[/ID]/model (AIP_MODEL_DIR);
--job-dir, the newest export/best/<timestamp> of a job dir (found with
gcloud storage ls, which runs even with --dry-run: it only reads); or
--model-dir, a SavedModel folder.
It uploads the model to the Model Registry, creates an endpoint (or reuses
--endpoint), deploys the model there with configs/vertex/deploy.yaml's
machine and replicas (or --spec's; flags override them), then prints the
predict command and the undeploy and delete commands. The IDs are chosen
here, so every printed command works when pasted, --dry-run included; the
deployment (IDs, container, machine, commands) stays in
jobs/<name>-deploy.json (or --spec-out).

The container: Vertex AI's prebuilt TensorFlow 2.15 one until its end of
availability (2027-01-14), the project's serving image (Dockerfile.serving,
scripts/build_image.py --serving) after that date or with --container
serving. A prebuilt container past its date is refused.
"""

import argparse
import datetime
import json
import os
import re
import shlex
import time

import cloudcmd

SPEC = os.path.join(cloudcmd.ROOT, 'configs', 'vertex', 'deploy.yaml')
# Vertex AI's newest prebuilt TensorFlow prediction containers and their end
# of availability (Vertex AI docs, "Prebuilt containers for prediction").
PREBUILT = {'cpu': 'tf2-cpu.2-15', 'gpu': 'tf2-gpu.2-15'}
PREBUILT_UNTIL = datetime.date(2027, 1, 14)
# spec key -> (flag, type)
SPEC_KEYS = {'machineType': ('--machine-type', str),
             'minReplicaCount': ('--min-replicas', int),
             'maxReplicaCount': ('--max-replicas', int),
             'acceleratorType': ('--accelerator-type', str),
             'acceleratorCount': ('--accelerator-count', int)}
_ID = re.compile(r'^[a-z][a-z0-9-]{0,61}[a-z0-9]$')


def parse_args():
  p = cloudcmd.parser(__doc__)
  p.add_argument('--region', help='region (default: $REGION), e.g. '
                 'us-central1')
  source = p.add_mutually_exclusive_group()
  source.add_argument('--job', help='a Vertex AI job of submit_vertex.py: '
                      'deploys gs://BUCKET/jobs/JOB[/TRIAL]/model')
  source.add_argument('--job-dir', help='a job dir: deploys its newest '
                      'export/best/<timestamp>')
  source.add_argument('--model-dir', help='a SavedModel folder on gs://')
  p.add_argument('--bucket', help='with --job: its bucket (default: $BUCKET)')
  p.add_argument('--trial', help='with --job: the tuning trial to deploy')
  p.add_argument('--name', help='display name of the model, endpoint and '
                 'deployment, and the model\'s ID (default: the job name, '
                 'else mnist-<time>)')
  p.add_argument('--container', choices=('prebuilt', 'serving'),
                 help='prebuilt TF 2.15 (default until 2027-01-14) or the '
                 'serving image (default after)')
  p.add_argument('--image-uri', help='the serving image (default: '
                 '$SERVING_IMAGE_URI)')
  p.add_argument('--endpoint', help='deploy to this existing endpoint ID '
                 'instead of creating one')
  p.add_argument('--spec', default=SPEC, help='machine and replicas (default: '
                 'configs/vertex/deploy.yaml)')
  for key, (flag, kind) in SPEC_KEYS.items():
    p.add_argument(flag, type=kind, help=f'overrides the spec\'s {key}')
  p.add_argument('--spec-out', help='where to keep the deployment '
                 '(default: jobs/<name>-deploy.json)')
  p.add_argument('--today', type=datetime.date.fromisoformat,
                 default=datetime.date.today(), help=argparse.SUPPRESS)
  return p.parse_args()


def read_spec(path):
  """The spec's `key: value` lines (YAML this flat needs no parser)."""
  if not os.path.isfile(path):
    cloudcmd.fail(f'--spec {path} does not exist; give a file like '
                  'configs/vertex/deploy.yaml')
  spec = {}
  with open(path) as f:
    for number, line in enumerate(f, 1):
      line = line.split('#', 1)[0].strip()
      if not line:
        continue
      key, _, value = line.partition(':')
      if key not in SPEC_KEYS or not value.strip():
        cloudcmd.fail(f'--spec {path} line {number}: {line!r} is not one of '
                      f'{", ".join(SPEC_KEYS)} with a value')
      kind = SPEC_KEYS[key][1]
      try:
        spec[key] = kind(value.strip())
      except ValueError:
        cloudcmd.fail(f'--spec {path} line {number}: {key} must be a number')
  return spec


def machine(args):
  """The spec with the flags that were given laid over it."""
  spec = read_spec(args.spec)
  for key, (flag, _) in SPEC_KEYS.items():
    value = getattr(args, flag[2:].replace('-', '_'))
    if value is not None:
      spec[key] = value
  if 'machineType' not in spec:
    cloudcmd.fail(f'no machine type: add machineType to {args.spec} or pass '
                  '--machine-type n1-standard-2')
  low, high = spec.get('minReplicaCount', 1), spec.get('maxReplicaCount', 1)
  if not 1 <= low <= high:
    cloudcmd.fail(f'replicas {low}..{high}: give 1 <= --min-replicas <= '
                  '--max-replicas')
  return spec


def model_source(args):
  """(gs:// SavedModel folder, default name) from --job / --job-dir /
  --model-dir."""
  if args.job:
    bucket = cloudcmd.bucket(args.bucket)
    name = cloudcmd.job_name(args.job)
    trial = f'/{args.trial}' if args.trial else ''
    return f'gs://{bucket}/jobs/{name}{trial}/model', name
  if args.job_dir:
    return newest_best_export(args.job_dir), None
  if args.model_dir:
    if not args.model_dir.startswith('gs://'):
      cloudcmd.fail(f'--model-dir {args.model_dir}: Vertex AI reads models '
                    'from Cloud Storage; copy it to gs://... first (gcloud '
                    'storage cp -r)')
    return args.model_dir.rstrip('/'), None
  cloudcmd.fail('no model given: pass --job NAME, --job-dir gs://... or '
                '--model-dir gs://...')


def newest_best_export(job_dir):
  """export/best/<newest timestamp> of a job dir, by gcloud storage ls
  (which only reads, so it runs with --dry-run too)."""
  if not job_dir.startswith('gs://'):
    cloudcmd.fail(f'--job-dir {job_dir}: Vertex AI reads models from Cloud '
                  'Storage; give the gs:// job dir')
  cloudcmd.tool('gcloud', False, cloudcmd.GCLOUD_HINT)
  folder = f'{job_dir.rstrip("/")}/export/best/'
  listing = cloudcmd.output(['gcloud', 'storage', 'ls', folder])
  stamps = sorted(line.rstrip('/').rsplit('/', 1)[-1]
                  for line in listing.splitlines()
                  if line.rstrip('/').rsplit('/', 1)[-1].isdigit())
  if not stamps:
    cloudcmd.fail(f'{folder} holds no <timestamp>/ SavedModel; give the job '
                  'dir of a finished run, or --model-dir')
  return folder + stamps[-1]


def container(args, spec):
  """The image the model is served by, or a one-line refusal."""
  kind = args.container or (
      'prebuilt' if args.today <= PREBUILT_UNTIL else 'serving')
  if kind == 'serving':
    return cloudcmd.serving_image_uri(args.image_uri)
  name = PREBUILT['gpu' if spec.get('acceleratorType') else 'cpu']
  if args.today > PREBUILT_UNTIL:
    cloudcmd.fail(f'the prebuilt container {name} reached its end of '
                  f'availability on {PREBUILT_UNTIL}; serve the project\'s '
                  'image instead: --container serving --image-uri URI '
                  '(scripts/build_image.py --serving builds it)')
  if args.image_uri:
    cloudcmd.fail('--image-uri is the serving image: add --container serving '
                  '(the prebuilt container needs no image)')
  region = cloudcmd.setting(args.region, '--region', 'REGION', 'us-central1')
  registry = {'europe': 'europe', 'asia': 'asia'}.get(
      region.split('-')[0], 'us')
  return f'{registry}-docker.pkg.dev/vertex-ai/prediction/{name}:latest'


def resource_id(name):
  """A model ID: lowercase letters, digits and hyphens."""
  found = re.sub(r'[^a-z0-9-]+', '-', name.lower()).strip('-')
  if not _ID.match(found):
    cloudcmd.fail(f'--name {name} makes no Vertex AI ID: start with a letter '
                  '(letters, digits and hyphens, 63 at most)')
  return found


def commands(region, ids, artifact, image, spec, reuse_endpoint):
  """(commands to run, commands to print): upload, endpoint, deploy; then
  predict, undeploy, delete."""
  model_id, endpoint, deployed = ids['model'], ids['endpoint'], ids['deployed']
  where = ['--region', region]
  run = [['gcloud', 'ai', 'models', 'upload', *where, '--display-name',
          ids['name'], '--model-id', model_id, '--artifact-uri', artifact,
          '--container-image-uri', image]]
  if not reuse_endpoint:
    run.append(['gcloud', 'ai', 'endpoints', 'create', *where,
                '--display-name', ids['name'], '--endpoint-id', endpoint])
  deploy = ['gcloud', 'ai', 'endpoints', 'deploy-model', endpoint, *where,
            '--model', model_id, '--display-name', ids['name'],
            '--deployed-model-id', deployed, '--machine-type',
            spec['machineType'],
            '--min-replica-count', str(spec.get('minReplicaCount', 1)),
            '--max-replica-count', str(spec.get('maxReplicaCount', 1)),
            '--traffic-split', '0=100']
  if spec.get('acceleratorType'):
    deploy += ['--accelerator', f'type={spec["acceleratorType"]},count='
               f'{spec.get("acceleratorCount", 1)}']
  run.append(deploy)
  later = {
      'predict': ['gcloud', 'ai', 'endpoints', 'predict', endpoint, *where,
                  '--json-request', 'request.json'],
      'undeploy': ['gcloud', 'ai', 'endpoints', 'undeploy-model', endpoint,
                   *where, '--deployed-model-id', deployed],
      'delete': [['gcloud', 'ai', 'endpoints', 'delete', endpoint, *where,
                  '--quiet'],
                 ['gcloud', 'ai', 'models', 'delete', model_id, *where,
                  '--quiet']],
  }
  if reuse_endpoint:  # the endpoint was there before: keep it
    later['delete'] = later['delete'][1:]
  return run, later


def main():
  args = parse_args()
  region = cloudcmd.setting(args.region, '--region', 'REGION', 'us-central1')
  spec = machine(args)
  image = container(args, spec)
  cloudcmd.tool('gcloud', args.dry_run, cloudcmd.GCLOUD_HINT)
  artifact, job = model_source(args)
  name = resource_id(args.name or job or time.strftime('mnist-%Y%m%d-%H%M%S'))
  now = int(time.time())
  # A new endpoint gets 9 digits (no leading 0), a deployed model 1-10
  # digits: IDs every project may choose.
  ids = {'name': name, 'model': name,
         'endpoint': args.endpoint or str(10**8 + now % (9 * 10**8)),
         'deployed': str(now % 10**10)}
  run, later = commands(region, ids, artifact, image, spec,
                        bool(args.endpoint))
  record = os.path.abspath(args.spec_out or os.path.join(
      cloudcmd.ROOT, 'jobs', f'{name}-deploy.json'))
  os.makedirs(os.path.dirname(record), exist_ok=True)
  with open(record, 'w') as f:
    json.dump({'region': region, 'artifact_uri': artifact, 'image': image,
               'ids': ids, 'machine': spec,
               'commands': [shlex.join(c) for c in run],
               'predict': shlex.join(later['predict']),
               'undeploy': shlex.join(later['undeploy']),
               'delete': [shlex.join(c) for c in later['delete']]}, f,
              indent=2)
  print(f'# {record}')
  for command in run:
    cloudcmd.run(command, args.dry_run)
  print('# predict (a request body: scripts/make_request.py --data-dir DIR '
        '-o request.json):')
  print(shlex.join(later['predict']))
  print('# stop paying for the machines: undeploy, then delete:')
  print(shlex.join(later['undeploy']))
  for command in later['delete']:
    print(shlex.join(command))


if __name__ == '__main__':
  main()
