"""The E-Branchformer encoder, on SpeechBrain's building blocks.

Source: K. Kim, F. Wu, Y. Peng, J. Pan, P. Sridhar, K. J. Han, S. Watanabe,
"E-Branchformer: Branchformer with Enhanced Merging for Speech Recognition",
IEEE SLT 2022 (arXiv:2210.00077), section 3, equations (1)-(7); the layout of
ESPnet's ``espnet2/asr/encoder/e_branchformer_encoder.py`` where the paper
leaves a detail open (pre-LayerNorm inside each feed-forward module, a final
LayerNorm after the stack of layers).

SpeechBrain 1.1.2 has the Branchformer (``speechbrain.lobes.models.transformer.
Branchformer``) but not the E-Branchformer. Compared with the Branchformer
layer, each E-Branchformer layer adds a macaron pair of feed-forward modules
with half-step residuals around the two branches, and merges the branches with
a depth-wise convolution over their concatenation before the projection.
The cgMLP branch is SpeechBrain's ``ConvolutionBranch`` (channel projection,
GELU, convolutional spatial gating unit, channel projection), the attention is
SpeechBrain's (relative positional ``RelPosMHAXL`` or ``regularMHA``), the
feed-forwards SpeechBrain's ``PositionalwiseFeedForward``.

``EBranchformerASR`` is SpeechBrain's ``TransformerASR`` with this encoder, so
the recipe, searchers and ``SLUParser`` use it unchanged; configs declare it
in YAML (``hparams/ebranchformer.yaml``).
"""

from __future__ import annotations

import inspect

import torch
from speechbrain.lobes.models.transformer.Branchformer import ConvolutionBranch
from speechbrain.lobes.models.transformer.TransformerASR import TransformerASR
from speechbrain.nnet.attention import MultiheadAttention, PositionalwiseFeedForward, RelPosMHAXL
from speechbrain.nnet.normalization import LayerNorm
from torch import nn

ATTENTION_TYPES = ("RelPosMHAXL", "regularMHA")


