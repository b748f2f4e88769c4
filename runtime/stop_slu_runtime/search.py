"""The recipe's test search in numpy, for one utterance: SpeechBrain's
``S2SBeamSearcher`` as the recipe configures it (``test_search`` of the
config, with ``stop_slu.search.ScorerBuilder``), step for step:

1. attention log-probabilities of the decoder step, times ``1 - ctc_weight``;
2. end-of-sequence barred before ``min_decode_steps``; the CTC blank barred;
3. the tree constraint added (weight 1);
4. the CTC pre-beam: the ``beam * scorer_beam_scale`` best tokens of each
   hypothesis so far get CTC prefix scores (times ``ctc_weight``), the rest -1e20;
5. the beam keeps the ``beam`` best (hypothesis, token) pairs by
   length-normalised score; a hypothesis ending in end-of-sequence is set aside
   (``beam`` at most), and the search stops when ``beam`` have ended or after
   ``max_decode_steps``; the best set-aside hypothesis wins.

``decoder`` is any object with ``step(tokens) -> log_probs (hyps, vocab)`` and
``permute(index)``; ``OnnxParser`` runs the exported decoder step with its
attention caches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stop_slu_runtime.scoring import MINUS_INF, CTCPrefixScorer, TreeConstraint


@dataclass(frozen=True)
class SearchConfig:
    """The search settings of the recipe's ``test_search`` (from the manifest)."""

    beam_size: int
    bos_index: int
    eos_index: int
    blank_index: int
    min_decode_ratio: float
    max_decode_ratio: float
    ctc_weight: float
    scorer_beam_scale: float
    length_normalization: bool = True
    tree_weight: float = 1.0


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values of each row, largest first (ties: lower index first)."""
    return np.argsort(-values, axis=-1, kind="stable")[..., :k]


def beam_search(config: SearchConfig, ctc_log_probs: np.ndarray, decoder, tree: TreeConstraint | None):
    """(token ids without bos/eos, length-normalised score) of the best
    hypothesis. ``ctc_log_probs``: (frames, vocab) of the encoder."""
    beam, eos = config.beam_size, config.eos_index
    frames, vocab = ctc_log_probs.shape
    min_steps = int(frames * config.min_decode_ratio)
    max_steps = int(frames * config.max_decode_ratio)
    ctc = CTCPrefixScorer(ctc_log_probs, config.blank_index, eos) if config.ctc_weight > 0 else None
    attn_weight = 1.0 - config.ctc_weight
    tokens = np.full(beam, config.bos_index, dtype=np.int64)
    sequence_scores = np.full(beam, -np.inf, dtype=np.float32)
    sequence_scores[0] = 0.0
    sequences = np.zeros((beam, 0), dtype=np.int64)
    tree_state = ctc_state = None
    ended: list[tuple[np.ndarray, float]] = []
    scores = None
    for step in range(max_steps):
        if len(ended) == beam:
            break
        log_probs = decoder.step(tokens).astype(np.float32)
        if attn_weight != 1.0:
            log_probs = np.float32(attn_weight) * log_probs
        if step < min_steps:
            log_probs[:, eos] = MINUS_INF
        if ctc is not None:
            log_probs[:, config.blank_index] = MINUS_INF
        if tree is not None:
            tree_scores, tree_state = tree.score(tokens, tree_state, int(frames * config.max_decode_ratio))
            log_probs = log_probs + tree_scores * np.float32(config.tree_weight)
        if ctc is not None:
            n_cand = max(1, min(int(beam * config.scorer_beam_scale), vocab))
            candidates = _top(log_probs, n_cand)
            ctc_scores, ctc_state = ctc.score(tokens, ctc_state, candidates)
            log_probs = log_probs + ctc_scores * np.float32(config.ctc_weight)
        scores = sequence_scores[:, None] + log_probs
        if config.length_normalization:
            scores = scores / np.float32(step + 1)
        flat = scores.reshape(-1)
        chosen = _top(flat, beam)
        scores = flat[chosen]
        tokens = (chosen % vocab).astype(np.int64)
        predecessors = chosen // vocab
        sequence_scores = scores * np.float32(step + 1) if config.length_normalization else scores.copy()
        decoder.permute(predecessors)
        if tree is not None:
            tree_state = tree.permute(tree_state, predecessors)
        if ctc is not None:
            ctc_state = ctc.permute(ctc_state, chosen)
        sequences = np.concatenate([sequences[predecessors], tokens[:, None]], axis=1)
        for index in np.nonzero(tokens == eos)[0]:
            if len(ended) < beam:
                ended.append((sequences[index], float(scores[index])))
        sequence_scores[tokens == eos] = -np.inf
    if scores is None:
        raise ValueError("no decoding step: the audio is too short for this model")
    if len(ended) < beam:  # the step limit: the hypotheses still alive end here
        for index in range(beam):
            if len(ended) < beam:
                ended.append((sequences[index], float(scores[index])))
    best = max(range(len(ended)), key=lambda i: (ended[i][1], -i))
    sequence, score = ended[best]
    return [int(t) for t in sequence[:-1]], score
