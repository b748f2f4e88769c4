"""Beam search whose transformer decoder computes only the newest position.

SpeechBrain's ``S2STransformerBeamSearcher`` runs the whole decoder over the
whole prefix at every step (and projects the encoder states to keys and values
again each time): the work of a hypothesis of length n grows as n squared. On
CPU that was most of the test decoding time of ``hparams/mini.yaml``
(``benchmarks/throughput.py``). ``CachedTransformerBeamSearcher`` gives the
same scores with a cache: per decoder layer, the self-attention keys and values
of the positions already decoded, and the encoder states' keys and values
(computed once per search). Each step embeds the newest token only and runs
each layer on that one position.

``CachedTransformerGreedySearcher`` does the same for greedy search (the
recipe's validation decoding).

Both also search each utterance of a padded batch as SpeechBrain searches it
alone: its step limit is ``int(frames * max_decode_ratio)`` of its own frames,
not of the batch's longest, and at its last step its live hypotheses end as
SpeechBrain ends them at the limit of a batch of one. So batching changes no
parse (the tree constraint, stop_slu/search.py, takes the same per-utterance
limits).

Both handle the decoder of SpeechBrain's ``TransformerASR`` (and of
``stop_slu.ebranchformer.EBranchformerASR``, which keeps it) for every encoder
attention the configs use: SpeechBrain builds that decoder with regular
multi-head attention whatever ``attention_type`` says, and adds an absolute
sinusoidal encoding of the target positions (``positional_encoding_decoder``
with ``RelPosMHAXL``, ``positional_encoding`` with ``regularMHA``), so the
newest position's encoding is one row of it. A model whose decoder steps
differently is refused when the searcher is built (``ValueError``): there is
no silent fall-back to full recomputation.
"""

from __future__ import annotations

import math

import torch
from speechbrain.dataio.dataio import length_to_mask
from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher, S2STransformerGreedySearcher
from speechbrain.decoders.utils import _update_mem
from speechbrain.lobes.models.transformer.Transformer import (
    PositionalEncoding,
    TransformerDecoder,
    TransformerDecoderLayer,
)
from speechbrain.lobes.models.transformer.TransformerASR import TransformerASR

