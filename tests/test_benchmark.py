"""scripts/benchmark.py runs end to end (two parts, a few steps) and reports.

Speed is never asserted: this only keeps the benchmark from rotting.
"""

import json
import os
import sys

from tests.support import processes


def test_two_parts_and_their_ratio(mnist_dir):
  result = processes.run(
      [sys.executable, os.path.join(processes.ROOT, 'scripts', 'benchmark.py'),
       '--data-dir', mnist_dir, '--parts', 'bare,custom', '--batch-sizes', '32',
       '--steps', '20', '--steps-per-run', '5'], timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in result.stdout.splitlines()]
  speeds = {row['part']: row for row in rows if 'examples_per_sec' in row}
  assert set(speeds) == {'bare', 'custom'}
  assert all(row['examples_per_sec'] > 0 for row in speeds.values())
  assert speeds['custom']['steps_per_run'] == 5
  ratio, = [row for row in rows if 'ratio' in row]
  assert ratio['part'] == 'custom/bare' and ratio['ratio'] > 0
  table = result.stderr[result.stderr.index('] done in'):]
  assert 'bare' in table and 'custom' in table
