"""Each setting is declared once, as a Config field (trainer/config.py)."""

import dataclasses
import glob
import os
import re

from trainer import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_field_declares_a_kind_and_its_help():
  for field in dataclasses.fields(config_lib.Config):
    assert field.metadata['kind'] in config_lib.KINDS, field.name
    assert field.metadata['help'].strip(), field.name
  kinds = [config_lib.names_of(kind) for kind in config_lib.KINDS]
  names = [name for group in kinds for name in group]
  assert sorted(names) == sorted(
      f.name for f in dataclasses.fields(config_lib.Config))


def test_every_flag_has_a_row_in_a_flags_table_of_the_docs():
  """A new flag takes its Config field and a row in the docs' flags table."""
  rows = ''
  for path in [os.path.join(ROOT, 'README.md'),
               *glob.glob(os.path.join(ROOT, 'docs', '*.md'))]:
    with open(path) as f:
      rows += ''.join(line for line in f if line.startswith('| `--'))
  documented = set(re.findall(r'`--(?:\[no\])?([a-z][a-z-]*)`', rows))
  flags = {f.name.replace('_', '-') for f in config_lib.flag_fields()}
  assert not flags - documented, 'add a row to the flags table'
