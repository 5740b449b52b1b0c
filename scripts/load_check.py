#!/usr/bin/env python3
"""Load check of a predict URL: C clients send N requests each, then JSON.

  scripts/load_check.py --url URL [--clients 8] [--requests 200]
      [--instances 1] [--instances-file FILE] [--token TOKEN]
  scripts/load_check.py --targets --model DIR --python VENV/bin/python
      [--before CHECKOUT] [--instances-file FILE]

Each client keeps one connection and sends its requests one after another;
all start together. Each request holds --instances instances, taken in
turn from --instances-file (JSON lines or a request body, as
scripts/make_request.py writes them) or, without one, seeded random pixel
images. Prints one JSON object: requests, errors (non-2xx or no answer),
seconds, requests_per_sec, instances_per_sec, p50_ms, p99_ms.
A local server (docs/serving.md) is http://127.0.0.1:8080/predict; an
endpoint takes --token "$(gcloud auth print-access-token)". The count and
a timeout per request bound the run. Standard library only.

--targets checks issue 24's targets in one run: it starts the serving
image's entry point (Dockerfile.serving's ENV and ENTRYPOINT, with
--python, a venv of requirements-serving.txt) on the SavedModel --model,
sends the loads of TARGET_LOADS, then calls the same SavedModel in-process
in that venv, one instance and 32 a call, and prints one JSON object: each
load, the in-process rates, the ratios and whether each target is met.
--before CHECKOUT (an older tree, e.g. `git archive 5b4963a | tar -x -C
/tmp/before`) starts that checkout's server too and sends each load to
both in turn, for the "today" of the first target (without it, today is
issue 24's figure); each load's record holds the server's CPU time per
request, which other work on a shared machine moves less than the rates.
"""

import argparse
import http.client
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (clients, requests per client, instances per request): a few seconds each.
TARGET_LOADS = ((1, 1500, 1), (8, 300, 1), (32, 100, 1), (32, 60, 32))
# 32 clients x 1 instance on 2026-12-02, the code before issue 24 (its note).
ISSUE_24_TODAY = {'requests_per_sec': 404.0, 'p99_ms': 94.0}


def fail(message):
  sys.exit(f'error: {message}')


class _Parser(argparse.ArgumentParser):

  def error(self, message):
    fail(f'{message} (see --help)')


def parse_args(argv):
  p = _Parser(description=__doc__.split('\n\n')[0],
              formatter_class=argparse.RawDescriptionHelpFormatter,
              epilog=__doc__.split('\n\n', 1)[1])
  p.add_argument('--url', help='the predict URL')
  p.add_argument('--targets', action='store_true',
                 help="check issue 24's targets (see below)")
  p.add_argument('--model', help='--targets: the SavedModel folder')
  p.add_argument('--python', help='--targets: the serving venv\'s python')
  p.add_argument('--before', help='--targets: a checkout to compare with')
  p.add_argument('--in-process', metavar='MODEL', help=argparse.SUPPRESS)
  p.add_argument('--clients', type=int, default=8)
  p.add_argument('--requests', type=int, default=200,
                 help='requests per client')
  p.add_argument('--instances', type=int, default=1,
                 help='instances per request')
  p.add_argument('--instances-file', help='JSON lines or a request body')
  p.add_argument('--signature-name', help='signature_name for each request')
  p.add_argument('--token', help='bearer token (Vertex AI endpoints)')
  p.add_argument('--timeout', type=float, default=60,
                 help='seconds per request (default 60)')
  args = p.parse_args(argv)
  for name in ('clients', 'requests', 'instances'):
    if getattr(args, name) < 1:
      p.error(f'--{name}={getattr(args, name)} must be 1 or more')
  if args.targets:
    for name in ('model', 'python'):
      if not getattr(args, name):
        p.error(f'--targets needs --{name}')
    return args
  if args.in_process:
    return args
  if not args.url:
    p.error('give --url, or --targets')
  url = urllib.parse.urlsplit(args.url)
  if url.scheme not in ('http', 'https') or not url.hostname:
    p.error(f'--url {args.url} is not an http(s) URL')
  return args


def read_instances(path):
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    fail(f'--instances-file {path}: {e.strerror}')
  try:
    body = json.loads(text)
    found = body['instances'] if isinstance(body, dict) else [body]
  except (json.JSONDecodeError, KeyError):
    try:
      found = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
      fail(f'--instances-file {path} is neither a request body nor JSON '
           'lines; write one with scripts/make_request.py')
  if not found:
    fail(f'--instances-file {path} holds no instances')
  return found


