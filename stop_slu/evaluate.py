"""``stop-slu evaluate``: the exact-match accuracy of any model on any split.

MODEL is anything ``stop-slu parse`` accepts (``inference.load_parser``: a
training output folder, an exported model folder, a Hub id). DATA is a
prepared folder (``SPLIT.csv`` in it), one CSV, or a STOP release (prepared on
the way into ``OUT/data`` with the model's own target column). The utterances
are decoded as the recipe's test stage decodes them: sorted by duration, in
batches, with the model's own search (beam size and decode ratio overridable),
the reference scored in the form the model outputs (decoupled where the model
decouples its output). ``OUT`` gets:

- ``predictions_<split>.tsv``: ID, hypothesis, reference, domain (header row),
  the format of the recipe's ``predictions_test.tsv``;
- ``metrics_<split>.json``: ``stop_slu.metrics.score``, every key the recipe's
  ``metrics_test.json`` has;
- ``report.md`` (``report_<split>.md`` for a split other than test) with its
  per-domain chart.

Several processes (``torchrun``) each decode every world_size-th utterance of
the sorted list and the rows are gathered on rank 0, as in the recipe's test
(``stop_slu.sharding``). Each process appends its rows to
``OUT/partial_<split>/rank<R>.tsv`` as it decodes them; a restarted
evaluation (any number of processes) reads those files and decodes only the
IDs not yet written. The partial folder is removed once the results are
written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset, FilteredSortedDynamicItemDataset
from tqdm import tqdm

from stop_slu import metrics, parses
from stop_slu.brain import distributed
from stop_slu.data_prep.audio import load_audio
from stop_slu.data_prep.prepare import prepare
from stop_slu.data_prep.release import SPLITS, find_release_root
from stop_slu.data_prep.rows import read_csv
from stop_slu.report import write_report
from stop_slu.sharding import gather, rank_and_world, shard_ids

logger = logging.getLogger(__name__)

PARTIAL = "partial_{split}"  # OUT/partial_<split>/: rows appended while decoding, one file per rank
RUN_FILE = "run.json"  # in the partial folder: what is being evaluated (a restart must match it)
DEFAULT_BATCH_SIZE = 16  # where the model names no test batch size (ONNX exports)


class EvaluateError(ValueError):
    """A user error of ``evaluate``: one line naming the path or option and what to do."""


@dataclass
class Evaluation:
    """What ``evaluate`` wrote: the scores (``metrics.score``) and the files."""

    scores: dict
    predictions: Path
    metrics: Path
    report: Path
    resumed: int = 0  # utterances read back from an interrupted run
    by_rank: tuple = (0,)  # utterances decoded by each process in this run
    seconds: float = 0.0  # wall-clock seconds of this run's decoding (loading audio included, model loading not)
    audio_seconds: float = 0.0  # seconds of audio this run decoded
    cpu_seconds: float = 0.0  # CPU seconds of this run's decoding, all processes together

    @property
    def rate(self) -> float:
        """Utterances decoded per wall-clock second in this run (all processes together)."""
        return sum(self.by_rank) / self.seconds if self.seconds else 0.0


def predictions_path(out, split: str) -> Path:
    return Path(out) / f"predictions_{split}.tsv"


def metrics_path(out, split: str) -> Path:
    return Path(out) / f"metrics_{split}.json"


def find_csv(data, split: str, out, target: str, low_resource=None, progress: bool = True) -> Path:
    """The CSV to evaluate: ``data`` itself (a ``.csv`` file), ``data/SPLIT.csv``
    (a prepared folder), or a STOP release prepared into ``out/data`` (with
    ``low_resource``, STOP's low-resource files too) and its ``SPLIT.csv``.
    Raises EvaluateError when there is none."""
    data = Path(data)
    if data.is_file():
        if data.suffix != ".csv":
            raise EvaluateError(f"{data}: not a CSV; pass a prepared folder, a CSV or a STOP release")
        return data
    if not data.is_dir():
        raise EvaluateError(f"{data}: no such file or folder; pass a prepared folder, a CSV or a STOP release")
    if (data / f"{split}.csv").is_file() and low_resource is None:
        return data / f"{split}.csv"
    try:
        find_release_root(data)
    except FileNotFoundError:
        have = sorted(p.stem for p in data.glob("*.csv"))
        raise EvaluateError(
            f"{data}: no {split}.csv here and not a STOP release; "
            + (f"pass --split with one of {', '.join(have)}" if have else "pass a prepared folder or a STOP release")
        ) from None
    prepared = Path(out) / "data"
    if split not in SPLITS and low_resource is None:
        raise EvaluateError(
            f"--split {split}: not a split of the release ({', '.join(SPLITS)}); "
            "a low-resource split needs --low-resource DIR (STOP's low_resource_splits folder)"
        )
    if _is_main():
        # the low-resource files come with a main split (prepare needs one): the test split, the smallest
        splits = (split if split in SPLITS else "test",)
        prepare(data, prepared, splits=splits, target=target, low_resource=low_resource, progress=progress)
    _barrier()
    path = prepared / f"{split}.csv"
    if not path.is_file():
        have = sorted(p.stem for p in prepared.glob("*.csv"))
        raise EvaluateError(f"--split {split}: {data} prepared has no such split; it has {', '.join(have)}")
    return path


def _is_main() -> bool:
    return rank_and_world()[0] == 0


def _barrier():
    if distributed():
        torch.distributed.barrier()


def search_settings(parser) -> dict:
    """The model's own test search settings: beam size and maximum decode ratio."""
    return {"beam_size": parser.search.beam_size, "max_decode_ratio": parser.search.max_decode_ratio}


def set_search(parser, beam_size: int | None = None, max_decode_ratio: float | None = None):
    """Change the test search of a loaded model (``parser.set_search``; an
    export's config has its values resolved: the searcher itself is changed).
    None keeps the model's own value. Raises EvaluateError for a value out of range."""
    if beam_size is not None and beam_size < 1:
        raise EvaluateError(f"--beam_size {beam_size}: must be at least 1")
    if max_decode_ratio is not None and not 0 < max_decode_ratio <= 10:
        raise EvaluateError(f"--max_decode_ratio {max_decode_ratio}: must be above 0 and at most 10")
    parser.set_search(beam_size=beam_size, max_decode_ratio=max_decode_ratio)


def read_rows(paths) -> dict[str, tuple[str, str, str]]:
    """Rows ``ID<TAB>hypothesis<TAB>reference<TAB>domain`` of the partial files
    -> {ID: (hypothesis, reference, domain)}. A last line cut short by a kill
    (no newline) is ignored. Raises EvaluateError naming the IDs a file gives
    twice with different hypotheses."""
    rows, conflicts = {}, {}
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        lines = text.split("\n")[:-1]  # the part after the last newline is incomplete
        for line in lines:
            fields = line.split("\t")
            if len(fields) != 4:
                continue
            uid, hyp, ref, domain = fields
            if uid in rows and rows[uid][0] != hyp:
                conflicts.setdefault(uid, {rows[uid][0]}).add(hyp)
            rows.setdefault(uid, (hyp, ref, domain))
    if conflicts:
        named = ", ".join(sorted(conflicts)[:5]) + (f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
        raise EvaluateError(
            f"{Path(paths[0]).parent}: IDs decoded twice with different parses ({named}); "
            "two evaluations wrote to the same --out: delete the folder and run again"
        )
    return rows


def _start_partial(folder: Path, run: dict, fresh: bool) -> dict:
    """The partial folder of this evaluation (made on rank 0); the rows already
    written. Refuses one left by an evaluation of another model, data or search."""
    if _is_main():
        if fresh and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        recorded = folder / RUN_FILE
        if recorded.is_file():
            before = json.loads(recorded.read_text())
            if before != run:
                changed = ", ".join(k for k in run if before.get(k) != run[k])
                raise EvaluateError(
                    f"{folder}: an interrupted evaluation with another {changed} is here; "
                    "pass another --out, or --restart to discard it"
                )
        else:
            recorded.write_text(json.dumps(run, indent=2) + "\n")
    _barrier()
    return read_rows(sorted(folder.glob("rank*.tsv")))


def _dataset(rows: dict, ids: list, sample_rate: int):
    """A SpeechBrain dataset of ``ids`` (in order) giving id, sig, semantics, domain."""
    dataset = FilteredSortedDynamicItemDataset(DynamicItemDataset(rows), ids)

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return torch.from_numpy(load_audio(wav, sample_rate))

    dataset.add_dynamic_item(audio_pipeline)
    dataset.set_output_keys(["id", "sig", "semantics", "domain"])
    return dataset


def _decode(parser, batch) -> tuple[list[str], list[str]]:
    """Hypotheses of a padded batch; an utterance the model cannot take (too
    short or too long for it) gets an empty one (scored wrong) and a reason."""
    wavs, wav_lens = batch.sig
    reasons = [parser.check_length(round(float(length) * wavs.shape[1])) for length in wav_lens]
    good = [i for i, reason in enumerate(reasons) if reason is None]
    hyps = [""] * len(reasons)
    if good:
        index = torch.tensor(good)
        found, _ = parser.decode_batch(wavs.index_select(0, index), wav_lens.index_select(0, index))
        for i, hyp in zip(good, found):
            hyps[i] = hyp
    return hyps, reasons


def evaluate(
    parser,
    csv_path,
    out,
    split: str = "test",
    batch_size: int | None = None,
    domains=None,
    restart: bool = False,
    progress: bool = True,
    run: dict | None = None,
    num_workers: int = 0,
) -> Evaluation | None:
    """Decode every utterance of ``csv_path`` with ``parser`` (an SLUParser or an OnnxParser)
    and write the predictions, metrics and report into ``out`` (see the module
    docstring); returns them on rank 0 (None on the other ranks).

    ``batch_size``: utterances per batch (default: the model config's test
    batch size). ``domains``: keep only utterances of these domains.
    ``restart``: discard the rows of an interrupted evaluation instead of
    resuming it. ``run``: what identifies this evaluation for resuming (model,
    search settings...), checked against an interrupted one. Raises
    EvaluateError (bad options, a conflicting interrupted run) and
    PrepareError (an unreadable CSV)."""
    out = Path(out)
    rows = read_csv(csv_path)
    if domains:
        unknown = sorted(set(domains) - {row.get("domain") for row in rows.values()})
        if len(unknown) == len(set(domains)):
            raise EvaluateError(f"--domains {','.join(domains)}: no utterance of {csv_path} is in these domains")
        rows = {uid: row for uid, row in rows.items() if row.get("domain") in domains}
    if not rows:
        raise EvaluateError(f"{csv_path}: no utterances to evaluate")
    if "semantics" not in next(iter(rows.values())):
        raise EvaluateError(f"{csv_path}: no semantics column; evaluate needs the reference parses")
    if batch_size is None:
        batch_size = parser.test_batch_size or DEFAULT_BATCH_SIZE
    if batch_size < 1:
        raise EvaluateError(f"--batch_size {batch_size}: must be at least 1")

    # The recipe's order: sorted by duration (ties in CSV order).
    order = sorted(rows, key=lambda uid: float(rows[uid]["duration"]))
    partial = out / PARTIAL.format(split=split)
    if _is_main():
        out.mkdir(parents=True, exist_ok=True)
    run = {**(run or {}), "data": str(Path(csv_path).resolve()), "domains": sorted(domains or []), "n": len(order)}
    done = _start_partial(partial, run, fresh=restart)
    done = {uid: row for uid, row in done.items() if uid in rows}
    if done and _is_main():
        logger.warning("%s: resuming: %d of %d utterances already decoded", partial, len(done), len(order))
    mine = shard_ids([uid for uid in order if uid not in done])
    rank, _ = rank_and_world()
    loader = sb.dataio.dataloader.make_dataloader(
        _dataset(rows, mine, parser.sample_rate), batch_size=batch_size, num_workers=num_workers
    )
    decouple = parser.decouple_output
    refused = {}
    decoded = []
    bar = tqdm(
        total=len(mine), unit="utt", desc=f"evaluate {split}", disable=not (progress and _is_main()), dynamic_ncols=True
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    with open(partial / f"rank{rank}.tsv", "a", encoding="utf-8", newline="") as f, bar:
        for batch in loader:
            hyps, reasons = _decode(parser, batch)
            lines = []
            for uid, hyp, ref, domain, reason in zip(batch.id, hyps, batch.semantics, batch.domain, reasons):
                row = (uid, hyp, parses.decouple(ref) if decouple else ref, domain)
                decoded.append(row)
                lines.append("\t".join(row) + "\n")
                if reason:
                    refused[uid] = reason
            f.write("".join(lines))
            f.flush()
            bar.update(len(batch.id))
    everyone = gather((decoded, refused, (time.perf_counter() - start, time.process_time() - cpu_start)))
    if not _is_main():
        _barrier()
        return None
    for _, theirs, _ in everyone:
        refused.update(theirs)
    if refused:
        logger.warning(
            "%d utterance(s) the model cannot take, scored wrong: %s",
            len(refused),
            "; ".join(f"{uid}: {reason}" for uid, reason in list(refused.items())[:5]),
        )
    found = {uid: (hyp, ref, domain) for uid, (hyp, ref, domain) in done.items()}
    for theirs, _, _ in everyone:
        found.update({uid: (hyp, ref, domain) for uid, hyp, ref, domain in theirs})
    ordered = [(uid, *found[uid]) for uid in order]
    result = write_results(out, split, ordered, about=_about(run))
    shutil.rmtree(partial)
    _barrier()
    result.resumed = len(done)
    result.by_rank = tuple(len(theirs) for theirs, _, _ in everyone)
    result.seconds = max(seconds for _, _, (seconds, _) in everyone)
    result.cpu_seconds = sum(cpu for _, _, (_, cpu) in everyone)
    result.audio_seconds = sum(float(rows[uid]["duration"]) for theirs, _, _ in everyone for uid, *_ in theirs)
    return result


def _about(run: dict) -> str:
    """The report's line saying what was evaluated, from the evaluation's ``run``."""
    parts = [f"model `{run['model']}`"] if run.get("model") else []
    if run.get("overrides"):
        parts.append("overrides " + ", ".join(f"`{k}={v}`" for k, v in run["overrides"].items()))
    if "beam_size" in run:
        parts.append(f"beam {run['beam_size']}, max decode ratio {run['max_decode_ratio']}")
    parts.append(f"data `{run['data']}`" + (f" (domains {', '.join(run['domains'])})" if run.get("domains") else ""))
    return "Evaluated: " + "; ".join(parts) + "."


def write_results(out, split: str, rows, about: str | None = None) -> Evaluation:
    """``predictions_<split>.tsv``, ``metrics_<split>.json`` and the report from
    ``rows`` (ID, hypothesis, reference, domain) in test order; ``about``: the
    report's line saying what was evaluated."""
    out = Path(out)
    predictions = predictions_path(out, split)
    metrics.write_predictions(predictions, rows)
    scores = metrics.score(
        {uid: ref for uid, _, ref, _ in rows},
        {uid: hyp for uid, hyp, _, _ in rows},
        {uid: domain for uid, _, _, domain in rows},
    )
    scores_path = metrics_path(out, split)
    scores_path.write_text(json.dumps(scores, indent=2) + "\n")
    report = write_report(out, split=split, about=about)
    return Evaluation(scores, predictions, scores_path, report)


def init_distributed(device: str) -> str:
    """Under torchrun (``RANK`` set): join the process group (NCCL on CUDA,
    gloo on CPU); returns this process's device (``cuda:LOCAL_RANK`` for CUDA)."""
    if "RANK" not in os.environ or distributed():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    return device
