#!/usr/bin/env python3
"""Load check of a predict URL: C clients send N requests each, then JSON.

  scripts/load_check.py --url URL [--clients 8] [--requests 200]
      [--instances 1] [--instances-file FILE] [--token TOKEN]

Each client keeps one connection and sends its requests one after another;
all start together. Each request holds --instances instances, taken in
turn from --instances-file (JSON lines or a request body, as
scripts/make_request.py writes them) or, without one, seeded random pixel
images. Prints one JSON object: requests, errors (non-2xx or no answer),
seconds, requests_per_sec, instances_per_sec, p50_ms, p99_ms.
A local server (docs/serving.md) is http://127.0.0.1:8080/predict; an
endpoint takes --token "$(gcloud auth print-access-token)". The count and
a timeout per request bound the run. Standard library only.
"""

import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse


def fail(message):
  sys.exit(f'error: {message}')


class _Parser(argparse.ArgumentParser):

  def error(self, message):
    fail(f'{message} (see --help)')


def parse_args(argv):
  p = _Parser(description=__doc__.split('\n\n')[0],
              formatter_class=argparse.RawDescriptionHelpFormatter,
              epilog=__doc__.split('\n\n', 1)[1])
  p.add_argument('--url', required=True, help='the predict URL')
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


def bodies(args):
  """One body per distinct request a client sends in turn (at most 16)."""
  pool = (read_instances(args.instances_file) if args.instances_file
          else random_instances(min(args.instances * 16, 512)))
  made = []
  for start in range(0, args.instances * 16, args.instances):
    chosen = [pool[(start + i) % len(pool)] for i in range(args.instances)]
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


def main(argv=None):
  args = parse_args(argv)
  url = urllib.parse.urlsplit(args.url)
  headers = {'Content-Type': 'application/json'}
  if args.token:
    headers['Authorization'] = f'Bearer {args.token}'
  payloads = bodies(args)
  latencies, errors, start = [], [], threading.Event()
  threads = [threading.Thread(target=client, args=(
      url, headers, payloads, args.requests, args.timeout, latencies, errors,
      start)) for _ in range(args.clients)]
  for thread in threads:
    thread.start()
  began = time.perf_counter()
  start.set()
  for thread in threads:
    thread.join()
  seconds = time.perf_counter() - began
  total = args.clients * args.requests
  print(json.dumps({
      'url': args.url, 'clients': args.clients,
      'requests_per_client': args.requests,
      'instances_per_request': args.instances, 'requests': total,
      'errors': len(errors), 'seconds': round(seconds, 3),
      'requests_per_sec': round(total / seconds, 1),
      'instances_per_sec': round(total * args.instances / seconds, 1),
      'p50_ms': round(percentile(latencies, 0.50) * 1000, 1),
      'p99_ms': round(percentile(latencies, 0.99) * 1000, 1),
  }))


if __name__ == '__main__':
  main()
