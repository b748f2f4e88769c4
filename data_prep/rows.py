"""The rows of a STOP manifest: read, checked, written as a SpeechBrain CSV.

``read_manifest`` reads a manifest by column name; ``prepare_split`` checks
every row (target parse, transcript, wav header, duplicate ID), in worker
processes for large manifests, and returns the CSV rows with every skipped
row and its reason; ``write_csv`` writes them. ``prepare.py`` (the whole
release) and ``low_resource.py`` (STOP's low-resource files) both use them.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import multiprocessing
import os
import sys
from pathlib import Path

from tqdm import tqdm

from stop_slu import parses
from stop_slu.data_prep.audio import SAMPLE_RATE, audio_info_and_stat
from stop_slu.data_prep.release import MANIFEST_COLUMNS, TRANSCRIPT_COLUMN, candidate_paths, utterance_id

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("ID", "duration", "wav", "domain", "gender", "native", "transcript", "semantics")
_NEEDED = ("file_id", "domain", "gender", "native", TRANSCRIPT_COLUMN)
DUPLICATE_ROW = "duplicate row (same file_id as an earlier row)"  # a skip reason
UNREADABLE_ROW = "unreadable manifest row"  # a skip reason


class PrepareError(Exception):
    """Input that preparation cannot use at all; the message names path and fix."""


_CHUNK_ROWS = 2000  # rows per task handed to a worker process
_PARALLEL_MIN_ROWS = 5000  # smaller splits are checked in this process (no start-up cost)
_PARALLEL_MIN_BYTES = 2_000_000  # no pool unless a manifest is this big (~5,000 STOP rows)


def read_manifest(path: Path, target: str) -> tuple[list[tuple], list[dict]]:
    """``(rows, unreadable)``: ``rows`` holds ``(line number, file_id, domain,
    gender, native, transcript, target parse)`` per readable data row;
    ``unreadable`` one ``{"line", "file_id", "reason"}`` per row whose number of
    tab-separated fields differs from the header's (a skip, as any bad row).
    Columns are found by name; every field is the string it is (no NaN, no
    quoting: a STOP manifest is plain tab-separated text); blank lines are
    skipped. Raises PrepareError for a file or header that cannot be read."""
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            header = f.readline().rstrip("\n").split("\t")
            if header == [""]:
                raise PrepareError(f"{path}: unreadable manifest (empty file); expected a header row")
            missing = [c for c in (*_NEEDED, target) if c not in header]
            if missing:
                hint = ""
                if target in missing and target not in MANIFEST_COLUMNS:
                    hint = f"; --target must be one of {', '.join(MANIFEST_COLUMNS[4:])}"
                raise PrepareError(f"{path}: manifest lacks column(s) {', '.join(missing)}{hint}")
            picked = [header.index(c) for c in (*_NEEDED, target)]
            width = len(header)
            rows, unreadable = [], []
            for number, line in enumerate(f, start=2):
                fields = line.rstrip("\n").split("\t")
                if len(fields) != width:
                    if fields == [""]:
                        continue
                    unreadable.append(
                        {
                            "line": number,
                            "file_id": fields[picked[0]] if picked[0] < len(fields) else "",
                            "reason": f"{UNREADABLE_ROW} ({len(fields)} tab-separated fields, the header has {width})",
                        }
                    )
                    continue
                rows.append((number, *[fields[i] for i in picked]))
    except UnicodeDecodeError as e:
        raise PrepareError(f"{path}: unreadable manifest ({e}); expected UTF-8 text") from None
    except OSError as e:
        raise PrepareError(f"{path}: cannot read ({e.strerror or e})") from None
    return rows, unreadable


def _wav_folders(root: str, file_id: str, found: dict) -> list[str]:
    """The existing folders (symlinks resolved) where ``file_id`` may lie: its
    folder as given, then without the take suffix (the release's quirk). Looked
    up once per manifest folder and kept in ``found``: one file open per row."""
    folder = file_id.rpartition("/")[0]
    if folder not in found:
        parents = [path.parent for path in candidate_paths(Path(root), file_id)]
        found[folder] = [os.path.realpath(parent) for parent in parents if parent.is_dir()]
    return found[folder]


def _check_parse(parse: str):
    """(None, canonical form, has an empty slot) for a well-formed target parse,
    else (reason, None, False)."""
    if not parse.strip():
        return "empty target parse", None, False
    try:
        semantics, empty = parses.check(parse)
    except parses.ParseError as e:
        return f"malformed target parse: {e}", None, False
    return None, semantics, bool(empty)


def _check_wav(root: str, file_id: str, found: dict):
    """(None, wav path, info, stat key) when the row's wav is usable, else
    (reason, None, None, stat key); the stat key is (size, mtime in ns) of the
    file found, None when there is none."""
    name = file_id.rpartition("/")[2]
    for real_folder in _wav_folders(root, file_id, found):
        path = f"{real_folder}/{name}"
        info, key = audio_info_and_stat(path)
        if key is None and str(info) == "missing file":
            continue
        if isinstance(info, Exception):
            return f"bad wav: {info}", None, None, key
        return None, path, info, key
    return "missing wav", None, None, None


def _stat_key(root: str, file_id: str, found: dict):
    """The stat key ``_check_wav`` finds for ``file_id``, from ``os.stat`` alone."""
    name = file_id.rpartition("/")[2]
    for real_folder in _wav_folders(root, file_id, found):
        try:
            stat = os.stat(f"{real_folder}/{name}")
        except FileNotFoundError:
            continue
        except OSError:
            return None
        return (stat.st_size, stat.st_mtime_ns)
    return None


def _audio_lines(file_ids, keys) -> str:
    return "".join(f"{i}\t{k[0]}\t{k[1]}\n" if k else f"{i}\t-\n" for i, k in zip(file_ids, keys))


def _kept_rows(manifest_rows, domains, flat_only):
    """The rows a split keeps: in ``domains`` (all when empty) and, with
    ``flat_only``, whose target has one intent (so no nesting)."""
    kept = [row for row in manifest_rows if not domains or row[2] in domains]
    if flat_only:
        kept = [row for row in kept if sum(map(parses.is_intent, parses.tokenize(row[6]))) == 1]
    return kept


def audio_fingerprint(root, manifest, domains, flat_only=False) -> str:
    """A digest of the presence, size and modification time of every wav a
    manifest's rows (``read_manifest``'s result) name, as ``finish_split``
    records it: equal digests mean the audio did not change since."""
    kept = _kept_rows(manifest[0], domains, flat_only)
    found: dict = {}
    keys = [_stat_key(str(root), row[1], found) for row in kept]
    return hashlib.sha256(_audio_lines([row[1] for row in kept], keys).encode()).hexdigest()


def _check_task(task):
    """Worker task: ``_check_parse`` of some parses, or ``_check_wav`` (with the
    utterance ID and the duration text) of some rows' files."""
    kind, root, items = task
    if kind == "parses":
        return [_check_parse(parse) for parse in items]
    found, checked = {}, []
    for file_id in items:
        reason, path, info, key = _check_wav(root, file_id, found)
        if info is None:
            checked.append((utterance_id(file_id), reason, None, None, False, False, key))
        else:
            checked.append(
                (
                    utterance_id(file_id),
                    None,
                    path,
                    f"{info.duration:.4f}",
                    info.sample_rate != SAMPLE_RATE,
                    info.channels > 1,
                    key,
                )
            )
    return checked


