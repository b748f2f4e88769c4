"""The search's two scorers in numpy, step for step those of the PyTorch
search (tests hold them equal on the same inputs):

- ``TreeConstraint``: ``stop_slu.search.TreeConstraintScorer`` (0 for the
  tokens the parse grammar allows next, -1e20 for the rest);
- ``CTCPrefixScorer``: SpeechBrain's ``CTCPrefixScore`` (Algorithm 2 of Watanabe
  et al. 2017) for one utterance, scoring only the pre-beam candidates.

Shapes: ``hyps`` hypotheses (the beam), ``vocab`` output tokens, ``frames``
encoder frames. Scores are float32 like the PyTorch search's.
"""

from __future__ import annotations

import numpy as np

MINUS_INF = -1e20
# Kind of the last token of a hypothesis (as stop_slu.search).
START, OPEN, CLOSE, WORD, SPACE, BROKEN = range(6)
TOKEN_CLASSES = ("intent", "slot", "close", "word_start", "word_cont", "space", "eos", "empty_ok")


class TreeConstraint:
    """The tree constraint over token-class tables (``classes[name]``: bool (vocab,),
    the names of ``TOKEN_CLASSES``, written by the export from the tokenizer).

    ``limit``: the search's step limit (``int(frames * max_decode_ratio)``)."""

    def __init__(self, classes: dict, bos_index: int, words_in_intents: bool, enabled: bool = True):
        self.classes = {name: np.asarray(classes[name], dtype=bool) for name in TOKEN_CLASSES}
        self.bos_index = bos_index
        self.words_in_intents = bool(words_in_intents)
        self.enabled = bool(enabled)

    def initial_state(self, tokens: np.ndarray, limit: int) -> dict:
        n = len(tokens)
        return {
            "limit": limit,
            "step": 0,
            "depth": np.zeros(n, dtype=np.int64),
            "last": np.full(n, START, dtype=np.int64),
            "token": tokens.copy(),
        }

    def score(self, tokens: np.ndarray, state: dict | None, limit: int) -> tuple[np.ndarray, dict]:
        """Scores (hyps, vocab) for the next token after ``tokens`` (hyps,), and
        the new state (None at the first step, when ``tokens`` are the bos)."""
        state = self.initial_state(tokens, limit) if state is None else self.advance(state, tokens)
        scores = np.zeros((len(tokens), len(self.classes["eos"])), dtype=np.float32)
        if self.enabled:
            scores[~self.allowed(state)] = MINUS_INF
        return scores, state

    def advance(self, state: dict, tokens: np.ndarray) -> dict:
        c = {name: mask[tokens] for name, mask in self.classes.items()}
        depth, last = state["depth"].copy(), state["last"].copy()
        opened = c["intent"] | c["slot"]
        depth += opened.astype(np.int64) - c["close"].astype(np.int64)
        last[opened] = OPEN
        last[c["close"]] = CLOSE
        last[c["word_start"] | c["word_cont"]] = WORD
        last[c["space"]] = SPACE
        known = opened | c["close"] | c["word_start"] | c["word_cont"] | c["space"] | c["eos"]
        last[~known & (tokens != self.bos_index)] = BROKEN
        return {**state, "depth": depth, "last": last, "token": tokens.copy(), "step": state["step"] + 1}

    def allowed(self, state: dict) -> np.ndarray:
        """(hyps, vocab) bool: the tokens the grammar allows next."""
        depth, last, classes = state["depth"], state["last"], self.classes
        left = state["limit"] - 1 - state["step"]
        in_intent = depth % 2 == 1
        in_slot = (depth % 2 == 0) & (depth > 0)
        started, done = last != START, (depth == 0) & (last == CLOSE)
        open_intent = (((depth == 0) & ~started) | in_slot) & (depth + 2 <= left)
        open_slot = in_intent & (depth + 3 <= left)
        words_here = in_slot | (in_intent & self.words_in_intents)
        word_fits = depth + 1 <= left
        word_start = words_here & (last != SPACE) & word_fits
        space = word_start & (depth + 2 <= left)
        word_cont = words_here & ((last == WORD) | (last == SPACE)) & word_fits
        empty_slot = in_slot & (last == OPEN) & ~classes["empty_ok"][state["token"]]
        close = (depth > 0) & (last != SPACE) & ~empty_slot
        rows = [
            (open_intent, "intent"),
            (open_slot, "slot"),
            (close, "close"),
            (word_start, "word_start"),
            (space, "space"),
            (word_cont, "word_cont"),
            (done | (last == BROKEN), "eos"),
        ]
        allowed = np.zeros((len(depth), len(classes["eos"])), dtype=bool)
        for row, name in rows:
            allowed |= row[:, None] & classes[name][None, :]
        return allowed

    @staticmethod
    def permute(state: dict, index: np.ndarray) -> dict:
        return {**state, "depth": state["depth"][index], "last": state["last"][index], "token": state["token"][index]}


