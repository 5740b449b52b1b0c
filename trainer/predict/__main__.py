"""`python -m trainer.predict`: see trainer/predict/command.py."""

from trainer import cli

cli.quiet_unless_verbose([])

# pylint: disable=g-import-not-at-top,wrong-import-position
from trainer.predict import command

command.main()
