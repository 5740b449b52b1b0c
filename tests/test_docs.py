"""Every link and command in the README and docs/ works.

- Relative links (and images) name files that exist, and their #anchors
  headings of the page they point to (GitHub's heading ids).
- Every command the pages show, `python -m trainer.X`, `scripts/X` and the
  venv's own tools, answers `--help` (each distinct command once, a few at
  a time), and each `--flag` a documented command line gives is one that
  command's `--help` lists; after a lone `--`, the flags go to trainer.task.
  These start TensorFlow about ten times: marked slow; the links are not.
"""

import concurrent.futures
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.support import processes

PAGES = sorted([os.path.join(processes.ROOT, 'README.md')] +
               glob.glob(os.path.join(processes.ROOT, 'docs', '*.md')))
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^\s*(```|~~~)')
# A command, and what it is: ('module', 'trainer.task'), ('script',
# 'scripts/x.py') or ('tool', 'tensorboard').
COMMAND = re.compile(r'(?:python3? -m (?P<module>trainer(?:\.\w+)+))|'
                     r'(?:^|(?<=[\s`(]))(?P<script>scripts/[\w-]+\.(?:sh|py))|'
                     r'\.venv/bin/(?P<tool>tensorboard|saved_model_cli)')
TASK = ('module', 'trainer.task')
TRAIN_LOCAL = ('script', 'scripts/train_local.sh')
CRASH = 'Traceback (most recent call last)'


def _page(path):
  with open(path) as f:
    return f.read()


def prose_and_code(text):
  """(prose lines, code-block lines), code blocks' line continuations joined."""
  prose, code, inside = [], [], False
  for line in re.sub(r'\\\n\s*', ' ', text).splitlines():
    if FENCE.match(line):
      inside = not inside
    elif inside:
      code.append(line)
    else:
      prose.append(line)
  return prose, code


def anchors(text):
  """The ids GitHub gives a page's headings (-1, -2 ... for repeats)."""
  seen, ids = {}, set()
  for line in prose_and_code(text)[0]:
    heading = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
    if heading:
      slug = re.sub(r'[^\w\- ]', '', heading.group(1).lower()).replace(' ',
                                                                        '-')
      count = seen.get(slug, 0)
      seen[slug] = count + 1
      ids.add(slug if not count else f'{slug}-{count}')
  return ids


def links(path):
  """The target of each link and image outside code."""
  text = _page(path)
  prose = '\n'.join(prose_and_code(text)[0])
  prose = re.sub(r'`[^`\n]*`', '', prose)  # inline code shows, not links
  return LINK.findall(prose)


@pytest.mark.parametrize('page', PAGES, ids=os.path.basename)
def test_every_link_resolves(page):
  broken = []
  for target in links(page):
    if re.match(r'[a-z]+:', target):  # https:, mailto: ...
      continue
    path, _, anchor = target.partition('#')
    file = os.path.normpath(os.path.join(os.path.dirname(page), path)
                            ) if path else page
    if not os.path.exists(file):
      broken.append(f'{target}: no {os.path.relpath(file, processes.ROOT)}')
    elif anchor and anchor not in anchors(_page(file)):
      broken.append(f'{target}: no heading #{anchor} in '
                    f'{os.path.relpath(file, processes.ROOT)}')
  assert not broken, f'{os.path.relpath(page, processes.ROOT)}: {broken}'


def _kind(match):
  return next((kind, name) for kind, name in match.groupdict().items()
              if name)


def command_lines():
  """{(page, line): [(command, flags it gives), ...]} for each line of code
  or inline code span in the pages that runs one of ours."""
  found = {}
  for page in PAGES:
    prose, code = prose_and_code(_page(page))
    spans = [span for line in prose for span in re.findall(r'`([^`]+)`',
                                                           line)]
    for line in code + spans:
      line = re.sub(r'\s#\s.*$', '', line)  # a comment after the command
      matches = list(COMMAND.finditer(line))
      if matches:
        found[(os.path.basename(page), line)] = [
            (_kind(m), _flags(line[m.end():])) for m in matches]
  return found


