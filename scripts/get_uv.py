"""Fetches uv from the package index into a folder; prints the uv it wrote.

scripts/env.sh runs it when the machine has no Python that TensorFlow 2.15
supports (3.9-3.11): uv then installs CPython 3.11. It uses only Python's
standard library, so any python3 can run it, also those that ship without
pip or venv (Ubuntu 24.04's, Debian 13's). The wheel is picked for this
machine, checked against the index's sha256, and only its uv binary is kept.

usage: get_uv.py VERSION FOLDER   (index: $UV_DEFAULT_INDEX, else PyPI)
"""

import hashlib
import io
import json
import os
import platform
import re
import sys
import urllib.request
import zipfile

INDEX = os.environ.get('UV_DEFAULT_INDEX', 'https://pypi.org/simple')


def _glibc():
  """(major, minor) of this machine's glibc, or None (musl, macOS)."""
  libc, version = platform.libc_ver()
  if libc != 'glibc' or not version:
    return None
  return tuple(int(part) for part in version.split('.')[:2])


def fits(tag, system, machine, glibc):
  """Whether a wheel's platform tag (e.g. manylinux_2_17_x86_64) runs here."""
  if system == 'Darwin':
    arch = 'arm64' if machine in ('arm64', 'aarch64') else machine
    return tag.startswith('macosx_') and tag.endswith(('_' + arch,
                                                       '_universal2'))
  if system != 'Linux' or not tag.endswith('_' + machine):
    return False
  if glibc is None:
    return tag.startswith('musllinux_')
  legacy = {'manylinux1': (2, 5), 'manylinux2010': (2, 12),
            'manylinux2014': (2, 17)}
  family = tag[:-len(machine) - 1]
  if family in legacy:
    return legacy[family] <= glibc
  found = re.fullmatch(r'manylinux_(\d+)_(\d+)', family)
  return bool(found) and (int(found[1]), int(found[2])) <= glibc


def pick(files, version, system, machine, glibc):
  """The index entry of the uv wheel of `version` for this machine."""
  for entry in files:
    name = entry['filename']
    prefix = f'uv-{version}-'
    if not (name.startswith(prefix) and name.endswith('.whl')):
      continue
    tags = name[:-len('.whl')].split('-')[-1].split('.')
    if any(fits(tag, system, machine, glibc) for tag in tags):
      return entry
  return None


def _get(url, accept=None):
  request = urllib.request.Request(url, headers={'Accept': accept} if accept
                                   else {})
  with urllib.request.urlopen(request, timeout=60) as response:
    return response.read()


def fetch(version, folder):
  """Writes folder/uv; returns its path."""
  system, machine = platform.system(), platform.machine()
  page = json.loads(_get(f'{INDEX.rstrip("/")}/uv/',
                         'application/vnd.pypi.simple.v1+json'))
  entry = pick(page['files'], version, system, machine, _glibc())
  if entry is None:
    raise RuntimeError(f'{INDEX} has no uv {version} wheel for '
                       f'{system} {machine}')
  wheel = _get(entry['url'])
  digest = entry.get('hashes', {}).get('sha256')
  if digest and hashlib.sha256(wheel).hexdigest() != digest:
    raise RuntimeError(f'{entry["filename"]} does not match its sha256')
  with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
    member, = [n for n in archive.namelist() if n.endswith('.data/scripts/uv')]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, 'uv')
    with open(path + '.part', 'wb') as out:
      out.write(archive.read(member))
  os.chmod(path + '.part', 0o755)
  os.replace(path + '.part', path)  # never a half-written uv
  return path


def main(argv):
  if argv[1:] in (['-h'], ['--help']):
    print(__doc__.strip())
    return
  if len(argv) != 3:
    sys.exit(__doc__.strip().splitlines()[-1])
  try:
    print(fetch(argv[1], argv[2]))
  except (OSError, RuntimeError, ValueError, KeyError) as e:
    sys.exit(f'error: could not fetch uv {argv[1]} from {INDEX}: {e}')


if __name__ == '__main__':
  main(sys.argv)
