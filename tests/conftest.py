"""Shared fixtures: a small mini-STOP synthesised once per test session, its
prepared CSVs, and a tiny model trained through the real recipe.

tests/unit/ holds the tests of one module each, with no model training;
tests/e2e/ trains real tiny models through the recipe and the CLI. Every test
in tests/e2e/ is marked ``slow``, and so are the few unit tests that run the
CLI in a subprocess (seconds each: torch and SpeechBrain load);
``pytest -m "not slow"`` runs the rest in under a minute."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf
import yaml

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs a worker per core: torch there, and in the CLI subprocesses
    # that inherit the variable, takes one thread instead of every core each
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from stop_slu.data_prep.release import DOMAINS, candidate_paths  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # nothing from the Hugging Face hub
TOPV2 = REPO.parent / "shared" / "topv2"

# A model small enough to train a few steps in seconds on 2 CPU cores.
TINY = [
    "--d_model=32",
    "--nhead=2",
    "--d_ffn=64",
    "--num_encoder_layers=1",
    "--num_decoder_layers=1",
    "--vocab_size=1000",
    "--test_beam_size=2",
    "--max_decode_ratio=0.3",
    "--avg_checkpoints=2",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.slow)
        # pytest-xdist (-n, --dist loadgroup): a module's tests run on one worker, so its module-scoped
        # fixtures are built once; the config matrix's tests, each minutes of work, spread over the workers
        if item.path.name != "test_every_config.py":
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


def shared(tmp_path_factory, name: str, build) -> Path:
    """The folder ``name`` for a session fixture, filled by ``build(folder)``
    once for the whole run: under pytest-xdist the first worker builds it while
    holding a lock, the others wait for it and reuse it."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # common to the workers
    folder, done = root / name, root / f"{name}.done"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def run_cli(*args, check=True, timeout=900, env=None):
    """Run ``stop-slu ARGS`` as a real subprocess; returns CompletedProcess."""
    result = subprocess.run(
        [sys.executable, "-m", "stop_slu.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"stop-slu {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


FAST = [*TINY, "--max_decode_ratio=0.05"]  # an untrained model's test decoding stops early
FEW_DOMAINS = ("alarm", "timer", "weather")  # fewer utterances, quicker runs
SOME_DOMAINS = f"--domains=[{','.join(FEW_DOMAINS)}]"


def train_command(data, out, *extra):
    """The command line of ``stop-slu train mini`` with the FAST tiny model, as
    a list for subprocess (tests that kill a run, then start it again)."""
    return [
        sys.executable,
        "-m",
        "stop_slu.cli",
        "train",
        "mini",
        f"--data_folder={data}",
        f"--output_folder={out}",
        *FAST,
        *extra,
    ]


def train(data, out, *extra, check=True, env=None):
    """``stop-slu train mini`` with the FAST tiny model on ``data`` into ``out``."""
    return run_cli(
        "train", "mini", f"--data_folder={data}", f"--output_folder={out}", *FAST, *extra, check=check, env=env
    )


def checkpoints(save):
    """{folder name: (end of epoch?, epoch counter)} of the complete checkpoints in ``save``:
    those the recipe would load (a manifest seen while it is being written does not count)."""
    from stop_slu.checkpoints import checkpoint_is_complete

    found = {}
    for manifest in save.glob("CKPT+*/MANIFEST.json"):  # written last (stop_slu/checkpoints.py)
        meta = manifest.parent / "CKPT.yaml"
        if not checkpoint_is_complete(manifest.parent):
            continue
        try:
            found[meta.parent.name] = (
                yaml.safe_load(meta.read_text())["end-of-epoch"],
                (meta.parent / "counter.ckpt").read_text(),
            )
        except FileNotFoundError:  # pruned by the run meanwhile
            pass
    return found


WATCH = REPO / "tests" / "watch"


def watched(log, under=None, refuse_network=True):
    """Environment for a subprocess watched by tests/watch/sitecustomize.py:
    events go to ``log``; file writes are recorded ``under`` a folder."""
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(WATCH), os.environ.get("PYTHONPATH")])),
        "STOP_SLU_WATCH": str(log),
    }
    if under:
        env["STOP_SLU_WATCH_UNDER"] = str(under)
    if refuse_network:
        env["STOP_SLU_NO_NETWORK"] = "1"
    return env


