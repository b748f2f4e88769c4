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
from stop_slu.tokenizer.meta import META_NAME, LabelMeta

logger = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_NAME = "tokenizer.model"
BOUNDARY = "\u2581"
MODEL_TYPES = ("unigram", "bpe", "char")


def label_inventory(targets) -> list[str]:
    """Sorted label tokens (``[IN:X``, ``[SL:Y``) used in ``targets``."""
    found = set()
    for target in targets:
        found |= parses.labels(target)
    return sorted(found)


class ParseTokenizer(LabelMeta):
    """A trained tokenizer: encode parses to ids and decode ids back."""

    def __init__(self, folder):
        folder = Path(folder)
        self.folder = folder
        self.sp = spm.SentencePieceProcessor(model_file=str(folder / MODEL_NAME))
        meta_path = folder / META_NAME
        self.meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}

    @property
    def vocab_size(self) -> int:
        """Number of pieces, special ids included: the model's output size."""
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """A canonical parse -> piece ids (no bos/eos)."""
        return self.sp.encode(text, out_type=int)

    def decode(self, ids) -> str:
        """Piece ids (pad, bos and eos ignored) -> text."""
        ids = [int(i) for i in ids if int(i) not in (PAD_ID, BOS_ID, EOS_ID)]
        return self.sp.decode(ids)

    def piece(self, token_id: int) -> str:
        """The piece of one id (labels begin with the word boundary ``▁``)."""
        return self.sp.id_to_piece(int(token_id))

    def pieces(self) -> list[str]:
        """Every piece, by id."""
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]


def _fingerprint(targets, options: dict) -> str:
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for target in targets:
        h.update(target.encode() + b"\n")
    return h.hexdigest()


class VocabSizeError(ValueError):
    """A vocabulary size the training targets cannot fit; the message gives the smallest usable one."""


def smallest_vocab_size(targets) -> int:
    """The smallest SentencePiece vocabulary for ``targets`` (canonical parses):
    the 4 special ids, every label and ``]`` as one piece each, and every
    character of the words (``character_coverage=1.0``) plus the word
    boundary ``▁``, SentencePiece's own lower bound."""
    labels = label_inventory(targets)
    words = [token for target in targets for token in target.split() if not token.startswith("[") and token != "]"]
    characters = set("".join(words)) | {BOUNDARY}
    return 4 + len(labels) + 1 + len(characters)


def train_tokenizer(
    targets,
    folder,
    vocab_size: int = 500,
    model_type: str = "unigram",
    target_column: str | None = None,
) -> ParseTokenizer:
    """Train (or reuse) the tokenizer for ``targets`` in ``folder``.

    ``targets``: STOP parses (strings); ``vocab_size``: the requested number
    of pieces (a soft limit: small corpora give fewer); ``model_type``:
    SentencePiece's ``unigram``, ``bpe`` or ``char``; ``target_column``: the
    manifest column the targets came from, recorded in ``tokenizer.json``.
    Every label seen in ``targets`` becomes a single piece, and
    ``decode(encode(t)) == t`` holds for every target (checked here).

    Raises ``ValueError`` (one line) for no targets or an unknown
    ``model_type``, and its subclass ``VocabSizeError`` for a ``vocab_size``
    below ``smallest_vocab_size(targets)``.
    """
    folder = Path(folder)
    targets = [parses.canonical(t) for t in targets]
    if not targets:
        raise ValueError("no training targets to build a tokenizer from")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown tokenizer type {model_type!r}; use one of {', '.join(MODEL_TYPES)}")
    labels = label_inventory(targets)
    smallest = smallest_vocab_size(targets)
    if int(vocab_size) < smallest:
        raise VocabSizeError(
            f"--vocab_size={vocab_size}: below the smallest usable size for these training targets, "
            f"{smallest} (4 special ids, {len(labels)} labels and ']' as single pieces, "
            f"{smallest - 5 - len(labels)} characters); pass --vocab_size={smallest} or more"
        )
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
    try:
        _train_sentencepiece(targets, model, vocab_size, model_type, symbols)
    except RuntimeError as error:  # the sizes were checked above: anything else SentencePiece refuses
        raise ValueError(f"SentencePiece could not train: {str(error).splitlines()[0]}") from None
    tmp = folder / (MODEL_NAME + ".tmp")
    tmp.write_bytes(model.getvalue())
    tmp.replace(folder / MODEL_NAME)
    empty = sorted(set().union(*(parses.empty_slots(t) for t in targets)))
    meta = {"fingerprint": fingerprint, "labels": labels, "empty_slots": empty, "n_targets": len(targets), **options}
    if target_column:
        meta["target_column"] = target_column
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
    logger.info("Tokenizer trained in %s: %d pieces from %d targets", folder, tokenizer.vocab_size, len(targets))
    return tokenizer


def _train_sentencepiece(targets, model, vocab_size, model_type, symbols):
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
