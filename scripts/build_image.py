#!/usr/bin/env python3
"""Builds the training image from the Dockerfile and pushes it.

  scripts/build_image.py [--image-uri URI] [--cloud-build] [--dry-run]

URI (default: $IMAGE_URI) names an Artifact Registry image, e.g.
us-central1-docker.pkg.dev/PROJECT/REPOSITORY/mnist-trainer:v1. Local
Docker builds and pushes it (once: gcloud auth configure-docker
us-central1-docker.pkg.dev); --cloud-build has Cloud Build do both instead.
"""

import cloudcmd


def commands(args):
  image = cloudcmd.image_uri(args.image_uri)
  if args.cloud_build:
    return [['gcloud', 'builds', 'submit', '--tag', image, cloudcmd.ROOT]]
  return [['docker', 'build', '--tag', image, cloudcmd.ROOT],
          ['docker', 'push', image]]


def main():
  p = cloudcmd.parser(__doc__)
  p.add_argument('--image-uri', help='image to build (default: $IMAGE_URI)')
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