def random_instances(count, seed=0):
  rng = random.Random(seed)
  return [{'x': [[rng.randrange(256) for _ in range(28)] for _ in range(28)]}
          for _ in range(count)]


def instance_pool(args, instances):
  return (read_instances(args.instances_file) if args.instances_file
          else random_instances(min(instances * 16, 512)))


def bodies(args, instances):
  """One body per distinct request a client sends in turn (at most 16)."""
  pool = instance_pool(args, instances)
  made = []
  for start in range(0, instances * 16, instances):
    chosen = [pool[(start + i) % len(pool)] for i in range(instances)]
    body = {'instances': chosen}
    if args.signature_name:
      body['signature_name'] = args.signature_name
    made.append(json.dumps(body).encode())
  return made


def client(url, headers, payloads, count, timeout, latencies, errors, start):
  """Sends `count` requests on one connection, reconnecting after errors."""
  kind = (http.client.HTTPSConnection if url.scheme == 'https'
          else http.client.HTTPConnection)
  path = url.path + (f'?{url.query}' if url.query else '')
  connection = kind(url.hostname, url.port, timeout=timeout)
  start.wait()
  for i in range(count):
    began = time.perf_counter()
    try:
      connection.request('POST', path, payloads[i % len(payloads)], headers)
      answer = connection.getresponse()
      answer.read()
      ok = 200 <= answer.status < 300
    except (OSError, http.client.HTTPException):
      ok = False
      connection.close()
      connection = kind(url.hostname, url.port, timeout=timeout)
    latencies.append(time.perf_counter() - began)
    if not ok:
      errors.append(i)
  connection.close()


def percentile(values, fraction):
  ordered = sorted(values)
  return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_load(args, url, clients, requests, instances):
  """One load: `clients` threads x `requests` each; its JSON record."""
  split = urllib.parse.urlsplit(url)
  headers = {'Content-Type': 'application/json'}
  if args.token:
    headers['Authorization'] = f'Bearer {args.token}'
  payloads = bodies(args, instances)
  latencies, errors, start = [], [], threading.Event()
  threads = [threading.Thread(target=client, args=(
      split, headers, payloads, requests, args.timeout, latencies, errors,
      start)) for _ in range(clients)]
  for thread in threads:
    thread.start()
  began = time.perf_counter()
  start.set()
  for thread in threads:
    thread.join()
  seconds = time.perf_counter() - began
  total = clients * requests
  return {
      'url': url, 'clients': clients, 'requests_per_client': requests,
      'instances_per_request': instances, 'requests': total,
      'errors': len(errors), 'seconds': round(seconds, 3),
      'requests_per_sec': round(total / seconds, 1),
      'instances_per_sec': round(total * instances / seconds, 1),
      'p50_ms': round(percentile(latencies, 0.50) * 1000, 1),
      'p99_ms': round(percentile(latencies, 0.99) * 1000, 1),
  }


# --targets --------------------------------------------------------------------


def image_env(dockerfile):
  """(ENV of the Dockerfile, its ENTRYPOINT): the server as the image runs it."""
  env, entrypoint = {}, None
  with open(dockerfile) as f:
    for line in f:
      word, _, rest = line.strip().partition(' ')
      if word == 'ENV':
        name, _, value = rest.replace('=', ' ', 1).partition(' ')
        env[name] = value.strip()
      elif word == 'ENTRYPOINT':
        entrypoint = json.loads(rest)
  return env, entrypoint


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start_server(checkout, python, model, log):
  """The serving image's entry point from `checkout`; (process, URL)."""
  env, entrypoint = image_env(os.path.join(checkout, 'Dockerfile.serving'))
  port = free_port()
  env = dict(os.environ, **env, AIP_HTTP_PORT=str(port),
             AIP_HEALTH_ROUTE='/health', AIP_PREDICT_ROUTE='/predict',
             AIP_STORAGE_URI=model)
  proc = subprocess.Popen([python] + entrypoint[1:], cwd=checkout, env=env,
                          stdout=log, stderr=subprocess.STDOUT)
  base = f'http://127.0.0.1:{port}'
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      fail(f'the server of {checkout} exited {proc.returncode}; see {log.name}')
    try:
      with urllib.request.urlopen(base + '/health', timeout=5):
        return proc, base + '/predict'
    except OSError:
      time.sleep(0.5)
  proc.kill()
  fail(f'the server of {checkout} was not healthy after 300 s; see {log.name}')


def cpu_seconds(proc):
  """User + system CPU seconds of a process so far (Linux), or None."""
  try:
    with open(f'/proc/{proc.pid}/stat') as f:
      fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
  except (OSError, ValueError, IndexError):
    return None


