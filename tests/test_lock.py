"""The lock (requirements*.txt) is what scripts/lock.sh makes of the inputs.

A changed requirements*.in or setup.py without a refreshed lock fails here.
uv keeps the versions a lock already holds, so a new release on PyPI does
not; it needs the package index, as CI has.
"""

import os
import shutil
import sys

from tests.support import rehearsal

LOCK_INPUTS = ('requirements.in', 'requirements-test.in', 'setup.py',
               'scripts/lock.sh', 'trainer/__init__.py')
LOCKS = ('requirements.txt', 'requirements-test.txt')


def test_the_lock_is_fresh(tmp_path):
  for name in LOCK_INPUTS + LOCKS:
    os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
    shutil.copy(os.path.join(rehearsal.ROOT, name), tmp_path / name)
  uv = shutil.which('uv', path=os.path.dirname(sys.executable))
  rehearsal.run(['bash', str(tmp_path / 'scripts' / 'lock.sh')],
                env=dict(os.environ, UV=uv), timeout=300)
  for name in LOCKS:
    with open(os.path.join(rehearsal.ROOT, name)) as f:
      assert (tmp_path / name).read_text() == f.read(), (
          f'{name} is stale: run scripts/lock.sh and commit the result')