def kill_in_epoch_2(command, out, timeout=300):
    """Start the training ``command`` (writing to ``out``) and SIGKILL it once a
    mid-epoch checkpoint of its second epoch is on disk."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while (False, "2") not in checkpoints(out / "save").values():
            assert process.poll() is None and time.time() < deadline, "no mid-epoch checkpoint in epoch 2"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def mini_release(tmp_path_factory):
    """A mini-STOP release made by the CLI: 80 train, 8+8 eval, 8+8 test utterances."""
    return shared(
        tmp_path_factory,
        "mini_stop",
        lambda out: run_cli("synth", out, "--train", 80, "--valid", 8, "--test", 8, "--seed", 3, "--quiet"),
    )


@pytest.fixture(scope="session")
def prepared(mini_release, tmp_path_factory):
    from stop_slu.data_prep.prepare import prepare

    save = tmp_path_factory.mktemp("prepared")
    report = prepare(mini_release, save, progress=False)
    return save, report


@pytest.fixture(scope="session")
def trained(mini_release, tmp_path_factory):
    """(output folder, CompletedProcess) of a tiny model trained via the CLI."""

    def build(folder):
        result = run_cli(
            "train",
            "mini",
            f"--data_folder={mini_release}",
            f"--output_folder={folder / 'out'}",
            "--number_of_epochs=3",
            "--lr_adam=15e-4",
            *TINY,  # an exponent without a dot is a number too
        )
        (folder / "result.json").write_text(json.dumps([result.args, result.returncode, result.stdout, result.stderr]))

    folder = shared(tmp_path_factory, "trained", build)
    return folder / "out", subprocess.CompletedProcess(*json.loads((folder / "result.json").read_text()))


def make_tiny_whisper(folder: Path) -> Path:
    """A tiny randomly initialised Whisper saved like a hub model (config,
    weights, feature extractor, tokenizer), built offline: the tokenizer is a
    byte-level BPE over the 256 byte symbols, a few merges and Whisper's
    special tokens (an English-only layout: prefix <|startoftranscript|><|notimestamps|>)."""
    import torch
    import transformers
    from tokenizers import pre_tokenizers

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = [("Ġ", "t"), ("Ġ", "a"), ("e", "r"), ("Ġ", "s"), ("Ġt", "o")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    if int(transformers.__version__.split(".")[0]) >= 5:  # the tokenizers-backed class takes them as data
        tokenizer = transformers.WhisperTokenizer(vocab=vocab, merges=merges)
    else:  # the Python class reads files
        (folder / "vocab.json").write_text(json.dumps(vocab))
        (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        tokenizer = transformers.WhisperTokenizer(
            vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt")
        )
    specials = ["<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>"]
    specials += ["<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>", "<|0.00|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.save_pretrained(folder)
    config = transformers.WhisperConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    transformers.WhisperForConditionalGeneration(config).save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory):
    """Folder of a tiny randomly initialised Whisper (``--whisper_hub=DIR``); nothing is downloaded."""
    pytest.importorskip("transformers", reason="the Whisper config needs the ssl extra (transformers)")
    return shared(tmp_path_factory, "tiny_whisper", make_tiny_whisper)


@pytest.fixture(scope="session")
def tiny_ssl(tmp_path_factory):
    """Folders of a tiny randomly initialised WavLM and HuBERT, saved like hub models
    (``--ssl_hub=DIR``), with the large models' layout (layer-normalised CNN,
    pre-norm transformer); nothing is downloaded."""
    pytest.importorskip("transformers", reason="the SSL configs need the ssl extra (transformers)")
    models = {"wavlm": ("WavLMConfig", "WavLMModel"), "hubert": ("HubertConfig", "HubertModel")}
    return {
        name: shared(tmp_path_factory, f"tiny_{name}", lambda folder, classes=classes: save_tiny_ssl(folder, *classes))
        for name, classes in models.items()
    }


def save_tiny_ssl(folder: Path, config: str, model: str) -> None:
    """A tiny random ``transformers`` SSL model (``config``, ``model``: class names) saved in ``folder``."""
    import torch
    import transformers

    cfg = getattr(transformers, config)(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
    )
    torch.manual_seed(0)
    getattr(transformers, model)(cfg).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)


def build_ssl_config(name, ssl_folder, tmp_path):
    """hparams/conformer_NAME.yaml built with the tiny SSL model in ``ssl_folder`` and a tiny conformer."""
    from hyperpyyaml import load_hyperpyyaml

    with open(REPO / "hparams" / f"conformer_{name}.yaml", encoding="utf-8") as f:
        return load_hyperpyyaml(
            f,
            {
                "data_folder": str(tmp_path),
                "output_folder": str(tmp_path / "out"),
                "output_neurons": 50,
                "ssl_hub": str(ssl_folder),
                "d_model": 32,
                "nhead": 2,
                "d_ffn": 64,
                "num_encoder_layers": 1,
                "num_decoder_layers": 1,
            },
        )


# -- STOP's low-resource files, written for a mini-STOP (low-resource and fine-tuning tests) --


def read_csv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def manifest(release, split, domain):
    with open(release / "manifests" / f"{split}.tsv", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row for row in rows if row["domain"] == domain]


def complete_domains(release):
    """Domains with rows in train, eval and test (a small mini-STOP lacks some)."""
    return [
        d
        for d in dict.fromkeys(("reminder", "weather", *DOMAINS))
        if all(manifest(release, split, d) for split in ("train", "eval", "test"))
    ]


def held_out_domain(release):
    """Reminder as in STOP's low-resource splits, else the first complete domain."""
    return complete_domains(release)[0]


