#!/usr/bin/env python3
"""Builds the training image (Dockerfile) or the serving image and pushes it.

  scripts/build_image.py [--serving] [--image-uri URI] [--cloud-build]
      [--dry-run]

URI (default: $IMAGE_URI, or $SERVING_IMAGE_URI with --serving) names an
Artifact Registry image, e.g.
us-central1-docker.pkg.dev/PROJECT/REPOSITORY/mnist-trainer:v1. With
--serving it builds Dockerfile.serving, the model server on current
TensorFlow (docs/serving.md). Local Docker builds and pushes it (once:
gcloud auth configure-docker us-central1-docker.pkg.dev); --cloud-build has
Cloud Build do both instead.
"""

import os

import cloudcmd

SERVING_DOCKERFILE = 'Dockerfile.serving'


def commands(args):
  if args.serving:
    image = cloudcmd.serving_image_uri(args.image_uri)
    dockerfile = os.path.join(cloudcmd.ROOT, SERVING_DOCKERFILE)
  else:
    image = cloudcmd.image_uri(args.image_uri)
    dockerfile = None
  if args.cloud_build:
    if dockerfile:  # gcloud builds submit --tag reads only ./Dockerfile
      return [['gcloud', 'builds', 'submit', '--config',
               os.path.join(cloudcmd.ROOT, 'configs', 'cloudbuild-serving.yaml'),
               '--substitutions', f'_IMAGE_URI={image}', cloudcmd.ROOT]]
    return [['gcloud', 'builds', 'submit', '--tag', image, cloudcmd.ROOT]]
  build = ['docker', 'build', '--tag', image]
  if dockerfile:
    build += ['--file', dockerfile]
  return [build + [cloudcmd.ROOT], ['docker', 'push', image]]


def main():
  p = cloudcmd.parser(__doc__)
  p.add_argument('--image-uri', help='image to build (default: $IMAGE_URI, '
                 'or $SERVING_IMAGE_URI with --serving)')
  p.add_argument('--serving', action='store_true',
                 help=f'build {SERVING_DOCKERFILE}, the serving image, not '
                 'the training image')
  p.add_argument('--cloud-build', action='store_true',
                 help='build and push with Cloud Build, not local Docker')
  args = p.parse_args()
  cmds = commands(args)
  if args.cloud_build:
    cloudcmd.tool('gcloud', args.dry_run, cloudcmd.GCLOUD_HINT)
  else:
    cloudcmd.tool('docker', args.dry_run,
                  'install Docker or pass --cloud-build')
  for cmd in cmds:
    cloudcmd.run(cmd, args.dry_run)


if __name__ == '__main__':
  main()
