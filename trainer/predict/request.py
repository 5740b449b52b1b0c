"""Instances: the JSON that TF Serving, Vertex AI and gcloud take.

A request body is {"instances": [...]} (with "signature_name" for a
signature other than the default); JSON lines hold one instance a line.
A pixels instance is {"x": 28 rows of 28 ints}, an image instance
{"image_bytes": {"b64": ...}}.
"""

import base64
import json

import numpy as np

from trainer import data
from trainer import export
from trainer.errors import InputError


def pixels_instance(image):
  """{"x": 28 rows of 28 ints 0-255}, for `serving_default`."""
  rows = np.asarray(image).reshape(data.IMAGE_SIZE, data.IMAGE_SIZE)
  return {export.SERVING_INPUT: rows.tolist()}


def image_instance(content):
  """{"image_bytes": {"b64": ...}}: servers decode b64 for *_bytes inputs."""
  return {export.IMAGE_INPUT: {'b64': base64.b64encode(content).decode()}}


def write_instances(instances, out, fmt='request', signature=None):
  """`request`: one {"instances": [...]} body; `jsonl`: one per line."""
  if fmt == 'jsonl':
    for instance in instances:
      out.write(json.dumps(instance) + '\n')
    return
  body = {'instances': list(instances)}
  if signature and signature != export.DEFAULT_SIGNATURE:
    body['signature_name'] = signature
  out.write(json.dumps(body) + '\n')


def read_instances(text, source):
  """Instances from a request body or from JSON lines."""
  try:
    body = json.loads(text)
  except json.JSONDecodeError:
    body = None
  if isinstance(body, dict) and 'instances' in body:
    return body['instances']
  if body is not None:
    return [body]
  found = []
  for number, line in enumerate(text.splitlines(), 1):
    if line.strip():
      try:
        found.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise InputError(f'{source} line {number} is not JSON ({e.msg}); '
                         'give a {"instances": [...]} body or one instance '
                         'per line') from None
  return found


def parse_instance(instance, source):
  """('image', bytes) or ('pixels', nested list) for one instance."""
  if isinstance(instance, dict) and set(instance) == {export.IMAGE_INPUT}:
    instance = instance[export.IMAGE_INPUT]
  if isinstance(instance, dict) and set(instance) == {'b64'}:
    try:
      return 'image', base64.b64decode(instance['b64'], validate=True)
    except (TypeError, ValueError):
      raise InputError(f'{source} holds a "b64" value that is not '
                       'base64') from None
  if isinstance(instance, dict) and set(instance) == {export.SERVING_INPUT}:
    instance = instance[export.SERVING_INPUT]
  if isinstance(instance, list):
    return 'pixels', instance
  raise InputError(
      f'{source} holds an instance that is neither pixels ([...] or '
      f'{{"{export.SERVING_INPUT}": [...]}}) nor an image '
      f'({{"{export.IMAGE_INPUT}": {{"b64": "..."}}}}): '
      f'{json.dumps(instance)[:60]}')