from stop_slu.search import utterance_step_limits


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, time, heads * dim) -> (batch, heads, time, dim)."""
    batch, time, width = x.shape
    return x.view(batch, time, heads, width // heads).transpose(1, 2)


class _Attention:
    """The projections of one ``torch.nn.MultiheadAttention`` (packed q, k, v
    weights), used one query position at a time."""

    def __init__(self, module: torch.nn.MultiheadAttention):
        self.module = module
        self.heads = module.num_heads
        self.weights = module.in_proj_weight.chunk(3)
        self.biases = module.in_proj_bias.chunk(3) if module.in_proj_bias is not None else (None,) * 3

    def project(self, x: torch.Tensor, which: int) -> torch.Tensor:
        """Query (0), key (1) or value (2) projection, split into heads."""
        return _split_heads(torch.nn.functional.linear(x, self.weights[which], self.biases[which]), self.heads)

    def attend(self, query, keys, values, key_padding_mask=None):
        """Output (batch, 1, d_model) and head-averaged weights (batch, 1, time)."""
        q = self.project(query, 0)
        scores = torch.matmul(q / math.sqrt(q.shape[-1]), keys.transpose(-2, -1))
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        out = torch.matmul(weights, values).transpose(1, 2).reshape(query.shape)
        return self.module.out_proj(out), weights.mean(dim=1)


def target_positions(model) -> torch.nn.Module | None:
    """The absolute positional encoding ``TransformerASR.decode`` adds to the
    target embeddings (None: it adds none), as that method chooses it."""
    if model.attention_type in ("RelPosMHAXL", "RoPEMHA"):
        return model.positional_encoding_decoder
    if model.positional_encoding_type == "fixed_abs_sine" or model.attention_type == "hypermixing":
        return model.positional_encoding
    return None


def _not_cacheable(model) -> str | None:
    """Why the cached step would not reproduce ``model.decode``, or None when it does."""
    if not isinstance(model, TransformerASR):
        return f"{type(model).__name__} is not a SpeechBrain TransformerASR"
    if type(model).decode is not TransformerASR.decode:
        return f"{type(model).__name__} overrides TransformerASR.decode"
    if not isinstance(getattr(model, "custom_tgt_module", None), torch.nn.Module):
        return "the model has no target embedding (custom_tgt_module)"
    try:
        positions = target_positions(model)
    except AttributeError as error:
        return f"no target positional encoding ({error})"
    if positions is not None and not isinstance(positions, PositionalEncoding):
        return f"the target positional encoding is a {type(positions).__name__}, not absolute sinusoidal"
    if type(getattr(model, "decoder", None)) is not TransformerDecoder:
        return "the decoder is not SpeechBrain's TransformerDecoder"
    for i, layer in enumerate(model.decoder.layers):
        if type(layer) is not TransformerDecoderLayer:
            return f"decoder layer {i} is a {type(layer).__name__}, not a TransformerDecoderLayer"
        for name in ("self_attn", "multihead_attn"):
            att = getattr(getattr(layer, name, None), "att", None)
            if not isinstance(att, torch.nn.MultiheadAttention):
                return f"decoder layer {i}'s {name} is not regular multi-head attention"
            if not att._qkv_same_embed_dim or att.bias_k is not None or att.add_zero_attn:
                return f"decoder layer {i}'s {name} has separate key/value sizes or added key/value biases"
    return None


def _check_cacheable(model):
    """Raise ValueError (one line: why, what to use) for a model the cache cannot step."""
    reason = _not_cacheable(model)
    if reason:
        raise ValueError(
            f"decoder cache: {reason}; use speechbrain.decoders.seq2seq.S2STransformerBeamSearcher "
            "(or S2STransformerGreedySearcher) for this model in the config"
        )


def _cached_decoder_step(model, inp_tokens, memory, enc_states, enc_lens):
    """One decoder step on the newest token only.

    ``memory``: None at the first step, then what the last call returned:
    (tokens so far (batch, steps), per layer the self-attention keys and values,
    per layer the encoder states' keys, values and padding mask). Returns the
    decoder output of the newest position (batch, 1, d_model), the new memory and
    the last layer's head-averaged encoder attention (batch, 1, frames)."""
    layers = model.decoder.layers
    if memory is None:  # first step: the encoder states' keys and values, once
        padding = (1 - length_to_mask(enc_lens, max_len=enc_states.shape[1])).bool()
        encoder_cache = []
        for layer in layers:
            attention = _Attention(layer.multihead_attn.att)
            encoder_cache.append((attention.project(enc_states, 1), attention.project(enc_states, 2), padding))
        memory = (None, [None] * len(layers), encoder_cache)
    tokens, self_cache, encoder_cache = memory
    tokens = _update_mem(inp_tokens, tokens)
    position = tokens.shape[1]

    x = model.custom_tgt_module(tokens[:, -1:])
    positions = target_positions(model)
    if positions is not None:  # PositionalEncoding's table: (1, max_len, d_model)
        x = x + positions.pe[:, position - 1 : position].clone().detach()
    new_cache = []
    for layer, cache, (enc_keys, enc_values, padding) in zip(layers, self_cache, encoder_cache):
        before = layer.normalize_before
        self_attention = _Attention(layer.self_attn.att)
        h = layer.norm1(x) if before else x
        keys, values = self_attention.project(h, 1), self_attention.project(h, 2)
        if cache is not None:
            keys, values = torch.cat([cache[0], keys], dim=2), torch.cat([cache[1], values], dim=2)
        new_cache.append((keys, values))
        x = x + self_attention.attend(h, keys, values)[0]
        if not before:
            x = layer.norm1(x)
        h = layer.norm2(x) if before else x
        out, attn = _Attention(layer.multihead_attn.att).attend(h, enc_keys, enc_values, padding)
        x = x + out
        if not before:
            x = layer.norm2(x)
        x = x + layer.pos_ffn(layer.norm3(x) if before else x)
        if not before:
            x = layer.norm3(x)
    return model.decoder.norm(x), (tokens, new_cache, encoder_cache), attn


class CachedTransformerBeamSearcher(S2STransformerBeamSearcher):
    """``S2STransformerBeamSearcher`` with an incremental decoder (same
    arguments; see the module docstring). Raises ValueError for a model whose
    decoder the cache cannot step."""

    def __init__(self, modules, temperature=1.0, **kwargs):
        super().__init__(modules, temperature=temperature, **kwargs)
        _check_cacheable(self.model)

    def permute_mem(self, memory, index):
        tokens, self_cache, encoder_cache = memory
        self_cache = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self_cache]
        # The encoder cache is not permuted: ``index`` keeps every hypothesis among
        # the beams of its own utterance, which all hold the same encoder states.
        return tokens.index_select(0, index), self_cache, encoder_cache

    def forward_step(self, inp_tokens, memory, enc_states, enc_lens):
        x, memory, attn = _cached_decoder_step(self.model, inp_tokens, memory, enc_states, enc_lens)
        log_probs = self.softmax(self.fc(x) / self.temperature)
        return log_probs[:, -1, :], memory, attn

    def init_beam_search_data(self, enc_states, wav_len):
        enc_lens = torch.round(enc_states.shape[1] * wav_len).int()
        self._last_steps = (utterance_step_limits(enc_states, enc_lens, self.max_decode_ratio) - 1).tolist()
        return super().init_beam_search_data(enc_states, wav_len)

    def search_step(self, alived_hyps, inp_tokens, log_probs, eos_hyps_and_log_probs_scores, *args):
        """SpeechBrain's step; then the utterances whose own step limit this step
        is end their live hypotheses, as SpeechBrain's search of a batch of one
        ends them after its last step (``_fill_alived_hyps_with_eos_token``)."""
        out = super().search_step(alived_hyps, inp_tokens, log_probs, eos_hyps_and_log_probs_scores, *args)
        alived_hyps, ended, scores, step = out[0], out[3], out[8], args[-1]
        ending = [i for i, last in enumerate(self._last_steps) if last == step and len(ended[i]) < self.beam_size]
        if ending and step < self.max_decode_steps - 1:  # at the batch's own limit SpeechBrain fills them itself
            rows = torch.cat([torch.arange(i * self.beam_size, (i + 1) * self.beam_size) for i in ending])
            rows = rows.to(self.device)
            tokens = torch.full((self.n_bh,), -1, dtype=torch.long, device=self.device)
            tokens[rows] = self.eos_index
            self._update_hyps_and_scores_if_eos_token(tokens, alived_hyps, ended, scores)
            alived_hyps.sequence_scores[rows] = float("-inf")
        return out


class CachedTransformerGreedySearcher(S2STransformerGreedySearcher):
    """``S2STransformerGreedySearcher`` with the same incremental decoder (same
    arguments and outputs; raises ValueError as the beam searcher does). The
    recipe's validation decoding."""

    def __init__(self, modules, temperature=0.0, **kwargs):
        super().__init__(modules, temperature=temperature, **kwargs)
        _check_cacheable(self.model)

    def forward_step(self, inp_tokens, memory, enc_states, enc_lens, attention_mask=None):
        x, memory, attn = _cached_decoder_step(self.model, inp_tokens, memory, enc_states, enc_lens)
        return self.fc(x)[:, -1, :], memory, attn

    def forward(self, enc_states, wav_len, attention_mask=None):
        """SpeechBrain's greedy search; each hypothesis then ends at its own
        utterance's step limit, where a search of that utterance alone ends."""
        hyps, *rest = super().forward(enc_states, wav_len, attention_mask)
        enc_lens = torch.round(enc_states.shape[1] * wav_len).int()
        limits = utterance_step_limits(enc_states, enc_lens, self.max_decode_ratio).tolist()
        return [hyp[:limit] for hyp, limit in zip(hyps, limits)], *rest
