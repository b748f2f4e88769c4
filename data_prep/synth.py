"""mini-STOP: a synthetic corpus in the exact layout of the STOP release.

Text comes from the built-in grammar (``grammar.py``) or from TOPv2's TSV files.
Two voice families speak it: eSpeak NG (formant synthesis, ``espeak.py``) and
Piper (a neural voice, ``neural_voice.py``), each utterance with a voice, rate
and pitch drawn at random. Eval and test are recorded in two takes: take 0 with
the training voices, take 1 with voices that training never hears. Every
eval/test text differs from every training text. ``train_families`` leaves a
family out of training and validation (test still speaks every family): the
measure of how a model does on a family of voices it never heard.

Each utterance is then put in a room, in noise and through a microphone
(``acoustics.py``; a share stays clean). ``manifests/synthesis.tsv`` gives, for
every ``file_id``, the family, the voice's settings and the full acoustic
condition, so any utterance can be made again.

The same arguments always give the same bytes: text, voices and conditions come
from seeded generators, and audio is made in fixed chunks, each in a fresh
process (eSpeak NG keeps state from one utterance to the next; Piper's noise
generator is seeded per chunk).
"""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from stop_slu import parses
from stop_slu.data_prep import acoustics, espeak, grammar, neural_voice
from stop_slu.data_prep.release import DOMAINS, MANIFEST_COLUMNS, disk_path, manifest_file_id

CHUNK = 200  # utterances per fresh synthesis process (part of the byte-identity contract)
FAMILIES = (espeak.FAMILY, neural_voice.FAMILY)
# Share of each family among training utterances when both train: the neural
# voice costs ~20x eSpeak's CPU time per second of audio (benchmarks/README.md).
# Eval and test draw families evenly.
TRAIN_WEIGHTS = {espeak.FAMILY: 0.9, neural_voice.FAMILY: 0.1}
ROOMS_PER_SPLIT = 12  # simulated rooms per split: eval/test rooms differ from training rooms
SIDECAR = "synthesis.tsv"
SIDECAR_COLUMNS = ("file_id", "family", "voice", "settings", "engine_seed", *acoustics.CONDITION_COLUMNS)


def random_voice(family: str, rng: random.Random, held_out: bool):
    """A voice of ``family`` drawn from ``rng``; ``held_out``: from the voices training never hears."""
    if family == espeak.FAMILY:
        return espeak.random_voice(rng, espeak.HELD_OUT_VARIANTS if held_out else espeak.VARIANTS)
    if family == neural_voice.FAMILY:
        return neural_voice.random_voice(rng, neural_voice.HELD_OUT_WARPS if held_out else neural_voice.WARPS)
    raise ValueError(f"unknown voice family {family!r}; one of {', '.join(FAMILIES)}")


@dataclass(frozen=True)
class Row:
    """One manifest row plus how to speak it."""

    split: str
    take: int | None
    number: int
    example: grammar.Example
    voice: espeak.Voice | neural_voice.Voice
    condition: acoustics.Condition = acoustics.Condition()

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
            str(self.voice.native),
            ex.utterance,
            ex.seqlogical,
            self.spoken_text,
            normalized,
            parses.decouple(normalized),
        ]

    def sidecar_fields(self, engine_seed: int) -> list[str]:
        """The row of ``manifests/synthesis.tsv`` (``SIDECAR_COLUMNS``)."""
        seed = str(engine_seed) if self.voice.family == neural_voice.FAMILY else ""
        conditions = self.condition.fields()
        return [
            self.file_id,
            self.voice.family,
            self.voice.name,
            self.voice.describe(),
            seed,
            *(conditions[c] for c in acoustics.CONDITION_COLUMNS),
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


def plan_rows(train, eval_, test, seed, families=FAMILIES, train_families=None) -> list[Row]:
    """Number files per split and domain, and draw a family and voice for each
    row: training rows from ``train_families`` (default: ``families``, weighted
    by ``TRAIN_WEIGHTS``), eval rows evenly from ``train_families`` (validation
    picks checkpoints: it must not hear a family left out), test rows evenly
    from ``families``."""
    train_families = tuple(train_families or families)
    rng = random.Random(seed + 1)
    rows = []
    for split, examples in (("train", train), ("eval", eval_), ("test", test)):
        counters = {}
        numbered = []
        for ex in examples:
            counters[ex.domain] = counters.get(ex.domain, 0) + 1
            numbered.append((counters[ex.domain], ex))
        takes = (None,) if split == "train" else (0, 1)
        pool = tuple(families) if split == "test" else train_families
        weights = [TRAIN_WEIGHTS[f] if split == "train" else 1.0 for f in pool]
        for take in takes:
            for number, ex in numbered:
                family = rng.choices(pool, weights)[0] if len(pool) > 1 else pool[0]
                rows.append(Row(split, take, number, ex, random_voice(family, rng, held_out=take == 1)))
    return rows


def plan_conditions(rows: list[Row], seed: int, clean_share: float = 0.2) -> tuple[list[Row], dict]:
    """``rows`` with an acoustic condition each, and the rooms they use
    ({room: None}, impulse responses to compute). Rooms are drawn per split
    (``ROOMS_PER_SPLIT``); babble talkers come from the row's own chunk and split."""
    rng = random.Random(seed + 2)
    rooms = {split: [acoustics.random_room(rng) for _ in range(ROOMS_PER_SPLIT)] for split in ("train", "eval", "test")}
    out = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        for row in chunk:
            talkers = [r.file_id for r in chunk if r is not row and r.split == row.split]  # no text leaks across splits
            condition = acoustics.random_condition(rng, rooms[row.split], talkers, clean_share)
            out.append(dataclasses.replace(row, condition=condition))
    used = {r.condition.room: None for r in out if r.condition.room is not None}
    return out, used


def engine_seed(seed: int, chunk_index: int) -> int:
    """The neural voice's noise seed for one chunk."""
    return (seed * 1_000_003 + chunk_index) % 2**31


def _speak(row: Row, engine_seed_: int) -> np.ndarray:
    if row.voice.family == neural_voice.FAMILY:
        return neural_voice.speak(row.spoken_text, row.voice, engine_seed_)
    return espeak.speak(row.spoken_text, row.voice)


def _speak_chunk(job):
    out_dir, seed_, chunk, rirs = job
    clean = {row.file_id: _speak(row, seed_).astype(np.float32) / 32768 for row in chunk}
    for row in chunk:
        c = row.condition
        audio = acoustics.apply(
            clean[row.file_id],
            c,
            rirs.get(c.room) if c.room is not None else None,
            [clean[t] for t in c.babble_from],
        )
        target = Path(out_dir) / row.path
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, np.round(audio * 32767).astype(np.int16), espeak.TARGET_RATE, subtype="PCM_16")
    return len(chunk)


