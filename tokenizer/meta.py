"""The metadata file both tokenizers keep beside their model (``tokenizer.json``):
its name and what both read from it."""

from __future__ import annotations

META_NAME = "tokenizer.json"


class LabelMeta:
    """What both tokenizers (SentencePiece, Whisper) read from their folder's
    ``tokenizer.json``, held as the dict ``self.meta``."""

    meta: dict

    @property
    def labels(self) -> list[str]:
        """The intent and slot labels of the training targets (``[IN:X``, ``[SL:Y``)."""
        return self.meta.get("labels", [])

    @property
    def empty_slots(self) -> list[str]:
        """Slot labels (``[SL:Y``) that some training target leaves empty."""
        return self.meta.get("empty_slots", [])