def _flags(rest):
  """The --flags of one command line: its own, then (after --) the trainer's."""
  try:
    words = shlex.split(rest)
  except ValueError:
    words = rest.split()
  own, trainer, target = [], [], None
  for word in words:
    if word == '--':
      target = trainer
    elif re.match(r'--[a-z][\w-]*', word):
      (own if target is None else target).append(word.split('=')[0])
    elif word in ('|', '&&', ';', '>'):
      break
  return own, trainer


def command(kind, name):
  """The argv that runs a documented command with the test venv."""
  venv_bin = os.path.dirname(sys.executable)
  if kind == 'module':
    return [sys.executable, '-m', name]
  if kind == 'tool':
    return [os.path.join(venv_bin, name)]
  path = os.path.join(processes.ROOT, name)
  return ['bash', path] if name.endswith('.sh') else [sys.executable, path]


def help_of(kind, name):
  """(exit status, the --help output) of one command."""
  env = {**processes.env(), 'VENV': sys.prefix,
         'PATH': os.path.dirname(sys.executable) + os.pathsep +
                 os.environ['PATH']}
  result = subprocess.run(command(kind, name) + ['--help'], cwd=processes.ROOT,
                          env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, check=False)
  return result.returncode, result.stdout + result.stderr


def sourced(kind, name):
  """Whether a documented script is sourced, not run (scripts/env.sh)."""
  if kind != 'script' or not name.endswith('.sh'):
    return False
  with open(os.path.join(processes.ROOT, name)) as f:
    return not f.readline().startswith('#!')


@pytest.fixture(scope='module')
def helps():
  """{command: (status, output)}: each distinct documented command's --help.

  scripts/train_local.sh --help is trainer.task's, run by the venv's
  Python: one TensorFlow start serves both.
  """
  commands = {what for uses in command_lines().values() for what, _ in uses
              if not sourced(*what)}
  run = sorted(commands - {TASK} if TRAIN_LOCAL in commands else commands)
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    found = dict(zip(run, pool.map(lambda c: help_of(*c), run)))
  found.setdefault(TASK, found[TRAIN_LOCAL])
  return found


def _listed(output):
  """The --flags a --help output names, with --[no]x as --x and --nox."""
  names = {'--help'}
  for no, name in re.findall(r'--(\[no\])?([a-z][\w-]*)', output):
    name = name.replace('_', '-')
    names |= {f'--{name}', f'--no{name}'} if no else {f'--{name}'}
  return names


@pytest.mark.slow  # about ten TensorFlow start-ups
def test_every_documented_command_answers_help(helps):
  failed = {name: output[-600:] for (kind, name), (status, output)
            in helps.items()
            if status != 0 or CRASH in output or not output.strip()}
  # saved_model_cli (TensorFlow's) ends its absl --help with status 1.
  status, output = helps[('tool', 'saved_model_cli')]
  if status == 1 and 'USAGE' in output and CRASH not in output:
    failed.pop('saved_model_cli')
  assert not failed, failed
  assert {TASK, ('module', 'trainer.predict'), ('module', 'trainer.sweep'),
          ('tool', 'tensorboard')} <= set(helps)


@pytest.mark.slow
def test_every_documented_flag_is_one_the_command_takes(helps):
  task_flags = _listed(helps[TASK][1])
  unknown = []
  for (page, line), uses in command_lines().items():
    for what, (own, trainer) in uses:
      if what[0] == 'tool' or sourced(*what):
        continue
      listed = _listed(helps[what][1])
      unknown += [f'{page}: {flag} in `{line.strip()}`' for flag in own
                  if flag.replace('_', '-') not in listed]
      unknown += [f'{page}: {flag} (for trainer.task) in `{line.strip()}`'
                  for flag in trainer
                  if flag.replace('_', '-') not in task_flags]
  assert not unknown, '\n'.join(unknown)
