"""Tree-constrained search: every finished hypothesis is a well-formed parse.

``TreeConstraintScorer`` is a full scorer for SpeechBrain's beam search (it sits
in the YAML's ``ScorerBuilder`` beside the CTC scorer). At each step it adds 0
to the tokens the parse grammar allows after the hypothesis so far and a huge
negative score to the rest:

- the first token is an intent label; end-of-sequence only after the root closed;
- ``]`` only closes an open node, and closes a slot with nothing in it only
  for a slot label that some training target leaves empty (the release
  annotates a few, e.g. ``[SL:PERSON_REMINDED ]``);
- slots sit directly inside intents and intents directly inside slots;
- labels come from the tokenizer, i.e. from the inventory seen in training;
- words sit only directly inside slots, unless ``words_in_intents`` (full
  parses, where the words between slots belong to the intent);
- a word-continuation piece only continues a word, never follows a label;
- with the steps left before the search's length limit, every open node can
  still be closed (so even a hypothesis cut off by the limit is complete).

The rules are those of ``stop_slu.parses.parse_tree``; the scorer tracks, per
hypothesis, the nesting depth and the kind of the last token, so each step is a
few tensor operations over the vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import torch
from speechbrain.decoders.scorer import BaseScorerInterface
from speechbrain.decoders.scorer import ScorerBuilder as _SBScorerBuilder

from stop_slu import parses
from stop_slu.tokenizer.parse_tokenizer import BOUNDARY, load_tokenizer

# Kind of the last token of a hypothesis.
START, OPEN, CLOSE, WORD, SPACE, BROKEN = range(6)
# Token classes over the vocabulary.
_CLASSES = ("intent", "slot", "close", "word_start", "word_cont", "space", "eos")


def token_classes(pieces: list[str], eos_index: int) -> dict[str, list[bool]]:
    """Which vocabulary entries are intent labels, slot labels, ``]``, word
    starts (``▁word``), word continuations, a lone ``▁``, and end-of-sequence.
    Anything else (pad/blank, unk, bos, a piece holding a bracket) is never allowed.

    ``pieces`` follow SentencePiece's convention (``▁`` marks a word start, labels
    are ``▁[IN:X``); the Whisper tokenizer's ``pieces()`` converts its byte-level
    BPE pieces to it (``Ġword`` -> ``▁word``, special tokens as ``<special>``)."""
    classes = {name: [False] * len(pieces) for name in _CLASSES}
    for index, piece in enumerate(pieces):
        text = piece[1:] if piece.startswith(BOUNDARY) else piece
        if index == eos_index:
            name = "eos"
        elif piece.startswith("<") and piece.endswith(">"):  # <pad> <unk> <s> </s>
            continue
        elif piece == BOUNDARY + parses.CLOSE:
            name = "close"
        elif piece.startswith(BOUNDARY) and parses.is_intent(text):
            name = "intent"
        elif piece.startswith(BOUNDARY) and parses.is_slot(text):
            name = "slot"
        elif "[" in piece or "]" in piece:
            continue
        elif piece == BOUNDARY:
            name = "space"
        elif piece.startswith(BOUNDARY):
            name = "word_start"
        else:
            name = "word_cont"
        classes[name][index] = True
    return classes


def utterance_step_limits(enc_states: torch.Tensor, enc_lens, max_decode_ratio: float) -> torch.Tensor:
    """Each utterance's step limit, ``int(frames * max_decode_ratio)`` of its
    own frames (SpeechBrain's limit for a batch of one), as a (batch,) long
    tensor. ``enc_states``: (batch, frames, dim); ``enc_lens``: the frames of
    each utterance (batch,), or None for the whole padded length."""
    frames = [enc_states.shape[1]] * enc_states.shape[0] if enc_lens is None else enc_lens.tolist()
    return torch.tensor([int(n * max_decode_ratio) for n in frames], dtype=torch.long)


class TreeConstraintScorer(BaseScorerInterface):
    """Masks the tokens that would make a hypothesis an ill-formed parse.

    Arguments
    ---------
    tokenizer_folder : str
        Folder of the trained tokenizer, SentencePiece or Whisper's (read on
        first use, since the recipe trains it after the YAML is loaded).
    eos_index, bos_index : int
        Special ids of the search.
    max_decode_ratio : float
        The searcher's ratio: the step limit is ``int(encoder_frames * ratio)``.
    words_in_intents : bool
        True when targets are full parses (words between slots belong to the
        intent); False for decoupled targets (words only inside slots).
    enabled : bool
        False turns the constraint off (scores are all zero).
    """

    def __init__(
        self,
        tokenizer_folder,
        eos_index,
        bos_index,
        max_decode_ratio=1.0,
        words_in_intents=True,
        enabled=True,
        minus_inf=-1e20,
    ):
        self.tokenizer_folder = Path(tokenizer_folder)
        self.eos_index = eos_index
        self.bos_index = bos_index
        self.max_decode_ratio = max_decode_ratio
        self.words_in_intents = words_in_intents
        self.enabled = enabled
        self.minus_inf = minus_inf
        self._classes = None

    # -- vocabulary ----------------------------------------------------------
    def set_vocabulary(self, pieces: list[str], empty_slots=()):
        """Build the token-class masks (done from the tokenizer on first use).
        ``empty_slots``: the slot labels (``[SL:Y``) that may close empty."""
        masks = token_classes(pieces, self.eos_index)
        empty = {BOUNDARY + label for label in empty_slots}
        masks["empty_ok"] = [is_slot and piece in empty for is_slot, piece in zip(masks["slot"], pieces)]
        self._classes = {name: torch.tensor(flags) for name, flags in masks.items()}

    def _masks(self, device):
        if self._classes is None:
            tokenizer = load_tokenizer(self.tokenizer_folder)
            self.set_vocabulary(tokenizer.pieces(), tokenizer.empty_slots)
        if self._classes["eos"].device != device:
            self._classes = {k: v.to(device) for k, v in self._classes.items()}
        return self._classes

    # -- scorer interface ----------------------------------------------------
    def reset_mem(self, x, enc_lens):
        """State: (depth, kind of last token, step, step limit); built on the
        first call, when the number of hypotheses is known. ``x``: encoder
        states (batch, frames, dim); ``enc_lens``: each utterance's frames
        (batch,), or None when none is padded. Each utterance gets its own step
        limit, the one it has when searched alone, so that padding in a batch
        changes no parse."""
        return {"limit": utterance_step_limits(x, enc_lens, self.max_decode_ratio)}

    def permute_mem(self, memory, index):
        if "depth" in memory:
            memory = {
                **memory,
                "depth": memory["depth"][index],
                "last": memory["last"][index],
                "token": memory["token"][index],
                "limit": memory["limit"][index],
            }
        return memory

    def score(self, inp_tokens, memory, candidates, attn):
        classes = self._masks(inp_tokens.device)
        n_hyps, vocab = inp_tokens.shape[0], classes["eos"].shape[0]
        if "depth" not in memory:
            limit = memory["limit"].to(inp_tokens.device)
            memory = {
                **memory,
                "limit": limit.repeat_interleave(n_hyps // limit.shape[0]),  # per hypothesis: beams of an utterance
                "step": 0,
                "depth": torch.zeros(n_hyps, dtype=torch.long, device=inp_tokens.device),
                "last": torch.full((n_hyps,), START, dtype=torch.long, device=inp_tokens.device),
                "token": inp_tokens.clone(),
            }
        else:
            memory = {**memory, **self._advance(memory, inp_tokens, classes)}
        if not self.enabled:
            return torch.zeros(n_hyps, vocab, device=inp_tokens.device), memory
        allowed = self._allowed(memory, classes)
        scores = torch.zeros(n_hyps, vocab, device=inp_tokens.device)
        scores.masked_fill_(~allowed, self.minus_inf)
        return scores, memory

    # -- the grammar -----------------------------------------------------------
    def _advance(self, memory, tokens, classes):
        """State after appending ``tokens`` (one per hypothesis)."""
        depth, last = memory["depth"].clone(), memory["last"].clone()
        is_ = {name: mask[tokens] for name, mask in classes.items()}
        opened = is_["intent"] | is_["slot"]
        depth += opened.long() - is_["close"].long()
        last[opened] = OPEN
        last[is_["close"]] = CLOSE
        last[is_["word_start"] | is_["word_cont"]] = WORD
        last[is_["space"]] = SPACE
        known = opened | is_["close"] | is_["word_start"] | is_["word_cont"] | is_["space"] | is_["eos"]
        last[~known & (tokens != self.bos_index)] = BROKEN  # a masked token forced by a starved beam
        return {"depth": depth, "last": last, "token": tokens.clone(), "step": memory["step"] + 1}

    def _allowed(self, memory, classes):
        """(hyps, vocab) boolean mask of the tokens allowed next."""
        depth, last = memory["depth"], memory["last"]
        left = memory["limit"] - 1 - memory["step"]  # steps after this one
        col = lambda t: t.unsqueeze(1)  # noqa: E731  (per hypothesis -> column)
        in_intent = depth % 2 == 1  # strict alternation: odd depth = intent
        in_slot = (depth % 2 == 0) & (depth > 0)
        started, done = last != START, (depth == 0) & (last == CLOSE)
        after_word = last == WORD

        # Budget: a new node needs its closing brackets (and a slot one word)
        # plus end-of-sequence to fit in the steps left.
        open_intent = (depth == 0) & ~started | in_slot
        open_intent &= depth + 2 <= left
        open_slot = in_intent & (depth + 3 <= left)
        words_here = in_slot | (in_intent & self.words_in_intents)
        word_fits = depth + 1 <= left
        word_start = words_here & (last != SPACE) & word_fits
        space = word_start & (depth + 2 <= left)  # a lone "▁" needs a piece after it
        word_cont = words_here & (after_word | (last == SPACE)) & word_fits
        empty_slot = in_slot & (last == OPEN) & ~classes["empty_ok"][memory["token"]]
        close = (depth > 0) & (last != SPACE) & ~empty_slot
        eos = done

        allowed = (
            col(open_intent) & classes["intent"]
            | col(open_slot) & classes["slot"]
            | col(close) & classes["close"]
            | col(word_start) & classes["word_start"]
            | col(space) & classes["space"]
            | col(word_cont) & classes["word_cont"]
            | col(eos) & classes["eos"]
        )
        # Hypotheses already off the grammar (only when the beam was starved of
        # allowed tokens) keep their huge negative score; let them end.
        return allowed | col(last == BROKEN) & classes["eos"]


class ScorerBuilder(_SBScorerBuilder):
    """SpeechBrain's ScorerBuilder, also accepting scorers defined outside
    ``speechbrain.decoders.scorer`` (its check only knows that module's names),
    and blocking the CTC blank for a partial CTC scorer too (SpeechBrain blocks
    it only when CTC scores the full vocabulary)."""

    def score(self, inp_tokens, memory, attn, log_probs, beam_size):
        ctc = self.partial_scorers.get("ctc")
        if ctc is not None:
            log_probs[:, ctc.blank_index] = -1e20
        return super().score(inp_tokens, memory, attn, log_probs, beam_size)

    def _validate_scorer(self, scorer_names):
        extra = [name for name in {**self.full_scorers, **self.partial_scorers} if name not in scorer_names]
        super()._validate_scorer(list(scorer_names) + extra)


def words_in_intents(target_column: str) -> bool:
    """Whether a target column's parses hold words directly inside intents
    (full parses do; the decoupled forms keep words only inside slots)."""
    return not str(target_column).startswith("decoupled")
