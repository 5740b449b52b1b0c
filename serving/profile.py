"""Where a predict request's time goes, stage by stage, as JSON.

  python -m serving.profile --model DIR --url http://127.0.0.1:8080/predict
      [--instances-file FILE] [--repeats 200]

Times each stage of the handler in this process on the same bodies that
scripts/load_check.py sends (1 and 32 instances): reading the body into
numpy (JSON and shape), the checks, the model call, encoding the answer;
then the whole request from one client to the server at --url (started as
docs/serving.md shows, from the same code). What is left, whole minus the
stages, is the HTTP layer (client, uvicorn, FastAPI, CPR) and batching.
Medians, in milliseconds. Run it in the serving venv.
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse

from serving import model as model_lib
from serving import pixel_body
from serving import request
from serving import response

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'scripts')


def median_ms(fn, repeats):
  fn()
  times = []
  for _ in range(repeats):
    began = time.perf_counter()
    fn()
    times.append(time.perf_counter() - began)
  return round(statistics.median(times) * 1000, 3)


def whole_request_ms(url, raw, repeats):
  """Median of one client's requests, one after another, one connection."""
  address = urllib.parse.urlsplit(url)
  connection = http.client.HTTPConnection(address.hostname, address.port)

  def send():
    connection.request('POST', address.path, raw,
                       {'Content-Type': 'application/json'})
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200, answer.status
  try:
    return median_ms(send, repeats)
  finally:
    connection.close()


def profile(model, url, raw, repeats):
  """{instances, whole_request_ms, stages_ms} for one body."""
  signature, values = request.parse(raw, model.signatures)
  outputs = model.predict(signature, values)
  read = median_ms(lambda: pixel_body.pixels(raw), repeats)
  parse = median_ms(lambda: request.parse(raw, model.signatures), repeats)
  stages = {
      'read body (JSON + shape)': read,
      'checks and dtype': round(max(parse - read, 0), 3),
      'model call': median_ms(lambda: model.predict(signature, values),
                              repeats),
      'encode answer': median_ms(lambda: response.predictions(outputs),
                                 repeats),
  }
  whole = whole_request_ms(url, raw, repeats)
  stages['HTTP layer and batching (whole - stages)'] = round(
      whole - sum(stages.values()), 3)
  return {'instances': len(values), 'whole_request_ms': whole,
          'stages_ms': stages}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--model', required=True, help='the SavedModel folder')
  p.add_argument('--url', required=True, help="the server's predict URL")
  p.add_argument('--instances-file', help='JSON lines or a request body')
  p.add_argument('--repeats', type=int, default=200)
  args = p.parse_args(argv)
  sys.path.insert(0, SCRIPTS)  # the bodies and machine line of load_check
  import load_check  # pylint: disable=import-outside-toplevel
  model = model_lib.Model(args.model)
  shim = argparse.Namespace(instances_file=args.instances_file,
                            signature_name=None)
  found = [profile(model, args.url, load_check.bodies(shim, count)[0],
                   args.repeats) for count in (1, 32)]
  print(json.dumps({'date': time.strftime('%Y-%m-%d %H:%M'),
                    'machine': load_check.machine(), 'profiles': found}))


if __name__ == '__main__':
  main()