def worker_pool(workers: int, largest_manifest_bytes: int):
    """Processes for the row checks (parsing and header reads are CPU-bound in
    Python: threads would share one core), or None when a pool would not pay.
    Started before the manifests are read, so the workers do not carry them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = min(max(1, workers), cores)
    if processes < 2 or largest_manifest_bytes < _PARALLEL_MIN_BYTES:
        return None
    # fork: no re-import of the caller's __main__ (train.py), workers start at once.
    method = "fork" if sys.platform == "linux" else "spawn"
    return multiprocessing.get_context(method).Pool(processes)


def start_split(root, manifest, domains, pool, flat_only=False):
    """Queue the checks of one manifest's rows (``read_manifest``'s result; in ``pool`` when there is one):
    each distinct target parse once (eval and test repeat every text in their
    two takes, and decoupled targets repeat often), every wav once. Returns
    what ``finish_split`` needs; the work runs while the caller does other things.
    ``flat_only``: keep only targets with one intent (so no nesting)."""
    manifest_rows, unreadable = manifest
    kept = _kept_rows(manifest_rows, domains, flat_only)
    n_not_flat = len(_kept_rows(manifest_rows, domains, False)) - len(kept)
    distinct = list(dict.fromkeys(row[6] for row in kept))
    tasks = [("parses", None, distinct[i : i + _CHUNK_ROWS]) for i in range(0, len(distinct), _CHUNK_ROWS)]
    tasks += [
        ("wavs", str(root), [row[1] for row in kept[i : i + _CHUNK_ROWS]]) for i in range(0, len(kept), _CHUNK_ROWS)
    ]
    use_pool = pool is not None and len(kept) >= _PARALLEL_MIN_ROWS
    results = pool.imap(_check_task, tasks) if use_pool else map(_check_task, tasks)
    return len(manifest_rows) + len(unreadable), kept, distinct, tasks, results, unreadable, n_not_flat


def finish_split(split, started, progress):
    """(csv rows, skipped entries, notes) from ``start_split``'s checks. A row's
    first problem, in this order, is its reason: unreadable row, target parse,
    transcript, wav, duplicate ID. ``notes`` counts rows filtered out by domain
    and by ``flat_only``, rows with an empty slot and wavs resampled or
    down-mixed at load, and holds the split's ``audio_fingerprint``."""
    n_rows, kept, distinct, tasks, results, unreadable, n_not_flat = started
    parse_results, wav_results = [], []
    with tqdm(total=len(kept), desc=f"prepare {split}", unit="row", disable=not progress) as bar:
        for task, done in zip(tasks, results):
            if task[0] == "parses":
                parse_results.extend(done)
            else:
                wav_results.extend(done)
                bar.update(len(done))
    checked_parses = dict(zip(distinct, parse_results))

    rows, skipped = [], [{"split": split, **entry} for entry in unreadable]
    notes = {
        "filtered_out_by_domain": n_rows - len(unreadable) - len(kept) - n_not_flat,
        "filtered_out_not_flat": n_not_flat,
        "empty_slots": 0,
        "resampled_at_load": 0,
        "downmixed_at_load": 0,
    }
    seen_ids = set()
    audio = _audio_lines([row[1] for row in kept], [wav[6] for wav in wav_results])
    notes["audio_fingerprint"] = hashlib.sha256(audio.encode()).hexdigest()
    for (line, file_id, domain, gender, native, transcript, parse), wav in zip(kept, wav_results):
        uid, reason, path, duration, resampled, downmixed, _ = wav
        parse_reason, semantics, empty_slot = checked_parses[parse]
        transcript = transcript.strip()
        reason = parse_reason or (None if transcript else "empty transcript") or reason
        if reason is None and uid in seen_ids:
            reason = DUPLICATE_ROW
        if reason is not None:
            skipped.append({"split": split, "line": line, "file_id": file_id, "reason": reason})
            continue
        seen_ids.add(uid)
        notes["empty_slots"] += empty_slot
        notes["resampled_at_load"] += resampled
        notes["downmixed_at_load"] += downmixed
        rows.append((uid, duration, path, domain, gender, native, transcript, semantics))
    skipped.sort(key=lambda entry: entry["line"])
    return rows, skipped, notes


