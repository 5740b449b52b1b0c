"""`python -m trainer.plots` is now `python -m trainer.sweep.plots`.

Kept so that the old command still works. It names the new one after it
succeeds, or inside its one-line error: an error stays one line.
"""

import sys

from trainer import cli

MOVED = 'python -m trainer.plots is now python -m trainer.sweep.plots'


def main(argv=None):
  # pylint: disable=g-import-not-at-top
  from trainer.sweep import plots
  try:
    plots.main(argv)
  except SystemExit as e:
    if isinstance(e.code, str):  # cli.fail's one line
      cli.fail(f'{e.code} (note: {MOVED})')
    raise
  print(f'note: {MOVED}', file=sys.stderr)


if __name__ == '__main__':
  cli.quiet_unless_verbose([])
  main()
