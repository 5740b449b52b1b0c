"""scripts/benchmark.py runs end to end (two parts, a few steps) and reports.

Speed is never asserted: this only keeps the benchmark from rotting.
"""

import json
import os
import sys

import pytest

from tests.support import processes

pytestmark = pytest.mark.slow  # times training parts in processes


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


def _rows(mnist_dir, parts):
  """{part: its JSON row} of `parts` at batch 32, 20 steps."""
  result = processes.run(
      [sys.executable, os.path.join(processes.ROOT, 'scripts', 'benchmark.py'),
       '--data-dir', mnist_dir, '--parts', parts, '--batch-sizes', '32',
       '--steps', '20'], timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return {row['part']: row for row in map(json.loads,
                                          result.stdout.splitlines())}


def test_scale_out_parts(mnist_dir):
  """2 logical CPU devices and 2 workers on loopback, a few steps each."""
  rows = _rows(mnist_dir, 'devices_2,workers_2')
  assert rows['devices_2']['examples_per_sec'] > 0
  assert rows['workers_2']['strategy'] == 'multiworker'
  assert rows['workers_2']['replicas'] == 2


def test_step_cost_and_input_parts(mnist_dir):
  """One near-empty Session.run in ms; the input pipeline alone."""
  rows = _rows(mnist_dir, 'session_run,input,input_dropout')
  assert rows['session_run']['ms_per_run'] > 0
  assert rows['input']['examples_per_sec'] > 0
  assert rows['input_dropout']['examples_per_sec'] > 0
  # The custom model's K, with or without dropout.
  assert rows['input']['steps_per_run'] == 160
  assert rows['input_dropout']['steps_per_run'] == 160


def test_bare_loop_with_the_trainers_masks(mnist_dir):
  """bare_dropout: the bare loop with trainer.dropout's masks."""
  rows = _rows(mnist_dir, 'bare_dropout')
  assert rows['bare_dropout']['examples_per_sec'] > 0


def test_dropout_cost_in_the_trainers_graph(mnist_dir):
  """dropout_cost.py: every variant in rounds, each against none."""
  result = processes.run(
      [sys.executable, os.path.join(processes.ROOT, 'scripts',
                                    'dropout_cost.py'),
       '--data-dir', mnist_dir, '--batch-size', '32', '--steps-per-run', '3',
       '--rounds', '2', '--runs', '2'], timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = {row['variant']: row for row in map(json.loads,
                                             result.stdout.splitlines())}
  assert list(rows) == ['none', 'trainer', 'no_pixels', 'fixed_masks']
  assert rows['none']['speed_over_none'] == 1
  for row in rows.values():
    assert row['steps_per_run'] == 3 and len(row['rounds_ms_per_step']) == 2
    assert row['median_ms_per_step'] > 0 and row['speed_over_none'] > 0
