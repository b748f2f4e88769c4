"""The ASGI application of ``stop-slu serve``: the page, the parse API, health.

Routes:

- ``GET /``: the page (static assets under ``/static``; nothing from elsewhere);
- ``POST /v1/parse``: the bytes of one audio file (any format ``stop-slu parse``
  reads) -> the JSON ``stop-slu parse`` prints for it, without ``file``;
- ``GET /v1/model``: config, labels, limits, example clips;
- ``GET /v1/examples/{index}``: an example clip's audio;
- ``GET /health``; ``GET /docs`` and ``/openapi.json`` (FastAPI's).

Every refusal is a JSON object ``{"error": "reason; what to do", "status": N}``:
400 bad audio, 408 body too slow, 413 body too large, 415 wrong content
type, 503 queue full (with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from stop_slu import parses
from stop_slu.data_prep.audio import AudioError, audio_info, load_audio
from stop_slu.inference import describe
from stop_slu.serve.batcher import MicroBatcher, QueueFull
from stop_slu.serve.examples import Example

STATIC = Path(__file__).parent / "static"
ACCEPTED_TYPES = ("audio/", "application/octet-stream")
log = logging.getLogger("stop_slu.serve")


@dataclass(frozen=True)
class ServeConfig:
    """Limits and switches of the service.

    max_body_bytes: largest request body, enforced while reading it;
    body_timeout_s: longest time a client may take to send its body;
    max_batch / max_wait_ms / max_queue: see ``MicroBatcher``;
    retry_after_s: the ``Retry-After`` of a 503;
    cors_origins: origins allowed to call the API from their pages (none: CORS off);
    low_confidence: below it the page warns that the parse may be wrong;
    threads: torch threads of the model's worker (1: measured fastest on a
    2-core machine, where the server's own threads need the other core;
    benchmarks/README.md, "Serving under load")."""

    max_body_bytes: int = 25 * 1024 * 1024
    body_timeout_s: float = 30.0
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 32
    retry_after_s: int = 1
    cors_origins: tuple[str, ...] = ()
    low_confidence: float = -0.85
    threads: int = 1


class Slot(BaseModel):
    label: str
    text: str


class ParseResult(BaseModel):
    """What ``stop-slu parse`` prints for a file, without ``file``."""

    parse: str
    intent: str | None
    slots: list[Slot]
    confidence: float


class Error(BaseModel):
    error: str
    status: int


class Refused(Exception):
    """A request answered with an error status; ``message`` says why and what to do."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


ERRORS = {code: {"model": Error} for code in (400, 408, 413, 415, 503)}
AUDIO_BODY = {
    "requestBody": {
        "required": True,
        "description": "the bytes of one audio file (wav, flac, ogg...; any sample rate, stereo is down-mixed)",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ("audio/wav", "audio/*")},
    }
}


def _labels(parser) -> dict:
    labels = parser.labels
    return {
        "intents": sorted(label[4:] for label in labels if label.startswith("[IN:")),
        "slots": sorted(label[4:] for label in labels if label.startswith("[SL:")),
    }


async def _read_body(request: Request, config: ServeConfig) -> bytes:
    """The request body, refused as soon as it grows past the limit or takes too long."""
    limit = config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"body of {int(declared)} bytes is over the limit of {limit} bytes; send a shorter clip")
    chunks, size = [], 0

    async def receive_all():
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"body over the limit of {limit} bytes; send a shorter clip")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(receive_all(), config.body_timeout_s)
    except asyncio.TimeoutError:
        raise Refused(
            408, f"body not received within {config.body_timeout_s:g} s ({size} bytes came); send it at once"
        ) from None
    return b"".join(chunks)


def _check_content_type(request: Request):
    kind = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    if not kind.startswith(ACCEPTED_TYPES):
        raise Refused(
            415,
            f"content type {kind!r} is not audio; send the audio file's bytes as the body with "
            "Content-Type: audio/wav (or another audio/* type, or application/octet-stream)",
        )


