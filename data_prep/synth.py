"""mini-STOP: a synthetic corpus in the exact layout of the STOP release.

Text comes from the built-in grammar (``grammar.py``) or from TOPv2's TSV files;
eSpeak NG speaks it with varied voices, rates and pitch. Eval and test are
recorded in two takes: take 0 with the training voices, take 1 with voices that
training never hears. Every eval/test text differs from every training text.

The same arguments always give the same bytes: text and voices come from one
seeded generator, and audio is made in fixed chunks, each in a fresh process
(eSpeak NG keeps state from one utterance to the next).
"""

from __future__ import annotations

import csv
import multiprocessing
import random
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from stop_slu import parses
from stop_slu.data_prep import espeak, grammar
from stop_slu.data_prep.release import DOMAINS, MANIFEST_COLUMNS, disk_path, manifest_file_id

CHUNK = 200  # utterances per fresh synthesis process (part of the byte-identity contract)
NATIVE_ACCENTS = ("en-us", "en", "en-us-nyc", "en-gb-x-rp")


@dataclass(frozen=True)
class Row:
    """One manifest row plus how to speak it."""

    split: str
    take: int | None
    number: int
    example: grammar.Example
    voice: espeak.Voice

    @property
    def file_id(self) -> str:
        return manifest_file_id(self.split, self.example.domain, self.number, self.take)

    @property
    def path(self) -> str:
        return disk_path(self.split, self.example.domain, self.number, self.take)

    @property
    def spoken_text(self) -> str:
        return parses.normalize_text(self.example.utterance)

    def manifest_fields(self) -> list[str]:
        ex = self.example
        normalized = parses.normalize_parse(ex.seqlogical)
        return [
            self.file_id,
            ex.domain,
            self.voice.gender,
            str(self.voice.accent in NATIVE_ACCENTS),
            ex.utterance,
            ex.seqlogical,
            self.spoken_text,
            normalized,
            parses.decouple(normalized),
        ]


def topv2_examples(text_dir: Path, kind: str, domains) -> list[grammar.Example]:
    """Valid TOPv2 rows of ``{domain}_{kind}.tsv`` (kind: train or eval)."""
    examples = []
    for domain in domains:
        path = text_dir / f"{domain}_{kind}.tsv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; --text expects TOPv2's <domain>_{kind}.tsv files")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(reader, None)
            for row in reader:
                if len(row) == 3 and parses.is_valid(row[2]) and parses.normalize_text(row[1]):
                    examples.append(grammar.Example(row[0], row[1], row[2]))
    return examples


def _distinct(examples, n: int, rng: random.Random, exclude: set[str], what: str):
    pool = list(examples)
    rng.shuffle(pool)
    chosen, seen = [], set(exclude)
    for ex in pool:
        key = parses.normalize_text(ex.utterance)
        if key not in seen:
            seen.add(key)
            chosen.append(ex)
            if len(chosen) == n:
                return chosen
    raise ValueError(f"only {len(chosen)} distinct {what} utterances available, {n} asked")


def choose_text(n_train, n_eval, n_test, seed, text_dir=None, domains=DOMAINS):
    """(train, eval, test) examples; eval and test texts never occur in train."""
    rng = random.Random(seed)
    if text_dir is None:
        wanted = n_train + n_eval + n_test
        n_generate = wanted * len(DOMAINS) // len(domains) + 8 * len(DOMAINS)
        generated = [ex for ex in grammar.generate(n_generate, seed) if ex.domain in domains]
        train_pool = held_pool = generated
    else:
        train_pool = topv2_examples(text_dir, "train", domains)
        held_pool = topv2_examples(text_dir, "eval", domains)
    train = _distinct(train_pool, n_train, rng, set(), "train")
    seen = {parses.normalize_text(ex.utterance) for ex in train}
    held = _distinct(held_pool, n_eval + n_test, rng, seen, "eval/test")
    return train, held[:n_eval], held[n_eval:]


def plan_rows(train, eval_, test, seed) -> list[Row]:
    """Number files per split and domain, and draw a voice for each row."""
    rng = random.Random(seed + 1)
    rows = []
    for split, examples in (("train", train), ("eval", eval_), ("test", test)):
        counters = {}
        numbered = []
        for ex in examples:
            counters[ex.domain] = counters.get(ex.domain, 0) + 1
            numbered.append((counters[ex.domain], ex))
        takes = (None,) if split == "train" else (0, 1)
        for take in takes:
            variants = espeak.HELD_OUT_VARIANTS if take == 1 else espeak.VARIANTS
            for number, ex in numbered:
                rows.append(Row(split, take, number, ex, espeak.random_voice(rng, variants)))
    return rows


def _speak_chunk(job):
    out_dir, chunk = job
    for path, text, voice in chunk:
        target = Path(out_dir) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, espeak.speak(text, voice), espeak.TARGET_RATE, subtype="PCM_16")
    return len(chunk)


def write_audio(rows: list[Row], out_dir: Path, workers: int, progress: bool = True):
    """Speak every row's text into its 16 kHz mono wav under ``out_dir``, in
    ``workers`` processes, with a progress bar unless ``progress`` is False."""
    jobs = [
        (str(out_dir), [(r.path, r.spoken_text, r.voice) for r in rows[i : i + CHUNK]])
        for i in range(0, len(rows), CHUNK)
    ]
    ctx = multiprocessing.get_context("spawn")
    with (
        ctx.Pool(max(1, workers), maxtasksperchild=1) as pool,
        tqdm(total=len(rows), desc="speaking", unit="utt", disable=not progress) as bar,
    ):
        for done in pool.imap(_speak_chunk, jobs):
            bar.update(done)


def write_manifests(rows: list[Row], out_dir: Path):
    """``out_dir/manifests/{train,eval,test}.tsv`` in the release's 9 columns."""
    manifests = out_dir / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for split in ("train", "eval", "test"):
        with open(manifests / f"{split}.tsv", "w", encoding="utf-8", newline="") as f:
            f.write("\t".join(MANIFEST_COLUMNS) + "\n")
            for row in rows:
                if row.split == split:
                    f.write("\t".join(row.manifest_fields()) + "\n")


def synthesize(
    out_dir,
    n_train: int = 3000,
    n_eval: int = 150,
    n_test: int = 150,
    seed: int = 0,
    text_dir=None,
    domains=DOMAINS,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Write a mini-STOP release under ``out_dir``; returns its counts."""
    out_dir = Path(out_dir)
    unknown = sorted(set(domains) - set(DOMAINS))
    if unknown:
        raise ValueError(f"unknown domain(s) {', '.join(unknown)}; STOP has {', '.join(DOMAINS)}")
    train, eval_, test = choose_text(
        n_train, n_eval, n_test, seed, Path(text_dir) if text_dir else None, tuple(domains)
    )
    rows = plan_rows(train, eval_, test, seed)
    write_audio(rows, out_dir, workers or min(2, multiprocessing.cpu_count()), progress)
    write_manifests(rows, out_dir)
    targets = [r.manifest_fields()[-1] for r in rows]
    summary = {
        "out_dir": str(out_dir),
        "rows": {s: sum(r.split == s for r in rows) for s in ("train", "eval", "test")},
        "text": str(text_dir) if text_dir else "built-in grammar",
        "emitted_intents": len({label for t in targets for label in parses.labels(t) if label.startswith("[IN:")}),
        "emitted_slots": len({label for t in targets for label in parses.labels(t) if label.startswith("[SL:")}),
        "emitted_max_depth": max(parses.parse_tree(t).depth() for t in targets),
    }
    if text_dir is None:
        summary["grammar"] = grammar.stats()
    return summary
