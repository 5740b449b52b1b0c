#!/usr/bin/env python3
"""Submits a training job to (legacy) AI Platform Training.

  scripts/submit_ai_platform.py --bucket B --region R [--job-name N]
      [--config config.yaml] [--image-uri URI] [--stream-logs] [--dry-run]
      [-- TRAINER_ARGS]

With --image-uri (default: $IMAGE_URI), the job runs that container (an
image from scripts/build_image.py) with the machines and tuning study of
--config. Without one, gcloud builds this package from trainer/ (python
setup.py sdist) for a runtime version; but AI Platform's newest runtime,
2.11, has Python 3.7 and TensorFlow 2.11, which cannot install a package
that needs Python 3.9-3.11 and TensorFlow 2.15, so that is refused before
anything is submitted. The service stopped taking jobs on 2025-01-31;
Vertex AI (scripts/submit_vertex.py) is its successor.
"""

import os

import cloudcmd

# What the package needs (setup.py): Python 3.9-3.11 with TensorFlow 2.15.
PYTHONS = ('3.9', '3.10', '3.11')
TENSORFLOW = (2, 15)


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
  image = args.image_uri or os.environ.get('IMAGE_URI')
  if image:
    cmd += ['--master-image-uri', image]
  else:
    _check_runtime(args.runtime_version, args.python_version)
    cmd += ['--package-path', os.path.join(cloudcmd.ROOT, 'trainer'),
            '--module-name', 'trainer.task',
            '--runtime-version', args.runtime_version,
            '--python-version', args.python_version]
  if args.stream_logs:
    cmd.append('--stream-logs')
  return cmd + ['--'] + args.trainer_args


def _check_runtime(runtime, python):
  """Refuses a runtime that cannot install the package: the job would fail."""
  try:
    version = tuple(int(part) for part in runtime.split('.')[:2])
  except ValueError:
    version = ()
  if python not in PYTHONS or version != TENSORFLOW:
    cloudcmd.fail(
        f'runtime {runtime} with Python {python} cannot install this package '
        '(it needs TensorFlow 2.15 on Python 3.9-3.11); pass --image-uri or '
        'set IMAGE_URI to an image from scripts/build_image.py')


def main():
  p = cloudcmd.parser(__doc__)
  cloudcmd.add_job_flags(p)
  p.add_argument('--config', default=os.path.join(cloudcmd.ROOT,
                                                  'config.yaml'),
                 help='trainingInput YAML (default: config.yaml, GPU + '
                 'tuning; variants in configs/ai-platform/)')
  p.add_argument('--image-uri', help='run this container image (default: '
                 '$IMAGE_URI; see scripts/build_image.py) instead of the '
                 'package')
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
