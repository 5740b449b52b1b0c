"""Server-side batching: concurrent requests' rows through one model call.

As TF Serving's batching does: the rows of requests that arrive within
`window` seconds of the first, up to `max_rows`, go through the model
together, and each request gets its own rows back, in order. A batch does
not wait for the window when no other request is on its way (being read or
parsed), so a lone client is answered at once. The model runs on one
thread of its own (TensorFlow spreads each call over the cores); batches
that fill while it runs wait their turn and grow meanwhile. A request of
more than `max_rows` goes through in chunks of `max_rows`, which bounds the
model's memory for a batch prediction job's big requests. A window of 0
turns batching off: each request's chunks are called alone, in the event
loop's thread pool, as before.
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses

import numpy as np


@dataclasses.dataclass
class _Item:
  key: str
  rows: np.ndarray
  future: asyncio.Future
  since: float


class Batcher:
  """Calls `call(key, rows) -> {output: array}` for batches of requests.

  Rows of one batch share a key (the signature) and a row shape. Use from
  the server's event loop only.
  """

  def __init__(self, call, window, max_rows):
    self._call, self._window, self._max_rows = call, window, max_rows
    self._queue, self._arriving = [], 0
    self._wake = asyncio.Event()
    self._drainer = None
    self._model_thread = concurrent.futures.ThreadPoolExecutor(
        1, thread_name_prefix='model')

  @contextlib.contextmanager
  def arriving(self):
    """Marks a request being read and parsed: batches wait for it."""
    self._arriving += 1
    try:
      yield
    finally:
      self._arriving -= 1
      self._wake.set()

  async def run(self, key, rows):
    """The model's outputs for `rows`, row for row; raises what the model
    raised for these rows."""
    chunks = [rows[i:i + self._max_rows]
              for i in range(0, len(rows), self._max_rows)]
    if not self._window:
      loop = asyncio.get_running_loop()
      parts = [await loop.run_in_executor(None, self._call, key, c)
               for c in chunks]
    else:
      parts = await asyncio.gather(*(self._enqueue(key, c) for c in chunks))
    if len(parts) == 1:
      return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

  def _enqueue(self, key, rows):
    loop = asyncio.get_running_loop()
    item = _Item(key, rows, loop.create_future(), loop.time())
    self._queue.append(item)
    self._wake.set()
    if self._drainer is None:
      self._drainer = loop.create_task(self._drain())
    return item.future

  async def _drain(self):
    loop = asyncio.get_running_loop()
    try:
      while self._queue:
        await self._gather(loop)
        batch = self._take()
        outcomes = await loop.run_in_executor(self._model_thread,
                                              self._outcomes, batch)
        for item, (outputs, error) in zip(batch, outcomes):
          if item.future.done():  # its client went away
            continue
          if error is None:
            item.future.set_result(outputs)
          else:
            item.future.set_exception(error)
    finally:
      self._drainer = None

  async def _gather(self, loop):
    """Waits until the oldest row's window ends, the batch is full, or no
    other request is on its way."""
    while True:
      left = self._queue[0].since + self._window - loop.time()
      rows = sum(len(item.rows) for item in self._queue)
      if left <= 0 or rows >= self._max_rows or not self._arriving:
        return
      self._wake.clear()
      try:
        await asyncio.wait_for(self._wake.wait(), left)
      except TimeoutError:
        return

  def _take(self):
    """The oldest rows' batch: its key and row shape, up to max_rows."""
    first = self._queue[0]
    batch, rest, rows = [], [], 0
    for item in self._queue:
      fits = rows + len(item.rows) <= self._max_rows
      if (item.key == first.key and item.rows.shape[1:] == first.rows.shape[1:]
          and (fits or not batch)):
        batch.append(item)
        rows += len(item.rows)
      else:
        rest.append(item)
    self._queue = rest
    return batch

  def _outcomes(self, batch):
    """[(outputs, None) or (None, exception)] per item, on the model thread.

    If the batch fails, each item is called alone: only the requests at
    fault get the error.
    """
    if len(batch) > 1:
      try:
        outputs = self._call(batch[0].key,
                             np.concatenate([item.rows for item in batch]))
      except Exception:  # pylint: disable=broad-except
        pass
      else:
        ends = np.cumsum([len(item.rows) for item in batch])
        return [({name: array[end - len(item.rows):end]
                  for name, array in outputs.items()}, None)
                for item, end in zip(batch, ends)]
    return [self._alone(item) for item in batch]

  def _alone(self, item):
    try:
      return self._call(item.key, item.rows), None
    except Exception as e:  # pylint: disable=broad-except
      return None, e
