"""serving/batching.py: concurrent requests share model calls, each gets its
own rows back in order, and one bad request fails alone; serving/settings.py.

The model here is a plain function that records each call, run by the real
Batcher on a real event loop; tests/test_serving_image.py checks the
batched server's predictions against trainer.predict.
"""

import asyncio
import contextlib
import threading

import numpy as np
import pytest

from serving import batching
from serving import settings

TIMEOUT = 30  # seconds: a batch that never closes fails, not hangs


class Model:
  """{"double": rows * 2, "total": row sums}; refuses negative rows."""

  def __init__(self):
    self.calls, self._lock = [], threading.Lock()

  def __call__(self, key, rows):
    with self._lock:
      self.calls.append((key, len(rows)))
    if (rows < 0).any():
      raise ValueError('negative')
    return {'double': rows * 2, 'total': rows.sum(axis=1)}


def run(coroutine):
  return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))


def rows(count, seed, width=3):
  return np.random.default_rng(seed).integers(0, 100, (count, width))


async def concurrently(batcher, arrays, key='k'):
  """Each array as its own request, all at once; [outputs or exception]."""
  async def one(array):
    with batcher.arriving():
      await asyncio.sleep(0)  # reading the body
    return await batcher.run(key, array)
  return await asyncio.gather(*map(one, arrays), return_exceptions=True)


def test_32_concurrent_requests_each_get_their_own_rows_in_order():
  model = Model()
  batcher = batching.Batcher(model, window=0.05, max_rows=64)
  arrays = [rows(1 + i % 5, seed=i) for i in range(32)]
  answers = run(concurrently(batcher, arrays))
  for array, answer in zip(arrays, answers):
    np.testing.assert_array_equal(answer['double'], array * 2)
    np.testing.assert_array_equal(answer['total'], array.sum(axis=1))
  assert len(model.calls) < 32  # shared calls
  assert sum(count for _, count in model.calls) == sum(map(len, arrays))
  assert max(count for _, count in model.calls) <= 64


def test_a_lone_request_does_not_wait_for_the_window():
  model = Model()
  batcher = batching.Batcher(model, window=3600, max_rows=64)
  answer = run(concurrently(batcher, [rows(2, seed=0)]))[0]
  assert answer['double'].shape == (2, 3) and model.calls == [('k', 2)]


def test_a_batch_waits_for_a_request_still_being_read():
  model = Model()
  batcher = batching.Batcher(model, window=3600, max_rows=64)

  async def late_and_early():
    reading = contextlib.ExitStack()
    reading.enter_context(batcher.arriving())
    early = asyncio.ensure_future(batcher.run('k', rows(1, seed=1)))
    await asyncio.sleep(0.05)
    assert not early.done()  # waits: another request is on its way
    reading.close()
    late = asyncio.ensure_future(batcher.run('k', rows(2, seed=2)))
    return await asyncio.gather(early, late)

  answers = run(late_and_early())
  assert [len(a['total']) for a in answers] == [1, 2]
  assert model.calls == [('k', 3)]


def test_a_bad_request_fails_alone():
  model = Model()
  batcher = batching.Batcher(model, window=0.05, max_rows=64)
  arrays = [rows(2, seed=0), -rows(2, seed=1) - 1, rows(3, seed=2)]
  answers = run(concurrently(batcher, arrays))
  assert isinstance(answers[1], ValueError)
  for i in (0, 2):
    np.testing.assert_array_equal(answers[i]['double'], arrays[i] * 2)


@pytest.mark.parametrize('window', [0.002, 0])
def test_a_big_request_goes_in_chunks_of_max_rows(window):
  model = Model()
  batcher = batching.Batcher(model, window=window, max_rows=64)
  array = rows(1000, seed=3)
  answer = run(concurrently(batcher, [array]))[0]
  np.testing.assert_array_equal(answer['double'], array * 2)
  assert [count for _, count in model.calls] == [64] * 15 + [40]


def test_requests_for_other_signatures_or_shapes_never_share_a_call():
  model = Model()
  batcher = batching.Batcher(model, window=0.05, max_rows=64)

  async def mixed():
    return await asyncio.gather(
        concurrently(batcher, [rows(2, 0), rows(2, 1, width=4)], key='a'),
        concurrently(batcher, [rows(2, 2)], key='b'))

  (a3, a4), (b3,) = run(mixed())
  assert a3['double'].shape == (2, 3) and a4['double'].shape == (2, 4)
  assert b3['double'].shape == (2, 3)
  assert sorted(model.calls) == [('a', 2), ('a', 2), ('b', 2)]


def test_window_zero_calls_the_model_once_per_request():
  model = Model()
  batcher = batching.Batcher(model, window=0, max_rows=64)
  run(concurrently(batcher, [rows(1, seed=i) for i in range(8)]))
  assert [count for _, count in model.calls] == [1] * 8


def test_settings_default_and_read_from_the_environment():
  assert settings.read({}) == {'MAX_REQUEST_BYTES': 64_000_000,
                               'BATCH_WINDOW_MS': 2.0, 'BATCH_MAX_ROWS': 512}
  found = settings.read({'BATCH_WINDOW_MS': '0', 'BATCH_MAX_ROWS': ' 64 '})
  assert found['BATCH_WINDOW_MS'] == 0 and found['BATCH_MAX_ROWS'] == 64


@pytest.mark.parametrize('name, value', [
    ('BATCH_WINDOW_MS', 'two'), ('BATCH_WINDOW_MS', '-1'),
    ('BATCH_WINDOW_MS', 'inf'), ('BATCH_WINDOW_MS', 'nan'),
    ('BATCH_MAX_ROWS', '0'), ('BATCH_MAX_ROWS', '1.5'),
    ('MAX_REQUEST_BYTES', '1e6'),
])
def test_a_bad_setting_is_one_line_naming_the_default(name, value):
  with pytest.raises(settings.SettingError) as error:
    settings.read({name: value})
  message = str(error.value)
  assert message.startswith(f'{name}={value} is not a number of')
  assert 'default' in message and '\n' not in message