def measured(args, server, load):
  """run_load on a started server, with its CPU time per request: a
  figure that other work on the machine changes less than the rates."""
  proc, url = server
  before = cpu_seconds(proc)
  record = run_load(args, url, *load)
  after = cpu_seconds(proc)
  if before is not None and after is not None:
    record['server_cpu_ms_per_request'] = round(
        (after - before) * 1000 / record['requests'], 3)
  return record


def stop(proc):
  proc.terminate()
  try:
    proc.wait(timeout=30)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()


def server_loads(args, checkouts, log):
  """{name: TARGET_LOADS' records} for each checkout's server, the loads
  taken in turn (each load on each server before the next load), so that
  other work on the machine weighs on both alike."""
  servers = {}
  try:
    for name, checkout in checkouts.items():
      servers[name] = start_server(checkout, args.python, args.model, log)
      run_load(args, servers[name][1], 8, 20, 32)  # warm-up
    found = {name: [] for name in servers}
    for load in TARGET_LOADS:
      for name, server in servers.items():
        found[name].append(measured(args, server, load))
    return found
  finally:
    for proc, _ in servers.values():
      stop(proc)


def in_process(args):
  """Calls of the SavedModel in this process: one instance, then 32."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  pool = instance_pool(args, 32)
  pixels = np.array([i['x'] if isinstance(i, dict) else i for i in pool],
                    np.float32).reshape(-1, 28, 28)
  fn = tf.saved_model.load(args.in_process).signatures['serving_default']
  rates = {}
  for count in (1, 32):
    batch = np.resize(pixels, (count, 28, 28))
    fn(x=tf.constant(batch))
    calls, began = 0, time.perf_counter()
    while time.perf_counter() - began < 3:
      {k: v.numpy() for k, v in fn(x=tf.constant(batch)).items()}
      calls += 1
    rates[f'instances_per_sec_at_{count}'] = round(
        calls * count / (time.perf_counter() - began), 1)
  print(json.dumps({'tensorflow': tf.__version__, **rates}))


def machine():
  model = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      model = next(line.split(':', 1)[1].strip() for line in f
                   if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  return f'{os.cpu_count()} cores, {model}'


def targets(args):
  """Both servers' loads, the in-process rates, ratios and targets."""
  found = {'date': time.strftime('%Y-%m-%d %H:%M'), 'machine': machine(),
           'command': ' '.join(['scripts/load_check.py'] + sys.argv[1:])}
  checkouts = {'after': ROOT}
  if args.before:
    checkouts = {'before': os.path.abspath(args.before), **checkouts}
  with tempfile.NamedTemporaryFile('w', suffix='.log', prefix='server-',
                                   delete=False) as log:
    found.update(server_loads(args, checkouts, log))
  reference = subprocess.run(
      [args.python, os.path.abspath(__file__), '--in-process', args.model]
      + (['--instances-file', args.instances_file]
         if args.instances_file else []),
      capture_output=True, text=True, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  if reference.returncode:
    fail(f'the in-process reference failed: {reference.stderr[-2000:]}')
  found['in_process'] = json.loads(reference.stdout.splitlines()[-1])
  found['targets'] = verdicts(found)
  return found


def verdicts(found):
  """Issue 24's three targets, each {value, target, met}."""
  after = {(r['clients'], r['instances_per_request']): r
           for r in found['after']}
  today = ISSUE_24_TODAY
  if 'before' in found:
    today = next(r for r in found['before']
                 if (r['clients'], r['instances_per_request']) == (32, 1))
  many, wide, one = after[32, 1], after[32, 32], after[1, 1]
  speedup = many['requests_per_sec'] / today['requests_per_sec']
  share = (wide['instances_per_sec'] /
           found['in_process']['instances_per_sec_at_32'])
  return {
      '32x1 requests/s vs today': {
          'value': round(speedup, 2), 'target': '>= 2',
          'p99_ms': many['p99_ms'], 'today_p99_ms': today['p99_ms'],
          'met': speedup >= 2 and many['p99_ms'] <= today['p99_ms']},
      '32x32 instances/s vs in-process': {
          'value': round(share, 3), 'target': '>= 0.35', 'met': share >= 0.35},
      '1x1 p50 ms': {'value': one['p50_ms'], 'target': '<= 3',
                     'met': one['p50_ms'] <= 3},
  }


def main(argv=None):
  args = parse_args(argv)
  if args.in_process:
    in_process(args)
  elif args.targets:
    print(json.dumps(targets(args)))
  else:
    print(json.dumps(run_load(args, args.url, args.clients, args.requests,
                              args.instances)))


if __name__ == '__main__':
  main()