def write_low_resource_files(release, folder, domain):
    """STOP-style low-resource files for one domain of a mini-STOP: a foreign
    root folder on line 1, then ``path<TAB>num_samples``; the train file repeats
    two lines and has one unknown and one malformed line, the valid file names
    the folders as the disk does (no take suffix)."""
    folder.mkdir()

    def line(file_id, path_as_written):
        disk = next(p for p in candidate_paths(release, file_id) if p.is_file())
        return f"{path_as_written}\t{sf.info(disk).frames}"

    train = [line(r["file_id"], r["file_id"]) for r in manifest(release, "train", domain)]
    valid = [
        line(
            r["file_id"],
            str(next(p for p in candidate_paths(release, r["file_id"]) if p.is_file()).relative_to(release)),
        )
        for r in manifest(release, "eval", domain)
    ]
    test = [line(r["file_id"], r["file_id"]) for r in manifest(release, "test", domain)]
    files = {
        "train_25spis": train + train[:2] + [f"train/{domain}_train/09999999.wav\t16000", "not a line"],
        "valid_25spis": valid,
        "test": test,
    }
    for name, lines in files.items():
        (folder / f"{domain}_{name}.tsv").write_text("/private/home/someone/stop\n" + "\n".join(lines) + "\n")
        (folder / f"{domain}_{name}.ltr").write_text("ignored: not a manifest\n")
    return {"train": len(train), "valid": len(valid), "test": len(test)}


@pytest.fixture(scope="session")
def low_resource(mini_release, tmp_path_factory):
    """(prepared folder, held-out domain, expected counts, CompletedProcess) of
    `stop-slu prepare --domains <held-in> --low-resource <held-out domain's files>`."""
    tmp = tmp_path_factory.mktemp("low_resource")
    domain = held_out_domain(mini_release)
    expected = write_low_resource_files(mini_release, tmp / "low_resource_splits", domain)
    held_in = ",".join(d for d in DOMAINS if d != domain)
    result = run_cli(
        "prepare",
        mini_release,
        tmp / "prepared",
        "--domains",
        held_in,
        "--low-resource",
        tmp / "low_resource_splits",
        "--quiet",
    )
    return tmp / "prepared", domain, expected, result


# -- stop-slu serve: a real server in a subprocess (page, API and load tests) --