class EBranchformerEncoderLayer(nn.Module):
    """One E-Branchformer layer (Kim et al., SLT 2022, section 3).

    With ``X`` the layer input, ``FFN(.) = Linear(Dropout(GELU(Linear(LN(.)))))``
    (hidden size ``d_ffn``) and the paper's equation numbers:

    - (1) macaron half-step:        ``X' = X + 1/2 FFN_1(X)``
    - (2) global branch:            ``Y_G = Dropout(MHSA(LN(X')))``
    - (3) local branch (cgMLP):     ``Y_L = Dropout(cgMLP(LN(X')))``,
      ``cgMLP(Z) = Linear(CSGU(GELU(Linear(Z))))``, hidden ``csgu_linear_units``,
      the gate a depth-wise convolution of ``kernel_size`` over half the channels
    - (4)-(6) enhanced merge:       ``Y_C = Concat(Y_G, Y_L)``,
      ``Y_D = DwConv(Y_C)`` (depth-wise, ``merge_conv_kernel`` frames, 2 d_model channels),
      ``X'' = X' + Dropout(Linear(Y_C + Y_D))``
    - (7) macaron half-step, final LN: ``Y = LN(X'' + 1/2 FFN_2(X''))``

    Arguments
    ---------
    d_model : int
        Feature size d of the input and output.
    nhead : int
        Attention heads (``d_model`` must divide by it).
    d_ffn : int
        Hidden size of each of the two feed-forward modules.
    kernel_size : int
        Kernel of the cgMLP's depth-wise convolution (frames).
    merge_conv_kernel : int
        Kernel of the merge module's depth-wise convolution (frames, odd).
    csgu_linear_units : int
        Hidden size of the cgMLP (even: the gating unit splits it in two).
    activation : type
        Activation class of the feed-forwards and the cgMLP (``torch.nn.GELU``).
    dropout : float
        Dropout after each module and inside the attention and feed-forwards.
    attention_type : str
        ``"RelPosMHAXL"`` (relative positions; pass ``pos_embs``) or ``"regularMHA"``.

    Raises
    ------
    ValueError
        An unknown ``attention_type`` or an even ``merge_conv_kernel``.

    Example
    -------
    >>> layer = EBranchformerEncoderLayer(d_model=32, nhead=2, d_ffn=64, attention_type="regularMHA")
    >>> layer(torch.rand(3, 20, 32))[0].shape
    torch.Size([3, 20, 32])
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        d_ffn: int,
        kernel_size: int = 31,
        merge_conv_kernel: int = 31,
        csgu_linear_units: int = 3072,
        activation: type = nn.GELU,
        dropout: float = 0.0,
        attention_type: str = "RelPosMHAXL",
    ):
        super().__init__()
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type {attention_type!r}: use one of {', '.join(ATTENTION_TYPES)}")
        if merge_conv_kernel % 2 == 0:
            raise ValueError(f"merge_conv_kernel {merge_conv_kernel}: must be odd (the output keeps the input length)")

        def feed_forward():
            return nn.Sequential(
                LayerNorm(d_model),
                PositionalwiseFeedForward(d_ffn=d_ffn, input_size=d_model, dropout=dropout, activation=activation),
            )

        self.ffn1 = feed_forward()
        self.norm_mhsa = LayerNorm(d_model)
        if attention_type == "RelPosMHAXL":
            self.mha_layer = RelPosMHAXL(num_heads=nhead, embed_dim=d_model, dropout=dropout, mask_pos_future=False)
        else:
            self.mha_layer = MultiheadAttention(nhead=nhead, d_model=d_model, dropout=dropout)
        self.norm_conv = LayerNorm(d_model)
        self.cgmlp = ConvolutionBranch(
            input_size=d_model,
            linear_units=csgu_linear_units,
            kernel_size=kernel_size,
            activation=activation,
            dropout=dropout,
        )
        self.merge_dwconv = nn.Conv1d(
            2 * d_model,
            2 * d_model,
            kernel_size=merge_conv_kernel,
            padding=merge_conv_kernel // 2,
            groups=2 * d_model,
        )
        self.merge_proj = nn.Linear(2 * d_model, d_model)
        self.ffn2 = feed_forward()
        self.norm_final = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        pos_embs: torch.Tensor | None = None,
    ):
        """``x``: (batch, time, d_model); ``src_key_padding_mask``: (batch, time), True at
        padding; ``pos_embs``: (1, 2 time - 1, d_model) for ``RelPosMHAXL``. Returns the
        output (batch, time, d_model) and the attention weights."""
        x = x + 0.5 * self.dropout(self.ffn1(x))  # (1)

        global_in = self.norm_mhsa(x)  # (2)
        y_global, attention = self.mha_layer(
            global_in,
            global_in,
            global_in,
            attn_mask=src_mask,
            key_padding_mask=src_key_padding_mask,
            pos_embs=pos_embs,
        )
        y_global = self.dropout(y_global)
        y_local = self.dropout(self.cgmlp(self.norm_conv(x)))  # (3)

        y_concat = torch.cat([y_global, y_local], dim=-1)  # (4)
        y_dwconv = self.merge_dwconv(y_concat.transpose(1, 2)).transpose(1, 2)  # (5)
        x = x + self.dropout(self.merge_proj(y_concat + y_dwconv))  # (6)

        x = x + 0.5 * self.dropout(self.ffn2(x))  # (7)
        return self.norm_final(x), attention


class EBranchformerEncoder(nn.Module):
    """A stack of ``EBranchformerEncoderLayer`` and a final LayerNorm (as ESPnet's).

    The call matches SpeechBrain's encoders (``BranchformerEncoder``), so
    ``TransformerASR`` drives it: ``forward(src, src_mask, src_key_padding_mask,
    pos_embs)`` with ``src`` (batch, time, d_model) returns ``(output, attentions)``,
    the output (batch, time, d_model). Arguments as ``EBranchformerEncoderLayer``,
    plus ``num_layers``; ``layerdrop_prob`` drops whole layers while training.
    """

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        nhead: int,
        d_ffn: int,
        kernel_size: int = 31,
        merge_conv_kernel: int = 31,
        csgu_linear_units: int = 3072,
        activation: type = nn.GELU,
        dropout: float = 0.0,
        attention_type: str = "RelPosMHAXL",
        layerdrop_prob: float = 0.0,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            EBranchformerEncoderLayer(
                d_model=d_model,
                nhead=nhead,
                d_ffn=d_ffn,
                kernel_size=kernel_size,
                merge_conv_kernel=merge_conv_kernel,
                csgu_linear_units=csgu_linear_units,
                activation=activation,
                dropout=dropout,
                attention_type=attention_type,
            )
            for _ in range(num_layers)
        )
        self.norm = LayerNorm(d_model, eps=1e-6)
        self.attention_type = attention_type
        self.layerdrop_prob = layerdrop_prob

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        pos_embs: torch.Tensor | None = None,
        dynchunktrain_config=None,
    ):
        """See the class docstring. Raises ``ValueError`` for ``RelPosMHAXL`` without
        ``pos_embs`` and for a dynamic-chunk configuration (not supported)."""
        if dynchunktrain_config is not None:
            raise ValueError("dynamic chunk training: not supported by the E-Branchformer encoder")
        if self.attention_type == "RelPosMHAXL" and pos_embs is None:
            raise ValueError("RelPosMHAXL attention needs pos_embs (relative positional embeddings)")
        output, attentions = src, []
        keep = torch.rand(len(self.layers)) if self.training and self.layerdrop_prob > 0 else None
        for i, layer in enumerate(self.layers):
            if keep is not None and keep[i] <= self.layerdrop_prob:
                continue
            output, attention = layer(
                output, src_mask=src_mask, src_key_padding_mask=src_key_padding_mask, pos_embs=pos_embs
            )
            attentions.append(attention)
        return self.norm(output), attentions


class EBranchformerASR(TransformerASR):
    """SpeechBrain's ``TransformerASR`` (front projection, transformer decoder) with
    an E-Branchformer encoder.

    Takes ``TransformerASR``'s arguments (``d_ffn`` is the decoder's feed-forward
    size, ``kernel_size`` and ``csgu_linear_units`` the cgMLP's, ``attention_type``
    the encoder's) plus:

    Arguments
    ---------
    *args, **kwargs
        ``TransformerASR``'s (``encoder_module`` is set here; do not pass it).
    encoder_d_ffn : int, optional
        Hidden size of the encoder's macaron feed-forwards (default: ``d_ffn``).
    merge_conv_kernel : int
        Kernel of the merge module's depth-wise convolution (frames, odd).

    The parent builds its own encoder first; it is replaced by an
    ``EBranchformerEncoder`` and all weights are initialised as the parent does.
    """

    def __init__(self, *args, encoder_d_ffn: int | None = None, merge_conv_kernel: int = 31, **kwargs):
        if "encoder_module" in kwargs:
            raise ValueError("EBranchformerASR sets encoder_module itself: remove it from the config")
        if kwargs.get("output_hidden_states"):
            raise ValueError("EBranchformerASR: output_hidden_states is not supported")
        super().__init__(*args, encoder_module="branchformer", **kwargs)
        arguments = self._arguments(args, kwargs)
        self.encoder = EBranchformerEncoder(
            num_layers=arguments["num_encoder_layers"],
            d_model=arguments["d_model"],
            nhead=arguments["nhead"],
            d_ffn=encoder_d_ffn or arguments["d_ffn"],
            kernel_size=arguments["kernel_size"],
            merge_conv_kernel=merge_conv_kernel,
            csgu_linear_units=arguments["csgu_linear_units"],
            activation=arguments["branchformer_activation"],
            dropout=arguments["dropout"],
            attention_type=self.attention_type,
            layerdrop_prob=self.layerdrop_prob,
        )
        self._init_params()

    @staticmethod
    def _arguments(args, kwargs) -> dict:
        """``TransformerASR``'s arguments as the parent received them, defaults filled in."""
        bound = inspect.signature(TransformerASR.__init__).bind(None, *args, **kwargs)
        bound.apply_defaults()
        return bound.arguments
