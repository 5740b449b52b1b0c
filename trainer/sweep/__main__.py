"""`python -m trainer.sweep`: see trainer/sweep/command.py."""

import sys

from trainer import cli

cli.quiet_unless_verbose([])  # the sweep's errors are one line too

# pylint: disable=g-import-not-at-top,wrong-import-position
from trainer.sweep import command

sys.exit(command.main())
