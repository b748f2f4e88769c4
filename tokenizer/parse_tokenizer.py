"""SentencePiece for STOP parses, with every intent/slot label and ``]`` as one piece.

Labels are registered with SentencePiece's word-boundary mark (``▁[IN:X``,
``▁]``), so a label costs one token rather than a lone ``▁`` plus the label.
Ids: 0 pad (also the CTC blank), 1 unk, 2 bos, 3 eos.

The folder holds ``tokenizer.model`` plus ``tokenizer.json`` (the options, the
label inventory and a fingerprint of the training targets): a different target
set or option retrains the model, the same one reuses it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import sentencepiece as spm

from stop_slu import parses

logger = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_NAME = "tokenizer.model"
META_NAME = "tokenizer.json"
BOUNDARY = "\u2581"


def label_inventory(targets) -> list[str]:
    """Sorted label tokens (``[IN:X``, ``[SL:Y``) used in ``targets``."""
    found = set()
    for target in targets:
        found |= parses.labels(target)
    return sorted(found)


class ParseTokenizer:
    """A trained tokenizer: encode parses to ids and decode ids back."""

    def __init__(self, folder):
        folder = Path(folder)
        self.folder = folder
        self.sp = spm.SentencePieceProcessor(model_file=str(folder / MODEL_NAME))
        meta_path = folder / META_NAME
        self.meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    @property
    def labels(self) -> list[str]:
        return self.meta.get("labels", [])

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text, out_type=int)

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids if int(i) not in (PAD_ID, BOS_ID, EOS_ID)]
        return self.sp.decode(ids)

    def piece(self, token_id: int) -> str:
        return self.sp.id_to_piece(int(token_id))

    def pieces(self) -> list[str]:
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]


def _fingerprint(targets, options: dict) -> str:
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for target in targets:
        h.update(target.encode() + b"\n")
    return h.hexdigest()


def train_tokenizer(
    targets,
    folder,
    vocab_size: int = 500,
    model_type: str = "unigram",
) -> ParseTokenizer:
    """Train (or reuse) the tokenizer for ``targets`` in ``folder``.

    Every label seen in ``targets`` becomes a single piece, and
    ``decode(encode(t)) == t`` holds for every target (checked here).
    """
    folder = Path(folder)
    targets = [parses.canonical(t) for t in targets]
    if not targets:
        raise ValueError("no training targets to build a tokenizer from")
    labels = label_inventory(targets)
    options = {"vocab_size": int(vocab_size), "model_type": model_type}
    fingerprint = _fingerprint(targets, options)
    meta_path = folder / META_NAME
    if meta_path.is_file() and (folder / MODEL_NAME).is_file():
        if json.loads(meta_path.read_text()).get("fingerprint") == fingerprint:
            logger.info("Tokenizer up to date: %s", folder)
            return ParseTokenizer(folder)
        logger.info("Training targets changed: retraining the tokenizer in %s", folder)

    folder.mkdir(parents=True, exist_ok=True)
    symbols = [BOUNDARY + label for label in labels] + [BOUNDARY + parses.CLOSE]
    model = io.BytesIO()  # in memory: no file paths end up inside the model
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(targets),
        model_writer=model,
        vocab_size=int(vocab_size),
        model_type=model_type,
        user_defined_symbols=symbols,
        character_coverage=1.0,
        normalization_rule_name="identity",
        hard_vocab_limit=False,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        num_threads=1,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    tmp = folder / (MODEL_NAME + ".tmp")
    tmp.write_bytes(model.getvalue())
    tmp.replace(folder / MODEL_NAME)
    meta = {"fingerprint": fingerprint, "labels": labels, "n_targets": len(targets), **options}
    tokenizer = ParseTokenizer.__new__(ParseTokenizer)
    tokenizer.folder, tokenizer.meta = folder, meta
    tokenizer.sp = spm.SentencePieceProcessor(model_file=str(folder / MODEL_NAME))
    bad = next((t for t in targets if tokenizer.decode(tokenizer.encode(t)) != t), None)
    if bad is not None:
        raise ValueError(f"tokenizer does not round-trip the target {bad!r}")
    meta["vocab_size_actual"] = tokenizer.vocab_size
    tmp = folder / (META_NAME + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(meta_path)
    return tokenizer


def load_tokenizer(folder):
    """The trained tokenizer in ``folder``: a ``ParseTokenizer`` (SentencePiece),
    or a ``WhisperParseTokenizer`` (Whisper's BPE with added labels, written by
    the Whisper config), whichever ``tokenizer.json`` says."""
    meta_path = Path(folder) / META_NAME
    kind = json.loads(meta_path.read_text()).get("kind") if meta_path.is_file() else None
    if kind == "whisper":
        from stop_slu.tokenizer.whisper_tokenizer import WhisperParseTokenizer

        return WhisperParseTokenizer(folder)
    return ParseTokenizer(folder)


def has_tokenizer(folder) -> bool:
    """Whether ``folder`` holds a trained tokenizer of either kind."""
    folder = Path(folder)
    return (folder / MODEL_NAME).is_file() or (folder / META_NAME).is_file() and (folder / "whisper").is_dir()
