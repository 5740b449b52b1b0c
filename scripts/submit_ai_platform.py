#!/usr/bin/env python3
"""Submits a training job to (legacy) AI Platform Training.

  scripts/submit_ai_platform.py --bucket B --region R [--job-name N]
      [--config config.yaml] [--image-uri URI] [--stream-logs] [--dry-run]
      [-- TRAINER_ARGS]

gcloud builds this package from trainer/ (python setup.py sdist) and runs
`python -m trainer.task TRAINER_ARGS --job-dir gs://B/jobs/N` with the
machines and tuning study of --config. AI Platform's newest runtime, 2.11,
has Python 3.7 and TensorFlow 2.11, and this package needs Python 3.9+ with
TensorFlow 2.15: pass --image-uri (an image from scripts/build_image.py) to
run in that container instead. The service stopped taking jobs on
2025-01-31; Vertex AI (scripts/submit_vertex.py) is its successor.
"""

import os

import cloudcmd


def command(args):
  """The gcloud command line for args."""
  bucket = cloudcmd.bucket(args.bucket)
  region = cloudcmd.setting(args.region, '--region', 'REGION', 'us-central1')
  name = cloudcmd.job_name(args.job_name)
  config = os.path.abspath(args.config)
  if not os.path.isfile(config):
    cloudcmd.fail(f'--config {args.config} does not exist; give a YAML file '
                  'such as config.yaml or configs/ai-platform/gpu.yaml')
  cmd = ['gcloud', 'ai-platform', 'jobs', 'submit', 'training', name,
         '--region', region, '--config', config,
         '--job-dir', f'gs://{bucket}/jobs/{name}']
  if args.image_uri:
    cmd += ['--master-image-uri', args.image_uri]
  else:
    cmd += ['--package-path', os.path.join(cloudcmd.ROOT, 'trainer'),
            '--module-name', 'trainer.task',
            '--runtime-version', args.runtime_version,
            '--python-version', args.python_version]
  if args.stream_logs:
    cmd.append('--stream-logs')
  return cmd + ['--'] + args.trainer_args


def main():
  p = cloudcmd.parser(__doc__)
  cloudcmd.add_job_flags(p)
  p.add_argument('--config', default=os.path.join(cloudcmd.ROOT,
                                                  'config.yaml'),
                 help='trainingInput YAML (default: config.yaml, GPU + '
                 'tuning; variants in configs/ai-platform/)')
  p.add_argument('--image-uri', help='run this container image (see '
                 'scripts/build_image.py) instead of the package')
  p.add_argument('--runtime-version', default='2.11',
                 help='AI Platform runtime for the package (default 2.11)')
  p.add_argument('--python-version', default='3.7',
                 help='Python of that runtime (default 3.7)')
  p.add_argument('--stream-logs', action='store_true',
                 help='wait for the job and show its logs')
  args = p.parse_args()
  cmd = command(args)
  cloudcmd.tool('gcloud', args.dry_run, cloudcmd.GCLOUD_HINT)
  cloudcmd.run(cmd, args.dry_run)


if __name__ == '__main__':
  main()