def create_app(parser, config: ServeConfig = ServeConfig(), examples: list[Example] = (), name: str = "model"):
    """The FastAPI application serving ``parser`` (an ``SLUParser`` or an
    ``OnnxParser``, loaded already). ``examples`` are the page's clips; ``name`` is shown on the page."""
    rate = parser.sample_rate
    shortest, longest = parser.supported_duration()  # computed now, not in the first request
    batcher = MicroBatcher(
        parser.decode_batch, config.max_batch, config.max_wait_ms, config.max_queue, threads=config.threads
    )
    state = {}
    output_form = parses.decouple_if_valid if parser.decouple_output else str  # as the model answers
    references = [e.reference and output_form(e.reference) for e in examples]

    @asynccontextmanager
    async def lifespan(app):
        with tempfile.TemporaryDirectory(prefix="stop-slu-serve-") as uploads:
            state["uploads"] = Path(uploads)
            batcher.start()
            try:
                yield
            finally:
                await batcher.stop()  # the requests in flight are answered first

    app = FastAPI(
        title="stop-slu serve",
        summary="Spoken language understanding: audio in, STOP semantic parse out.",
        version="1",
        lifespan=lifespan,
        docs_url="/docs",
    )
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"])

    @app.exception_handler(Refused)
    async def refused(request, error: Refused):
        headers = dict(error.headers)
        if error.status in (408, 413):  # the rest of the body is not read: the connection cannot be reused
            headers["Connection"] = "close"
        return JSONResponse({"error": error.message, "status": error.status}, error.status, headers=headers)

    def decode_upload(body: bytes) -> torch.Tensor:
        """Mono float samples at the model's rate, read the way ``stop-slu parse`` reads a file
        with a PyTorch model (any rate resampled, stereo down-mixed), whichever parser serves."""
        path = state["uploads"] / f"{uuid.uuid4().hex}.audio"
        try:
            path.write_bytes(body)
            info = audio_info(path)
            reason = parser.check_length(info.frames, info.sample_rate)
            if reason is None:
                samples = load_audio(path, rate)
        except AudioError as error:
            reason = str(error).replace(f"{path}: ", "")
        finally:
            path.unlink(missing_ok=True)
        if reason:
            raise Refused(400, f"{reason}; send a wav (or flac, ogg) of one utterance")
        if not np.isfinite(samples).all():
            raise Refused(400, "audio holds NaN or infinite samples; send finite samples in [-1, 1]")
        return torch.from_numpy(samples)

    @app.post(
        "/v1/parse",
        response_model=ParseResult,
        responses=ERRORS,
        openapi_extra=AUDIO_BODY,
        summary="Parse one audio file",
    )
    async def parse(request: Request):
        """The body is one audio file's bytes; the answer is the JSON ``stop-slu parse`` prints for it."""
        _check_content_type(request)
        started = time.perf_counter()
        batcher.on_the_way += 1
        try:
            try:
                body = await _read_body(request, config)
            except ClientDisconnect:
                return Response(status_code=400)
            if not body:
                raise Refused(400, "empty body; send the audio file's bytes as the request body")
            samples = await run_in_threadpool(decode_upload, body)
        finally:
            batcher.on_the_way -= 1
        try:
            found, confidence = await batcher.parse(samples)
        except QueueFull as error:
            raise Refused(
                503, f"busy: {error}; retry in {config.retry_after_s} s", {"Retry-After": str(config.retry_after_s)}
            ) from None
        elapsed = (time.perf_counter() - started) * 1000
        return JSONResponse(
            {**describe(found), "confidence": confidence}, headers={"Server-Timing": f"parse;dur={elapsed:.1f}"}
        )

    @app.get("/v1/model", summary="The model: config, labels, limits, example clips")
    async def model():
        return {
            "name": name,
            "config": {
                "sample_rate": rate,
                "beam_size": parser.search.beam_size,
                "trained_with": parser.overrides,
            },
            "labels": _labels(parser),
            "limits": {
                "shortest_seconds": shortest,
                "longest_seconds": longest,
                "max_body_bytes": config.max_body_bytes,
                "body_timeout_seconds": config.body_timeout_s,
                "max_batch": config.max_batch,
                "max_wait_ms": config.max_wait_ms,
                "max_queue": config.max_queue,
            },
            "low_confidence": config.low_confidence,
            "examples": [{"index": i, "text": e.text, "reference": references[i]} for i, e in enumerate(examples)],
        }

    @app.get("/v1/examples/{index}", summary="An example clip's audio", responses={404: {"model": Error}})
    async def example(index: int):
        if not 0 <= index < len(examples):
            raise Refused(404, f"no example {index}; there are {len(examples)} (GET /v1/model lists them)")
        return Response(examples[index].audio, media_type="audio/wav")

    @app.get("/health", summary="Liveness and load")
    async def health():
        return {"status": "ok", "waiting": batcher.waiting, "batches": batcher.batches, "parsed": batcher.parsed}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(
            STATIC / "index.html",
            headers={
                "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; "
                "connect-src 'self' blob:; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
