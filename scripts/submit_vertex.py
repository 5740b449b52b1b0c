#!/usr/bin/env python3
"""Runs the training image as a Vertex AI custom job or tuning job.

  scripts/submit_vertex.py --bucket B --region R --image-uri URI
      [--job-name N] [--tuning | --workers W] [--spec FILE] [--spec-out FILE]
      [--dry-run] [-- TRAINER_ARGS]

Fills in configs/vertex/gpu.yaml (tuning.yaml with --tuning; with --workers
W, multi-worker.yaml: a chief and W workers, one GPU each, training in
sync) with the image, gs://B/jobs/N as the base output directory and
TRAINER_ARGS, then
runs `gcloud ai custom-jobs create` (or `gcloud ai hp-tuning-jobs create`)
with it. The filled-in spec stays in jobs/<job name>.yaml (or --spec-out),
so the printed command works when pasted, --dry-run included.
The trainer writes to $AIP_CHECKPOINT_DIR and copies the best SavedModel to
$AIP_MODEL_DIR, both under gs://B/jobs/N/ (per trial: gs://B/jobs/N/<id>/).
"""

import json
import os
import re
import string

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
  rendered = render(spec, image, f'gs://{bucket}/jobs/{name}',
                    args.trainer_args, args.workers)
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
