"""`python -m trainer.plots` is now `python -m trainer.sweep.plots`.

Kept so that the old command still works; it says the new name first.
"""

import sys

from trainer import cli

if __name__ == '__main__':
  cli.quiet_unless_verbose([])
  print('note: python -m trainer.plots is now python -m trainer.sweep.plots',
        file=sys.stderr)
  # pylint: disable=g-import-not-at-top
  from trainer.sweep import plots
  plots.main()
