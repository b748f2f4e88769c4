"""Micro-batching of concurrent parse requests behind a bounded queue.

Requests wait in an ``asyncio.Queue`` of bounded size; one worker takes up to
``max_batch`` of them, pads them into one batch (``batch_pad_right``, as
``SLUParser.load_batch`` does) and runs ``SLUParser.decode_batch`` in a single
worker thread, so the event loop keeps accepting and refusing requests while
the model runs. A full queue refuses at once (``QueueFull``), never blocks.

The worker waits for more requests (at most ``max_wait_ms``) only while other
requests are on their way (their bodies being read or decoded): a lone client
pays no waiting time; under load, requests that arrive while the model is
busy form the next batch by themselves.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from speechbrain.utils.data_utils import batch_pad_right


class QueueFull(Exception):
    """The queue holds ``max_queue`` requests already: try again later."""


@dataclass
class _Job:
    samples: torch.Tensor  # (samples,) mono at the model's sample rate
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class MicroBatcher:
    """Groups concurrent ``parse`` calls into batches for ``decode``.

    ``decode(wavs, wav_lens) -> (parses, confidences)`` is
    ``SLUParser.decode_batch``: wavs (batch, samples), wav_lens (batch,)
    relative lengths. ``max_batch``: most requests per batch (1 = one at a
    time); ``max_wait_ms``: longest wait for a batch to fill; ``max_queue``:
    most requests waiting (beyond it ``parse`` raises QueueFull);
    ``threads``: torch's intra-op threads in the worker thread (None: torch's
    default, one per core)."""

    def __init__(
        self, decode, max_batch: int = 8, max_wait_ms: float = 5.0, max_queue: int = 32, threads: int | None = None
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch ({max_batch}) and max_queue ({max_queue}) must be >= 1, max_wait_ms >= 0")
        self.decode = decode
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000, max_queue
        self.on_the_way = 0  # requests being read or decoded, not yet queued
        self.batches = 0  # batches run, and the requests in them (for /health)
        self.parsed = 0
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="stop-slu-model",
            initializer=torch.set_num_threads if threads else None,
            initargs=(threads,) if threads else (),
        )

    def start(self):
        """Start the worker (inside the running event loop)."""
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self):
        """Finish the queued requests, then stop the worker and its thread."""
        if self._worker is not None:
            await self._queue.join()
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._thread.shutdown(wait=True)

    @property
    def waiting(self) -> int:
        """Requests in the queue now."""
        return self._queue.qsize() if self._queue is not None else 0

    async def parse(self, samples: torch.Tensor) -> tuple[str, float]:
        """(parse, confidence) of one utterance, (samples,) float at the
        model's rate. Raises QueueFull at once when the queue is full, and
        what ``decode`` raises for its batch."""
        job = _Job(samples)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are waiting already") from None
        return await job.future

    async def _take_batch(self) -> list[_Job]:
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if self.on_the_way == 0 or remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    def _decode(self, batch: list[_Job]):
        wavs, wav_lens = batch_pad_right([job.samples for job in batch])
        return self.decode(wavs, wav_lens)

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._take_batch()
            try:
                parsed, confidences = await loop.run_in_executor(self._thread, self._decode, batch)
            except Exception as error:  # the batch's callers get the error; the worker goes on
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(error)
            else:
                for job, parse, confidence in zip(batch, parsed, confidences):
                    if not job.future.done():  # a caller that went away has cancelled its future
                        job.future.set_result((parse, confidence))
                self.batches += 1
                self.parsed += len(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()
