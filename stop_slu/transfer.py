"""Start a model from a pretrained SpeechBrain ASR model (transfer learning).

SpeechBrain's SLURP direct recipe starts its encoder from a LibriSpeech ASR
model; ``hparams/conformer_asr_transfer.yaml`` does the same for STOP with
SpeechBrain's ``Pretrainer`` (``speechbrain.utils.parameter_transfer``): it
fetches the ASR model's ``asr.ckpt`` (the state of its ``ModuleList`` [CNN,
Transformer, seq_lin, ctc_lin], the layout of this recipe's ``model``) and
``normalizer.ckpt`` from a hub name or a local folder, and the recipe loads them
before the first training step. ``load_matching`` is the Pretrainer hook for
the model: it copies every tensor whose name and shape match, and reports the
rest (the ASR model's output layers and token embedding are the size of its
vocabulary, not of the parse tokenizer's, so they stay freshly initialised).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from speechbrain.utils.distributed import ddp_barrier, if_main_process, run_on_main

from stop_slu.checkpoints import CheckpointError, weights_only_loading

logger = logging.getLogger(__name__)

REPORT = "transfer_report.json"


class TransferError(CheckpointError):
    """A pretrained model that cannot start this one; the message names it."""


def load_matching(module: torch.nn.Module, path, min_fraction: float = 0.5) -> dict:
    """Copy into ``module`` every tensor of the state dict saved at ``path``
    whose name and shape match one of ``module``'s (a ``Pretrainer`` custom hook).

    Arguments: ``module``, the model to start; ``path``, a ``torch.save``\\ d state
    dict (read with ``weights_only=True``). Returns ``{"loaded": [...],
    "shape_mismatch": [...], "not_in_checkpoint": [...], "not_in_model": [...]}``
    (names) and writes it as ``transfer_report.json`` beside ``path``; logs the
    counts. Raises ``TransferError`` when the matching tensors hold less than
    ``min_fraction`` of the model's values (a different architecture or size:
    little more than the front-end would be transferred), before loading any.
    """
    path = Path(path)
    with weights_only_loading(path):
        state = torch.load(path, map_location="cpu", weights_only=True)
    own = module.state_dict()
    loaded = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    report = {
        "source": str(path),
        "loaded": loaded,
        "shape_mismatch": [k for k, v in state.items() if k in own and own[k].shape != v.shape],
        "not_in_checkpoint": [k for k in own if k not in state],
        "not_in_model": [k for k in state if k not in own],
    }
    n_loaded = sum(own[k].numel() for k in loaded)
    n_total = sum(v.numel() for v in own.values())
    if n_loaded < min_fraction * n_total:
        raise TransferError(
            f"{path}: only {100 * n_loaded / max(n_total, 1):.1f}% of this model's values match its names and "
            "shapes; use a pretrained model of the config's architecture and sizes (d_model, layers, front-end)"
        )
    module.load_state_dict({k: state[k] for k in loaded}, strict=False)
    logger.info(
        "Transferred %d tensors (%.1f%% of the model's values) from %s; %d kept their initialisation "
        "(shape mismatch: %d, not in the checkpoint: %d); details in %s",
        len(loaded),
        100 * n_loaded / max(n_total, 1),
        path,
        len(report["shape_mismatch"]) + len(report["not_in_checkpoint"]),
        len(report["shape_mismatch"]),
        len(report["not_in_checkpoint"]),
        path.parent / REPORT,
    )
    if if_main_process():
        (path.parent / REPORT).write_text(json.dumps(report, indent=1) + "\n")
    return report


def _drop_links(pretrainer):
    """Remove the links the Pretrainer made in its ``collect_in`` folder to
    the files it loaded (a local source or the Hugging Face cache): they lead
    out of the output folder, which must hold only its own files to be parsed
    or exported; the weights live on in the checkpoints."""
    for name in pretrainer.loadables:
        link = Path(pretrainer.collect_in) / f"{name}.ckpt"
        if link.is_symlink():
            link.unlink()


def transfer_pretrained(hparams: dict, key: str = "asr_pretrainer") -> bool:
    """Fetch (main process) and load the files of ``hparams[key]``, a SpeechBrain
    ``Pretrainer``, if the config declares one. Returns whether it did.

    Run before training starts: a resumed run recovers its own checkpoint on
    top. The links to the fetched files are removed once they are loaded
    (``transfer_report.json`` stays). Raises ``TransferError`` for a source that cannot be fetched (a missing
    local folder or file, an unknown hub name offline) or that matches nothing.
    """
    pretrainer = hparams.get(key)
    if pretrainer is None:
        return False
    try:
        run_on_main(pretrainer.collect_files)
        pretrainer.load_collected()
        ddp_barrier()  # every process has read the files
        run_on_main(_drop_links, args=[pretrainer])
    except (OSError, ValueError) as error:
        if isinstance(error, TransferError):
            raise
        sources = ", ".join(str(p) for p in pretrainer.paths.values())
        raise TransferError(
            f"{sources}: cannot fetch the pretrained model ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "pass --asr_source=<hub name or local folder holding asr.ckpt and normalizer.ckpt>"
        ) from None
    return True
