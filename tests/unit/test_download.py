"""Fetching the release: a mini-STOP served as stop.tar.gz from a local HTTP
server, a download killed half-way and resumed, an interrupted extraction
finished, and the prepared CSVs equal to those of the unpacked tree."""

import csv
import http.server
import io
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from stop_slu.data_prep.download import MARKER_NAME, DownloadError, download, ensure_release
from stop_slu.data_prep.prepare import prepare
from stop_slu.stages import prepare_data


@pytest.fixture(scope="module")
def archive(mini_release):
    """stop.tar.gz of the mini release, laid out as Meta's (``stop/manifests/...``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(mini_release, arcname="stop")
    return buffer.getvalue()


class Server:
    """Serves ``data`` at /stop.tar.gz with HTTP Range support. ``hang_once``:
    the first response stops half-way and waits until ``release`` is set;
    ``cut_once``: the first response stops half-way and closes."""

    def __init__(self, data, hang_once=False, cut_once=False):
        self.data, self.ranges = data, []
        self.hang_once, self.cut_once = hang_once, cut_once
        self.half_sent, self.release = threading.Event(), threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/stop.tar.gz":
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                server.ranges.append(header)
                start = int(header.split("=")[1].rstrip("-")) if header else 0
                body = server.data[start:]
                self.send_response(206 if header else 200)
                if header:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.data) - 1}/{len(server.data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.hang_once or server.cut_once:
                    hang = server.hang_once
                    server.hang_once = server.cut_once = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    server.half_sent.set()
                    if hang:
                        server.release.wait(120)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stop.tar.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def csv_rows(folder, root):
    """Every CSV row with the wav path relative to the release root."""
    out = {}
    for split in ("train", "eval", "test"):
        with open(folder / f"{split}.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            row["wav"] = os.path.relpath(row["wav"], os.path.realpath(root))
        out[split] = rows
    return out


def hparams(data_folder, out, url):
    return {
        "data_folder": str(data_folder),
        "data_url": url,
        "prepare_folder": str(out / "data"),
        "skip_prep": False,
        "force_prep": False,
        "train_split": "train",
        "valid_split": "eval",
        "test_split": "test",
        "domains": None,
        "target_column": "decoupled_normalized_seqlogical",
    }


def test_download_killed_half_way_resumes_and_prepares_the_same_csvs(archive, mini_release, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with Server(archive, hang_once=True) as server:
        code = "import sys; from stop_slu.data_prep.download import ensure_release as e; e(sys.argv[1], sys.argv[2])"
        child = subprocess.Popen([sys.executable, "-c", code, str(data), server.url], stderr=subprocess.DEVNULL)
        try:
            assert server.half_sent.wait(120)
            part = data / "stop.tar.gz.part"
            for _ in range(600):  # until the child has written what it received
                if part.is_file() and part.stat().st_size >= len(archive) // 2:
                    break
                time.sleep(0.1)
            child.send_signal(signal.SIGKILL)
            child.wait()
        finally:
            server.release.set()
        kept = part.stat().st_size
        assert 0 < kept < len(archive) and not (data / "stop.tar.gz").exists()

        prepare_data(hparams(data, tmp_path / "out", server.url))  # the recipe's first stage
        assert server.ranges == [None, f"bytes={kept}-"]
    assert (data / "stop.tar.gz").read_bytes() == archive
    assert (data / MARKER_NAME).is_file() and not part.exists()

    prepare(mini_release, tmp_path / "unpacked", target="decoupled_normalized_seqlogical", progress=False)
    assert csv_rows(tmp_path / "out" / "data", data / "stop") == csv_rows(tmp_path / "unpacked", mini_release)


def test_an_interrupted_extraction_is_finished(archive, mini_release, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "stop.tar.gz").write_bytes(archive)
    ensure_release(data, "http://127.0.0.1:9/never-used", progress=False)
    wavs = sorted((data / "stop").glob("train/*/*.wav"))
    # As if killed while extracting: no marker, a file cut short, a file not yet written.
    (data / MARKER_NAME).unlink()
    original = wavs[0].read_bytes()
    wavs[0].write_bytes(original[:100])
    wavs[1].unlink()
    ensure_release(data, "http://127.0.0.1:9/never-used", progress=False)
    assert wavs[0].read_bytes() == original and wavs[1].is_file()
    assert (data / MARKER_NAME).is_file()
    # Complete now: nothing is read again (no archive needed).
    (data / "stop.tar.gz").unlink()
    assert ensure_release(data, "http://127.0.0.1:9/never-used", progress=False) == data / "stop"


def test_a_cut_connection_is_one_line_then_resumes(archive, tmp_path):
    with Server(archive, cut_once=True) as server:
        with pytest.raises(DownloadError, match="run again to resume") as error:
            download(server.url, tmp_path / "stop.tar.gz", progress=False)
        assert "\n" not in str(error.value)
        download(server.url, tmp_path / "stop.tar.gz", progress=False)
        assert server.ranges[1] == f"bytes={len(archive) // 2}-"
    assert (tmp_path / "stop.tar.gz").read_bytes() == archive


def test_a_wrong_address_is_one_line(archive, tmp_path):
    with Server(archive) as server, pytest.raises(DownloadError, match="HTTP 404.*data_url"):
        download(server.url.replace("stop.tar.gz", "nothing"), tmp_path / "stop.tar.gz", progress=False)
    with pytest.raises(DownloadError, match="cannot download"):
        download("http://127.0.0.1:9/stop.tar.gz", tmp_path / "stop.tar.gz", progress=False)


def test_a_release_already_there_is_used_as_it_is(mini_release):
    assert ensure_release(mini_release, "http://127.0.0.1:9/never-used", progress=False) == mini_release