def prepare_split(root, split, manifest_rows, domains, pool, progress):
    """(csv rows, skipped entries, notes) for one manifest's rows."""
    return finish_split(split, start_split(root, manifest_rows, domains, pool), progress)


def write_csv(path: Path, rows):
    """One CSV with the header ``CSV_COLUMNS``, written whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        text = "".join([",".join(row) + "\r\n" for row in rows])
        # csv.writer's own output when no field needs quoting (3x faster than
        # writerows on STOP's 230,000 rows); else let csv.writer quote.
        plain = '"' not in text and text.count(",") == (len(CSV_COLUMNS) - 1) * len(rows)
        if plain and text.count("\r") == text.count("\n") == len(rows):
            f.write(text)
        else:
            writer.writerows(rows)
    tmp.replace(path)


def read_csv(path) -> dict[str, dict]:
    """A SpeechBrain-style CSV (``write_csv``'s, or a user's own with at least
    ``ID`` and ``duration``) as ``{ID: {column: value}}``, the form
    ``speechbrain.dataio.dataset.DynamicItemDataset`` takes.

    Unlike SpeechBrain's ``load_data_csv``, every field is taken literally: a
    ``$`` in a wav path (a folder named ``$DATA``) or in a target is text, not a
    variable to substitute. ``duration`` is a float in seconds; ``semantics``
    (when present) is put in canonical form (``stop_slu.parses.canonical``), the
    one place where targets are canonicalised for the tokenizer and the data
    pipeline alike. Raises PrepareError (``path:line: reason``) for a missing
    file or column, a duplicate ID or a duration that is not a number.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("ID", "duration") if c not in (reader.fieldnames or ())]
            if missing:
                raise PrepareError(
                    f"{path}: CSV lacks column(s) {', '.join(missing)}; the recipe's CSVs have {','.join(CSV_COLUMNS)}"
                )
            data = {}
            for row in reader:
                line = reader.line_num
                uid = row.pop("ID")
                if uid in data:
                    raise PrepareError(f"{path}:{line}: duplicate ID {uid!r}; IDs must be unique")
                if None in row or None in row.values():
                    raise PrepareError(f"{path}:{line}: the row's number of fields differs from the header's")
                try:
                    row["duration"] = float(row["duration"])
                except ValueError:
                    raise PrepareError(
                        f"{path}:{line}: duration {row['duration']!r} is not a number of seconds"
                    ) from None
                if "semantics" in row:
                    row["semantics"] = parses.canonical(row["semantics"])
                data[uid] = row
    except UnicodeDecodeError as e:
        raise PrepareError(f"{path}: unreadable CSV ({e}); expected UTF-8 text") from None
    except OSError as e:
        raise PrepareError(
            f"{path}: cannot read ({e.strerror or e}); prepare the data first or fix --prepare_folder"
        ) from None
    return data
