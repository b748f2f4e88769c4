"""Whisper's tokenizer for STOP parses: Whisper's byte-level BPE for the words,
one added token for every intent/slot label and for ``]``.

How a parse is tokenised: the parse is split into its tokens
(``stop_slu.parses.tokenize``); each label (``[IN:CREATE_ALARM``,
``[SL:DATE_TIME``) and each ``]`` is one added token (ids after Whisper's own,
so the decoder's embedding grows by the label inventory, see
``stop_slu.whisper.WhisperSLU``); each run of words between them is encoded by
Whisper's unchanged BPE with a leading space (``" for seven tomorrow"``), as
Whisper transcribes speech. The words therefore start from Whisper's
pretrained text knowledge, and a label costs one decoding step.

Decoding reverses it: labels as they are, word runs decoded by Whisper's BPE,
joined by single spaces; ``decode(encode(t)) == t`` is checked for every
training target. Special tokens (``<|endoftext|>``, the task prefix, ...) are
dropped.

The folder holds ``tokenizer.json`` (this module's metadata: the label
inventory, a fingerprint of the targets and of the base tokenizer) and
``whisper/`` (the pretrained model's Hugging Face tokenizer, unchanged: the
added ids follow its vocabulary, or the model's when that is larger, in the
order of ``tokenizer.json``'s ``added``; ``]`` cannot be a Hugging Face added token, since Whisper's BPE
already has a ``]`` piece). The same targets and base tokenizer reuse it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from stop_slu import parses
from stop_slu.tokenizer.meta import META_NAME, LabelMeta

logger = logging.getLogger(__name__)

HF_FOLDER = "whisper"
KIND = "whisper"
BOUNDARY = "\u2581"  # SentencePiece's word boundary: pieces() speaks SentencePiece's convention
_BPE_SPACE = "\u0120"  # "Ġ": a space in byte-level BPE pieces
# Byte-level BPE shows bytes 0-32 (control characters, space) as U+0100..U+0120:
_CONTROL = range(0x100, 0x120)


class WhisperParseTokenizer(LabelMeta):
    """A Whisper tokenizer with the parse labels added: encode parses to ids
    and decode ids back (the interface of ``ParseTokenizer``).

    Arguments
    ---------
    folder : str or Path
        A folder written by ``train_whisper_tokenizer``.
    """

    def __init__(self, folder):
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.meta = json.loads((self.folder / META_NAME).read_text())
        self.hf = AutoTokenizer.from_pretrained(str(self.folder / HF_FOLDER))
        first = int(self.meta.get("first_added_id", len(self.hf)))
        self._label_ids = {token: first + i for i, token in enumerate(self.meta["added"])}
        self._id_labels = {i: token for token, i in self._label_ids.items()}
        # Whisper's special and added tokens (task prefix, timestamps):
        self._special = set(self.hf.all_special_ids) | set(self.hf.added_tokens_decoder)

    @property
    def vocab_size(self) -> int:
        """Output size of the decoder: Whisper's tokens plus the added labels."""
        return int(self.meta.get("first_added_id", len(self.hf))) + len(self._label_ids)

    @property
    def prefix(self) -> list[int]:
        """The decoder's start tokens (start of transcript, language, task, no timestamps)."""
        return list(self.meta["prefix"])

    @property
    def eos_id(self) -> int:
        return int(self.meta["eos_id"])

    def encode(self, text: str) -> list[int]:
        """Ids of a parse (no prefix, no end-of-text). A label outside the
        inventory (only in valid/test data) is spelt in BPE pieces, as
        SentencePiece spells it: the model can never emit it."""
        ids, words = [], []

        def flush():
            if words:
                ids.extend(self.hf.encode(" " + " ".join(words), add_special_tokens=False))
                words.clear()

        for token in parses.tokenize(text):
            if token in self._label_ids:
                flush()
                ids.append(self._label_ids[token])
            else:
                words.append(token)
        flush()
        return ids

    def decode(self, ids) -> str:
        """The parse text of ``ids`` (special tokens dropped)."""
        parts, run = [], []

        def flush():
            if run:
                parts.append(self.hf.decode(run, clean_up_tokenization_spaces=False))
                run.clear()

        for i in (int(i) for i in ids):
            if i in self._id_labels:
                flush()
                parts.append(self._id_labels[i])
            elif 0 <= i < len(self.hf) and i not in self._special:
                run.append(i)
        flush()
        return " ".join(" ".join(parts).split())

    def piece(self, token_id: int) -> str:
        return self.pieces()[int(token_id)]

    def pieces(self) -> list[str]:
        """Every id's piece in SentencePiece's convention, for the tree-constrained
        search (``stop_slu.search.token_classes``): ``▁`` + label for labels and
        ``]``; ``▁word`` for a BPE piece that starts a word (``Ġword``), the piece
        as it is for a word continuation; ``<special>`` for Whisper's special
        tokens and for pieces the search must never emit (control bytes, a space
        inside a piece)."""
        if getattr(self, "_pieces", None) is None:
            out = []
            for i, piece in enumerate(self.hf.convert_ids_to_tokens(list(range(len(self.hf))))):
                if i in self._special or piece is None:
                    out.append("<special>")
                else:
                    body = piece[1:] if piece.startswith(_BPE_SPACE) else piece
                    if any(ord(c) in _CONTROL or c == _BPE_SPACE for c in body) or BOUNDARY in piece:
                        out.append("<unusable>")
                    else:
                        out.append(BOUNDARY + body if piece.startswith(_BPE_SPACE) else body)
            out += ["<unused>"] * (self.vocab_size - len(self._label_ids) - len(out))  # model rows past the tokenizer
            self._pieces = out + [BOUNDARY + token for token in self.meta["added"]]
        return self._pieces