def _logaddexp(a, b):
    return np.logaddexp(a, b, dtype=np.float32)


class CTCPrefixScorer:
    """CTC prefix scores of one utterance: ``log_probs`` (frames, vocab), the
    encoder's CTC log-probabilities. ``score`` gives, per hypothesis, the
    change of its CTC prefix log-probability for each candidate token
    (-1e20 off the candidates and for the blank); ``permute`` follows the
    beam's choice of (hypothesis, token)."""

    def __init__(self, log_probs: np.ndarray, blank_index: int, eos_index: int):
        self.x = np.asarray(log_probs, dtype=np.float32)
        self.blank_index, self.eos_index = blank_index, eos_index
        self.frames, self.vocab = self.x.shape
        self.prefix_length = -1

    def score(self, last_tokens: np.ndarray, state, candidates: np.ndarray) -> tuple[np.ndarray, tuple]:
        """``last_tokens`` (hyps,), ``candidates`` (hyps, n) token ids ->
        (scores (hyps, vocab), state)."""
        n_hyps, n_cand = candidates.shape
        frames, x = self.frames, self.x
        self.prefix_length += 1
        if state is None:
            r_prev = np.full((frames, 2, n_hyps), MINUS_INF, dtype=np.float32)
            r_prev[:, 1] = np.cumsum(x[:, self.blank_index], dtype=np.float32)[:, None]
            psi_prev = np.zeros((n_hyps, self.vocab), dtype=np.float32)
        else:
            r_prev, psi_prev = state
        x_nb = x[:, candidates]  # (frames, hyps, n)
        x_b = np.broadcast_to(x[:, self.blank_index][:, None, None], x_nb.shape)
        r = np.full((frames, 2, n_hyps, n_cand), MINUS_INF, dtype=np.float32)
        if self.prefix_length == 0:
            r[0, 0] = x_nb[0]
        r_sum = _logaddexp(r_prev[:, 0], r_prev[:, 1])  # (frames, hyps)
        phi = np.repeat(r_sum[:, :, None], n_cand, axis=2)
        hyp, position = np.nonzero(candidates == last_tokens[:, None])
        phi[:, hyp, position] = r_prev[:, 1, hyp]
        start = max(1, self.prefix_length)
        for t in range(start, frames):
            r[t, 0] = _logaddexp(r[t - 1, 0], phi[t - 1]) + x_nb[t]
            r[t, 1] = _logaddexp(r[t - 1, 0], r[t - 1, 1]) + x_b[t]
        phix = np.concatenate([phi[:1], phi[:-1]], axis=0) + x_nb
        stacked = np.concatenate([phix[start:frames], r[start - 1, 0][None]], axis=0)
        top = stacked.max(axis=0)
        psi_cand = top + np.log(np.exp(stacked - top).sum(axis=0, dtype=np.float32))
        psi = np.full((n_hyps, self.vocab), MINUS_INF, dtype=np.float32)
        psi[np.arange(n_hyps)[:, None], candidates] = psi_cand
        psi[:, self.eos_index] = r_sum[frames - 1]
        if self.eos_index != self.blank_index:
            psi[:, self.blank_index] = MINUS_INF
        return psi - psi_prev, (r, psi, candidates)

    def permute(self, state: tuple, chosen: np.ndarray) -> tuple:
        """``chosen`` (hyps,): flat indices ``hypothesis * vocab + token`` the beam kept."""
        r, psi, candidates = state
        hyp, token = chosen // self.vocab, chosen % self.vocab
        new_psi = np.repeat(psi.reshape(-1)[chosen][:, None], self.vocab, axis=1)
        match = candidates[hyp] == token[:, None]
        position = np.where(match.any(axis=1), match.argmax(axis=1), 0)
        return r[:, :, hyp, position], new_psi