def write_audio(rows: list[Row], out_dir: Path, workers: int, progress: bool = True, seed: int = 0, rooms=()):
    """Speak every row's text into its 16 kHz mono wav under ``out_dir``, in
    ``workers`` processes, with a progress bar unless ``progress`` is False.
    ``rooms``: the rooms the rows' conditions use (impulse responses are
    computed once, in the pool)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(max(1, workers), maxtasksperchild=1) as pool:
        rooms = list(rooms)
        rirs = dict(zip(rooms, pool.map(acoustics.impulse_response, rooms))) if rooms else {}
        jobs = []
        for index, start in enumerate(range(0, len(rows), CHUNK)):
            chunk = rows[start : start + CHUNK]
            used = {r.condition.room for r in chunk}
            jobs.append((str(out_dir), engine_seed(seed, index), chunk, {k: v for k, v in rirs.items() if k in used}))
        with tqdm(total=len(rows), desc="speaking", unit="utt", disable=not progress) as bar:
            for done in pool.imap(_speak_chunk, jobs):
                bar.update(done)


def write_manifests(rows: list[Row], out_dir: Path, seed: int = 0):
    """``out_dir/manifests/{train,eval,test}.tsv`` in the release's 9 columns, and
    ``manifests/synthesis.tsv``: how each ``file_id`` was made (``SIDECAR_COLUMNS``)."""
    manifests = out_dir / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for split in ("train", "eval", "test"):
        with open(manifests / f"{split}.tsv", "w", encoding="utf-8", newline="") as f:
            f.write("\t".join(MANIFEST_COLUMNS) + "\n")
            for row in rows:
                if row.split == split:
                    f.write("\t".join(row.manifest_fields()) + "\n")
    with open(manifests / SIDECAR, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(SIDECAR_COLUMNS) + "\n")
        for index, start in enumerate(range(0, len(rows), CHUNK)):
            for row in rows[start : start + CHUNK]:
                f.write("\t".join(row.sidecar_fields(engine_seed(seed, index))) + "\n")


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
    families=FAMILIES,
    train_families=None,
    clean_share: float = 0.2,
) -> dict:
    """Write a mini-STOP release under ``out_dir``; returns its counts.

    ``families``: the voice families that speak (eval/test evenly);
    ``train_families``: those that speak the training split (default: all of
    ``families``); ``clean_share``: the share of utterances left clean (1.0: no
    rooms, noise or microphones). Raises ValueError for an unknown domain or
    family, or a training family not in ``families``."""
    out_dir = Path(out_dir)
    unknown = sorted(set(domains) - set(DOMAINS))
    if unknown:
        raise ValueError(f"unknown domain(s) {', '.join(unknown)}; STOP has {', '.join(DOMAINS)}")
    families = tuple(families)
    train_families = tuple(train_families or families)
    strange = sorted(set(families) - set(FAMILIES))
    if strange:
        raise ValueError(f"unknown voice family {', '.join(strange)}; one of {', '.join(FAMILIES)}")
    if not train_families or not set(train_families) <= set(families):
        raise ValueError(f"training families {', '.join(train_families)} must be some of {', '.join(families)}")
    train, eval_, test = choose_text(
        n_train, n_eval, n_test, seed, Path(text_dir) if text_dir else None, tuple(domains)
    )
    rows, rooms = plan_conditions(plan_rows(train, eval_, test, seed, families, train_families), seed, clean_share)
    write_audio(rows, out_dir, workers or min(2, multiprocessing.cpu_count()), progress, seed, rooms)
    write_manifests(rows, out_dir, seed)
    targets = [r.manifest_fields()[-1] for r in rows]
    summary = {
        "out_dir": str(out_dir),
        "rows": {s: sum(r.split == s for r in rows) for s in ("train", "eval", "test")},
        "text": str(text_dir) if text_dir else "built-in grammar",
        "families": {s: sorted({r.voice.family for r in rows if r.split == s}) for s in ("train", "eval", "test")},
        "clean_pct": round(100.0 * sum(r.condition.clean for r in rows) / len(rows), 1),
        "emitted_intents": len({label for t in targets for label in parses.labels(t) if label.startswith("[IN:")}),
        "emitted_slots": len({label for t in targets for label in parses.labels(t) if label.startswith("[SL:")}),
        "emitted_max_depth": max(parses.parse_tree(t).depth() for t in targets),
    }
    if text_dir is None:
        summary["grammar"] = grammar.stats()
    return summary
