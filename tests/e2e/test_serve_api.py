"""``stop-slu serve``'s HTTP API as clients meet it: the same JSON as
``stop-slu parse``, and every bad request answered with a 4xx JSON error naming
the problem, after which a good request still succeeds."""

import http.client
import io
import json
import select
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli, start_server

RATE = 16000
BODY_LIMIT_MB = 20  # 10 minutes of 16 kHz 16-bit audio (19.2 MB) fit: refused for its length, not its size
BODY_TIMEOUT = 3


def _test_wavs(release):
    return sorted(Path(release, "test_0").rglob("*.wav"))


def _wav_bytes(samples, rate=RATE, subtype="PCM_16"):
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def request(server, method, path, body=None, headers=None):
    """(status, headers, parsed JSON or raw bytes) of one request on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        is_json = response.getheader("content-type", "").startswith("application/json")
        headers = {key.lower(): value for key, value in response.getheaders()}
        return response.status, headers, json.loads(data) if is_json else data
    finally:
        connection.close()


def read_response(client):
    """(status, parsed JSON) of the response arriving on a raw socket."""
    response = http.client.HTTPResponse(client)
    response.begin()
    return response.status, json.loads(response.read())


def post_audio(server, body, content_type="audio/wav"):
    return request(server, "POST", "/v1/parse", body, {"Content-Type": content_type})


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    uploads = tmp_path_factory.mktemp("server_tmp")
    running = start_server(
        trained[0],
        "--max-body-mb",
        BODY_LIMIT_MB,
        "--body-timeout",
        BODY_TIMEOUT,
        "--max-batch",
        2,
        "--max-queue",
        2,
        env={"TMPDIR": str(uploads)},
    )
    running.uploads = uploads
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clips(trained, mini_release, tmp_path_factory):
    """Files sent in the tests, and what ``stop-slu parse`` prints for them (one CLI call)."""
    folder = tmp_path_factory.mktemp("clips")
    good = _test_wavs(mini_release)[0]
    mono, rate = sf.read(good, dtype="float32")
    stereo_8k = folder / "stereo_8k.wav"
    eight_k = mono[::2]  # a rough 8 kHz version: what matters is that both sides read the same file
    sf.write(stereo_8k, np.stack([eight_k, 0.5 * eight_k], axis=1), 8000)
    flac = folder / "good.flac"
    sf.write(flac, mono, rate)
    files = {"good": good, "stereo_8k": stereo_8k, "flac": flac}
    # one call, so one padded batch: batching changes no parse
    parsed = [json.loads(line) for line in run_cli("parse", trained[0], *files.values()).stdout.splitlines()]
    return {name: (path, answer) for (name, path), answer in zip(files.items(), parsed)}


def without_file(answer):
    return {key: value for key, value in answer.items() if key != "file"}


def assert_good_request_succeeds(server, clips):
    path, expected = clips["good"]
    status, _, answer = post_audio(server, path.read_bytes())
    assert status == 200, answer
    assert answer == without_file(expected)


def assert_refused(server, clips, status, answer, code, *words):
    assert status == code, answer
    assert answer["status"] == code and all(word in answer["error"] for word in words), answer
    assert_good_request_succeeds(server, clips)


def test_the_api_answers_what_parse_prints(server, clips):
    for name in ("good", "flac", "stereo_8k"):  # 8 kHz stereo: resampled and down-mixed, as parse does
        path, expected = clips[name]
        status, headers, answer = post_audio(server, path.read_bytes(), "audio/flac" if name == "flac" else "audio/wav")
        assert status == 200, (name, answer)
        assert answer == without_file(expected), name
        assert headers["server-timing"].startswith("parse;dur=")
    status, _, model = request(server, "GET", "/v1/model")
    assert status == 200 and model["config"]["sample_rate"] == RATE
    assert model["labels"]["intents"] and model["labels"]["slots"]
    assert model["limits"]["max_body_bytes"] == BODY_LIMIT_MB * 1024 * 1024 and model["limits"]["max_queue"] == 2
    assert model["examples"] and all(e["reference"].startswith("[IN:") for e in model["examples"])
    status, _, health = request(server, "GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["parsed"] >= 3
    status, _, schema = request(server, "GET", "/openapi.json")
    assert status == 200 and {"/v1/parse", "/v1/model", "/health"} <= set(schema["paths"])
    assert "audio/wav" in schema["paths"]["/v1/parse"]["post"]["requestBody"]["content"]


def test_concurrent_requests_batched_together_answer_what_parse_prints(server, clips):
    """Requests that share a model batch get what ``parse`` prints for each
    file: an answer never depends on the clips it was batched with."""
    from concurrent.futures import ThreadPoolExecutor

    names = ["good", "stereo_8k", "flac"] * 4
    _, _, before = request(server, "GET", "/health")
    with ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(lambda name: post_audio(server, clips[name][0].read_bytes()), names))
    _, _, after = request(server, "GET", "/health")
    ok = [(name, answer) for name, (status, _, answer) in zip(names, answers) if status == 200]
    assert len(ok) >= 3 and all(status in (200, 503) for status, _, _ in answers)  # the queue holds 2
    assert all(answer == without_file(clips[name][1]) for name, answer in ok)
    assert after["parsed"] - before["parsed"] > after["batches"] - before["batches"]  # some batch held two


def test_an_empty_body_is_refused(server, clips):
    assert_refused(server, clips, *post_audio(server, b"")[::2], 400, "empty body")


def test_text_and_images_are_refused(server, clips):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
    assert_refused(server, clips, *post_audio(server, b"turn the lights on")[::2], 400, "not an audio file")
    assert_refused(server, clips, *post_audio(server, png)[::2], 400, "not an audio file")
    assert_refused(server, clips, *post_audio(server, png, "image/png")[::2], 415, "'image/png' is not audio")
    assert_refused(server, clips, *post_audio(server, b"hello", "text/plain")[::2], 415, "is not audio")


def test_a_wrong_content_type_is_refused(server, clips):
    good = clips["good"][0].read_bytes()
    for kind in ("application/json", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"):
        assert_refused(server, clips, *post_audio(server, good, kind)[::2], 415, "Content-Type: audio/wav")


def test_a_truncated_wav_and_a_lying_header_are_refused(server, clips):
    good = clips["good"][0].read_bytes()
    assert_refused(server, clips, *post_audio(server, good[: len(good) // 2])[::2], 400, "truncated")
    data = good.index(b"data")
    lying = good[: data + 4] + struct.pack("<I", 10 * len(good)) + good[data + 8 :]
    assert_refused(server, clips, *post_audio(server, lying)[::2], 400, "truncated", "header promises")
    assert_refused(server, clips, *post_audio(server, good[:30])[::2], 400)  # cut inside the header


def test_ten_minutes_of_audio_are_refused_for_their_length(server, clips):
    body = _wav_bytes(np.zeros(10 * 60 * RATE, "int16"))
    assert len(body) < BODY_LIMIT_MB * 1024 * 1024
    assert_refused(server, clips, *post_audio(server, body)[::2], 400, "audio too long (600.0 s)", "split it")


def test_too_short_audio_is_refused(server, clips):
    assert_refused(server, clips, *post_audio(server, _wav_bytes(np.zeros(80, "int16")))[::2], 400, "too short")


def test_nan_and_infinite_samples_are_refused(server, clips):
    for bad in (np.nan, np.inf, -np.inf):
        samples = np.full(RATE, 0.1, "float32")
        samples[100] = bad
        body = _wav_bytes(samples, subtype="FLOAT")
        assert_refused(server, clips, *post_audio(server, body)[::2], 400, "NaN or infinite")


def test_a_body_over_the_limit_is_refused_before_it_is_all_read(server, clips):
    limit = BODY_LIMIT_MB * 1024 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:  # refused from its headers
        client.sendall(
            b"POST /v1/parse HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )
        status, answer = read_response(client)
    assert_refused(server, clips, status, answer, 413, f"body of {limit + 1} bytes is over the limit")
    assert_good_request_succeeds(server, clips)
    # no Content-Length (chunked): the server must answer once the limit is passed, while the client still sends
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(
            b"POST /v1/parse HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n" % 65536 + b"\x00" * 65536 + b"\r\n"
        sent = 0
        while not select.select([client], [], [], 0)[0]:
            try:
                client.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 65536
            assert sent < 4 * limit, "the server read four times its limit without answering"
        status, answer = read_response(client)
    assert_refused(server, clips, status, answer, 413, "body over the limit")


def test_a_slow_body_is_cut_off(server, clips):
    good = clips["good"][0].read_bytes()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as client:
        client.sendall(
            b"POST /v1/parse HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
            + f"Content-Length: {len(good)}\r\n\r\n".encode()
            + good[:100]
        )
        started = time.monotonic()
        status, answer = read_response(client)  # the rest of the body never comes
        waited = time.monotonic() - started
    assert waited < 30 * BODY_TIMEOUT  # cut off, not left hanging (generous: the machine may be loaded)
    assert_refused(server, clips, status, answer, 408, f"not received within {BODY_TIMEOUT} s")


def test_a_full_queue_answers_503_with_retry_after_at_once(server, clips):
    body = clips["good"][0].read_bytes()
    answers = []

    def one():
        answers.append(post_audio(server, body))

    threads = [threading.Thread(target=one) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    statuses = [status for status, _, _ in answers]
    assert len(answers) == 24 and set(statuses) <= {200, 503}, statuses
    assert 200 in statuses and 503 in statuses, statuses
    for status, headers, answer in answers:
        if status == 503:
            assert headers["retry-after"] == "1" and "busy" in answer["error"]
        else:
            assert answer == without_file(clips["good"][1])
    assert_good_request_succeeds(server, clips)


def test_uploads_leave_nothing_on_disk_and_cross_origin_is_off(server, clips):
    status, headers, _ = request(server, "GET", "/v1/model", headers={"Origin": "https://elsewhere.example"})
    assert status == 200 and "access-control-allow-origin" not in headers
    status, headers, _ = request(
        server,
        "OPTIONS",
        "/v1/parse",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in headers
    assert_good_request_succeeds(server, clips)
    folders = list(server.uploads.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("stop-slu-serve-")
    assert list(folders[0].iterdir()) == []


def test_shutdown_answers_the_request_in_flight(trained, clips, tmp_path):
    server = start_server(trained[0], "--cors-origin", "https://app.example", env={"TMPDIR": str(tmp_path)})
    good = clips["good"][0].read_bytes()
    try:
        status, headers, _ = request(server, "GET", "/v1/model", headers={"Origin": "https://app.example"})
        assert headers.get("access-control-allow-origin") == "https://app.example"
        with socket.create_connection(("127.0.0.1", server.port), timeout=120) as client:
            client.sendall(
                b"POST /v1/parse HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                + f"Content-Length: {len(good)}\r\n\r\n".encode()
                + good[: len(good) // 2]
            )
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)  # while the request is half sent
            time.sleep(0.5)
            client.sendall(good[len(good) // 2 :])
            status, answer = read_response(client)
        assert status == 200 and answer == without_file(clips["good"][1])
        assert server.process.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has stopped
        assert list(tmp_path.iterdir()) == []  # the upload folder is gone with the server
    finally:
        server.stop()


def test_serving_options_out_of_range_are_refused_in_one_line(tmp_path):
    result = run_cli("serve", tmp_path, "--threads", "0", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: --threads 0: must be 1 or more"


def test_binding_beyond_this_machine_is_announced(tmp_path):
    result = run_cli("serve", tmp_path / "no_model", "--host", "0.0.0.0", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "warning: --host 0.0.0.0: the service is reachable from other machines" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