def _fingerprint(targets, base) -> str:
    h = hashlib.sha256(json.dumps({"kind": KIND, "base_size": len(base), "prefix": base.prefix_tokens}).encode())
    h.update(json.dumps(base.get_vocab(), sort_keys=True).encode())
    for target in targets:
        h.update(target.encode() + b"\n")
    return h.hexdigest()


def train_whisper_tokenizer(targets, folder, base, model_vocab: int = 0) -> WhisperParseTokenizer:
    """Build (or reuse) the tokenizer for ``targets`` in ``folder`` from
    ``base``, the pretrained model's Hugging Face Whisper tokenizer (saved
    unchanged). The added ids start after the larger of the tokenizer's
    vocabulary and ``model_vocab``, the model's embedding rows. Raises ValueError when there is no target or a
    target does not round-trip."""
    folder = Path(folder)
    targets = [parses.canonical(t) for t in targets]
    if not targets:
        raise ValueError("no training targets to build a tokenizer from")
    first = max(len(base), int(model_vocab))
    fingerprint = _fingerprint(targets, base) + f"-{first}"
    meta_path = folder / META_NAME
    if meta_path.is_file() and (folder / HF_FOLDER).is_dir():
        if json.loads(meta_path.read_text()).get("fingerprint") == fingerprint:
            logger.info("Tokenizer up to date: %s", folder)
            return WhisperParseTokenizer(folder)
        logger.info("Training targets changed: rebuilding the tokenizer in %s", folder)

    labels = sorted(set().union(*(parses.labels(t) for t in targets)))
    added = labels + [parses.CLOSE]
    folder.mkdir(parents=True, exist_ok=True)
    base.save_pretrained(str(folder / HF_FOLDER))
    meta = {
        "kind": KIND,
        "fingerprint": fingerprint,
        "labels": labels,
        "empty_slots": sorted(set().union(*(parses.empty_slots(t) for t in targets))),
        "added": added,
        "n_targets": len(targets),
        "base_vocab_size": len(base),
        "first_added_id": first,
        "prefix": list(base.prefix_tokens),
        "eos_id": int(base.eos_token_id),
        "vocab_size_actual": first + len(added),
    }
    tmp = folder / (META_NAME + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(meta_path)
    tokenizer = WhisperParseTokenizer(folder)
    bad = next((t for t in targets if tokenizer.decode(tokenizer.encode(t)) != t), None)
    if bad is not None:
        meta_path.unlink()
        raise ValueError(f"the Whisper tokenizer does not round-trip the target {bad!r}")
    return tokenizer