class Server:
    """A running ``stop-slu serve`` subprocess: ``url`` (http://127.0.0.1:PORT), ``process``."""

    def __init__(self, process, url):
        self.process, self.url = process, url
        self.port = int(url.rsplit(":", 1)[1].strip("/"))

    def stop(self, timeout=60):
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_server(model, *options, env=None, timeout=180) -> Server:
    """``stop-slu serve MODEL --port 0 OPTIONS`` started; returns once it prints its address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stop_slu.cli", "serve", str(model), "--port", "0", *map(str, options)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **OFFLINE, **(env or {})},
    )
    deadline = time.time() + timeout
    for line in process.stdout:  # "serving NAME at http://127.0.0.1:PORT/  (...)"
        if line.startswith("serving ") and " at http://" in line:
            return Server(process, line.split(" at ")[1].split()[0].rstrip("/"))
        if time.time() > deadline:
            break
    process.kill()
    raise AssertionError(f"stop-slu serve {model} did not start (exit status {process.wait()})")


class Snapshots(threading.Thread):
    """At random moments, copies every file under ``live`` in random order into a new folder
    under ``into`` (``taken``: the copies finished): a checkpoint folder synced file by file."""

    def __init__(self, live: Path, into: Path, seed: int, pause=(0, 0.03)):
        super().__init__(daemon=True)
        self.live, self.into, self.rng, self.done, self.taken = live, into, random.Random(seed), False, []
        self.pause = pause  # seconds between copies: drawn uniformly in this range

    def run(self):
        while not self.done:
            time.sleep(self.rng.uniform(*self.pause))
            copy = self.into / f"snapshot{len(self.taken):03d}"
            files = [Path(root) / name for root, _, names in os.walk(self.live) for name in names]
            self.rng.shuffle(files)
            for path in files:
                target = copy / path.relative_to(self.live)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copyfile(path, target)
                except FileNotFoundError:  # deleted meanwhile
                    pass
                time.sleep(self.rng.uniform(0, 0.002))
            self.taken.append(copy)


# -- a local stand-in for the Hugging Face Hub (exports loaded by Hub id) --


class HubStandIn:
    """An HTTP server on 127.0.0.1 that serves model folders the way the Hub's
    file endpoint does (``GET``/``HEAD /{repo_id}/resolve/{revision}/{path}``
    with ``X-Repo-Commit``, ``ETag`` and ``Content-Length``; 404 with
    ``X-Error-Code: EntryNotFound`` for a path that is not a file, folders
    included). ``huggingface_hub`` reaches it through ``HF_ENDPOINT``
    (``env``). ``requests`` lists (method, path, status) of every request."""

    def __init__(self):
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import unquote, urlsplit

        self.repos, self.requests = {}, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body: bool):
                parts = unquote(urlsplit(self.path).path).lstrip("/").split("/")
                file = None
                if len(parts) >= 5 and parts[2] == "resolve" and "/".join(parts[:2]) in hub.repos:
                    root = hub.repos["/".join(parts[:2])]
                    candidate = (root / "/".join(parts[4:])).resolve()
                    if candidate.is_relative_to(root) and candidate.is_file():
                        file = candidate
                hub.requests.append((self.command, self.path, 200 if file else 404))
                if file is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = file.read_bytes()
                self.send_response(200)
                self.send_header("X-Repo-Commit", hashlib.sha1(str(root).encode()).hexdigest())
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, repo_id: str, folder: Path):
        """Serve ``folder`` as the Hub repository ``repo_id`` (``user/name``)."""
        self.repos[repo_id] = Path(folder).resolve()

    def env(self, home: Path) -> dict:
        """Environment for a subprocess loading from this stand-in with a fresh Hub cache in ``home``."""
        return {
            "HF_ENDPOINT": f"http://127.0.0.1:{self.server.server_address[1]}",
            "HF_HOME": str(home),
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "NO_PROXY": "127.0.0.1",
        }

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def hub():
    """A running HubStandIn, shut down at the end of the session."""
    stand_in = HubStandIn()
    yield stand_in
    stand_in.close()
