"""The recipe's stages before training, run on the main process.

- ``prepare_data``: the release (downloaded when absent) -> CSVs, every split
  checked to have rows; also run by the SageMaker entry point.
- ``build_tokenizer``: trains the tokenizer, builds it with the config's
  model family, or reuses a ``stop-slu tokenizer`` folder
  (``tokenizer_from``).
- ``report_target_lengths``: targets CTC cannot align, per split.
- ``copy_tokenizer``: a trained model's tokenizer, for fine-tuning.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from stop_slu.data_prep.download import STOP_URL, ensure_release
from stop_slu.data_prep.prepare import REPORT_NAME, prepare, summary_line
from stop_slu.data_prep.rows import PrepareError, read_csv
from stop_slu.families import family_of
from stop_slu.frontend import compute_features_of
from stop_slu.inference import MODEL_TOKENIZER
from stop_slu.tokenizer.parse_tokenizer import MODEL_NAME, ParseTokenizer, train_tokenizer
from stop_slu.tokenizer.stage import is_tokenizer_folder, reuse_problems

logger = logging.getLogger(__name__)


_SPLIT_KEYS = ("train_split", "valid_split", "test_split")


def prepare_data(hparams: dict):
    """The recipe's first stage: CSVs for the configured splits, then a check
    that none of them is empty.

    Unless ``skip_prep``: when ``data_folder`` holds neither the release nor
    ``stop.tar.gz``, the release is downloaded from ``data_url`` and extracted
    (``data_prep/download.py``); then it is prepared, an earlier preparation
    being reused when manifests, options and audio are unchanged (``force_prep:
    True`` redoes it). Run it on the main process only. Raises PrepareError
    (``DownloadError`` is one) for unusable input or an empty split.
    """
    folder = Path(hparams["prepare_folder"])
    report = None
    if not hparams["skip_prep"]:
        root = ensure_release(hparams["data_folder"], hparams.get("data_url") or STOP_URL)
        report = prepare(
            root,
            folder,
            splits=sorted({hparams[key] for key in _SPLIT_KEYS}),
            domains=hparams["domains"],
            target=hparams["target_column"],
            skip_if_done=not hparams.get("force_prep", False),
            flat_only=hparams.get("flat_only", False),
        )
        logger.info(summary_line(report))
    for key in _SPLIT_KEYS:
        split = hparams[key]
        path = folder / f"{split}.csv"
        if read_csv(path):
            continue
        why = "; the recipe needs rows in its train, valid and test CSVs"
        if report is not None:
            entry = report["splits"][split]
            reasons: dict[str, int] = {}
            for skipped in report["skipped"]:
                if skipped["split"] == split:
                    reason = skipped["reason"].split(" (")[0].split(":")[0]
                    reasons[reason] = reasons.get(reason, 0) + 1
            listed = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items())) or "none skipped"
            why = (
                f": all {entry['manifest_rows']} manifest row(s) skipped or filtered out "
                f"({listed}; by domain {entry['filtered_out_by_domain']}, "
                f"not flat {entry.get('filtered_out_not_flat', 0)}); see {folder / REPORT_NAME}"
            )
        raise PrepareError(f"{path}: the {key.split('_')[0]} split ({key}: {split}) has no rows{why}")


def build_tokenizer(hparams: dict) -> ParseTokenizer:
    """The run's tokenizer in ``tokenizer_folder``: trained on the training
    CSV's targets (reused when they and the options are unchanged); built by
    the config's model family when it has its own (the Whisper family:
    Whisper's tokenizer plus the labels); or, with
    ``tokenizer_from`` (a folder from ``stop-slu tokenizer``), that folder's
    files copied byte for byte, the output layer then taking its size. Logs
    which and why.

    Raises ``PrepareError`` (one line) when ``tokenizer_from`` is no tokenizer
    folder, or lacks labels or characters of the train split (a model with it
    could never output them) unless ``tokenizer_mismatch_ok`` is set.
    """
    train_csv = Path(hparams["prepare_folder"]) / f"{hparams['train_split']}.csv"
    targets = [row["semantics"] for row in read_csv(train_csv).values()]  # canonical, as the data pipeline reads them
    family = family_of(hparams)
    if family.build_tokenizer is not None:
        logger.info("Tokenizer: built by the config's family (%s) on %s", type(family).__name__, train_csv)
        return family.build_tokenizer(targets, hparams)
    source = hparams.get("tokenizer_from")
    if not source:
        logger.info("Tokenizer: trained on %s (tokenizer_from is not set)", train_csv)
        return train_tokenizer(
            targets,
            hparams["tokenizer_folder"],
            hparams["vocab_size"],
            hparams["tokenizer_type"],
            target_column=hparams.get("target_column"),
        )
    source = Path(source)
    if not is_tokenizer_folder(source):
        raise PrepareError(
            f"{source}: tokenizer_from is not a tokenizer folder (no {MODEL_NAME}); "
            "make one with `stop-slu tokenizer PREPARED_DIR OUT`"
        )
    given = ParseTokenizer(source)
    problems = reuse_problems(given, targets)
    trained_on, column = given.meta.get("target_column"), hparams.get("target_column")
    if problems and not hparams.get("tokenizer_mismatch_ok") and trained_on and column and trained_on != column:
        raise PrepareError(
            f"{source}: trained on {trained_on} targets, and this config trains on {column} "
            f"(target_column): {'; '.join(problems)}, so the model could never output them; make one from "
            f"{column}: `stop-slu prepare {hparams['data_folder']} PREPARED --target {column}` then "
            f"`stop-slu tokenizer PREPARED {source}` (or pass --tokenizer_mismatch_ok=True to use it anyway)"
        )
    if problems and not hparams.get("tokenizer_mismatch_ok"):
        raise PrepareError(
            f"{source}: not trained on this run's train split ({train_csv}): {'; '.join(problems)}, "
            "so the model could never output them; train it on this split (`stop-slu tokenizer`) "
            "or pass --tokenizer_mismatch_ok=True to use it anyway"
        )
    folder = Path(hparams["tokenizer_folder"])
    folder.mkdir(parents=True, exist_ok=True)
    if folder.resolve() != source.resolve():
        for path in sorted(source.iterdir()):
            if path.is_file():
                shutil.copyfile(path, folder / path.name)
    why = "it covers every label and character of the train split"
    if problems:
        why = f"tokenizer_mismatch_ok is set although {'; '.join(problems)}"
    logger.info(
        "Tokenizer: reused from %s (tokenizer_from), %d pieces (vocab_size=%s and tokenizer_type do not apply); %s",
        source,
        given.vocab_size,
        hparams["vocab_size"],
        why,
    )
    if trained_on and column and trained_on != column:
        logger.warning(
            "Tokenizer from %s was trained on %s targets, this run trains on %s: its pieces fit the other column",
            source,
            trained_on,
            column,
        )
    return ParseTokenizer(folder)


TARGET_LENGTHS = "target_lengths.json"  # in the output folder


def encoder_frames_per_second(hparams: dict, seconds: float = 20.0) -> float:
    """Encoder frames per second of audio for this config, measured by running
    its front-end (features and the convolutional front-end, in eval mode,
    without gradients) on ``seconds`` of silence."""
    modules = hparams["modules"]
    was_training = {name: module.training for name, module in modules.items()}
    wavs = torch.zeros(1, int(seconds * hparams["sample_rate"]))
    try:
        for module in modules.values():
            module.eval()
        with torch.no_grad():
            feats = compute_features_of(modules, hparams["compute_features"], wavs, torch.ones(1))
            frames = modules["CNN"](feats).shape[1]
    finally:
        for name, module in modules.items():
            module.train(was_training[name])
    return frames / seconds


def report_target_lengths(hparams: dict, tokenizer: ParseTokenizer) -> dict | None:
    """Count, per split, the utterances whose target has more tokens than the
    encoder has frames: CTC cannot align them (its loss is zeroed). Logged as a
    warning when any, and written to ``OUTPUT/target_lengths.json``; returns
    that report (None for a config without CTC or without a ``CNN`` front-end,
    such as Whisper). Run on the main process."""
    if not hparams.get("ctc_weight") or "CNN" not in hparams["modules"]:
        return None
    rate = encoder_frames_per_second(hparams)
    report = {"encoder_frames_per_second": round(rate, 3), "splits": {}}
    for key in _SPLIT_KEYS:
        split = hparams[key]
        rows = read_csv(Path(hparams["prepare_folder"]) / f"{split}.csv").values()
        too_long = sum(len(tokenizer.encode(row["semantics"])) > int(row["duration"] * rate) for row in rows)
        report["splits"][split] = {
            "rows": len(rows),
            "targets_longer_than_encoder_frames": too_long,
            "percent": round(100 * too_long / max(1, len(rows)), 2),
        }
    report["what_to_do"] = (
        "CTC cannot align a target with more tokens than encoder frames and trains nothing on it "
        "(speed perturbation at 1.1 shortens the audio further). Use an encoder with more frames per second "
        "(smaller CNN strides), a target with fewer tokens (target_column: decoupled_normalized_seqlogical) "
        "or a larger vocab_size (fewer pieces per target)"
    )
    Path(hparams["output_folder"]).mkdir(parents=True, exist_ok=True)
    (Path(hparams["output_folder"]) / TARGET_LENGTHS).write_text(json.dumps(report, indent=2) + "\n")
    counts = ", ".join(
        f"{split} {v['targets_longer_than_encoder_frames']} ({v['percent']} %)" for split, v in report["splits"].items()
    )
    if any(v["targets_longer_than_encoder_frames"] for v in report["splits"].values()):
        logger.warning(
            "Targets with more tokens than encoder frames (%.1f frames/s): %s. %s (see %s)",
            rate,
            counts,
            report["what_to_do"],
            TARGET_LENGTHS,
        )
    else:
        logger.info("Every target fits the encoder frames (%.1f frames/s): %s", rate, counts)
    return report


def copy_tokenizer(model_dir, folder):
    """The tokenizer of the model folder ``model_dir``, byte for byte, into
    ``folder``, its subfolders included (Whisper's tokenizer files): its ids
    are the output layer's (fine-tuning keeps them)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(model_dir) / MODEL_TOKENIZER, folder, symlinks=False, dirs_exist_ok=True)
