"""The recipe's feature step, shared by training and inference, and the
self-supervised (SSL) front-end of ``hparams/conformer_wavlm.yaml`` and
``hparams/conformer_hubert.yaml``.

With fbank (``mini``, ``conformer``, ``branchformer``...) ``compute_features``
is parameter-free and sees only the audio. In the SSL configs it is an
``SSLFeatures`` module:

    wav -> frozen WavLM/HuBERT (every hidden state) -> learned weighted sum -> features

Only the layer weights train. They belong to the checkpointed ``model``; the
frozen encoder does not (a checkpoint stays small; the encoder is rebuilt from
its hub name or local folder, ``ssl_hub``). The rest of the flow is the same for
every config: normalize -> CNN (for SSL: a linear projection and a convolution
that halves the frame rate) -> conformer -> decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WeightedLayerSum(nn.Module):
    """Softmax-weighted sum of an SSL encoder's hidden states (SUPERB style).

    ``num_layers`` weights start equal; each layer is layer-normalised (no
    affine) before the sum, so no layer dominates by its scale alone.
    """

    def __init__(self, num_layers: int, layer_norm: bool = True):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(int(num_layers)))
        self.layer_norm = layer_norm

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(layers, batch, time, dim) -> (batch, time, dim)."""
        if hidden_states.shape[0] != self.weights.numel():
            raise ValueError(
                f"the SSL encoder gave {hidden_states.shape[0]} hidden states, the layer weights "
                f"expect {self.weights.numel()}; build WeightedLayerSum with num_hidden_states(ssl_model)"
            )
        if self.layer_norm:
            hidden_states = F.layer_norm(hidden_states, hidden_states.shape[-1:])
        weights = F.softmax(self.weights, dim=0).to(hidden_states.dtype)
        return torch.einsum("l,lbtd->btd", weights, hidden_states)


class SSLFeatures(nn.Module):
    """Audio -> features from a frozen SSL encoder and a learned layer sum.

    ``ssl_model`` is a SpeechBrain Hugging Face wrapper
    (``speechbrain.integrations.huggingface.wavlm.WavLM``, ``...hubert.HuBERT``)
    built with ``freeze=True, output_all_hiddens=True``. It stays in eval mode
    even while the rest trains (no dropout or layer drop in frozen features).
    """

    def __init__(self, ssl_model: nn.Module, layer_sum: WeightedLayerSum):
        super().__init__()
        self.ssl_model = ssl_model
        self.layer_sum = layer_sum
        for param in self.ssl_model.parameters():
            param.requires_grad = False
        self.ssl_model.eval()
        # The wrapper normalises each waveform over its whole padded row, so a
        # row's padding (how long its batch mates are) changes its features:
        # normalise here instead, each row over its own samples.
        self.normalize_wav = bool(getattr(ssl_model, "normalize_wav", False))
        if self.normalize_wav:
            ssl_model.normalize_wav = False

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """(batch, samples) audio with (batch,) relative lengths -> (batch, frames, hidden size)."""
        if self.normalize_wav:
            wavs = normalize_rows(wavs, wav_lens)
        with torch.no_grad():
            hidden_states = self.ssl_model(wavs, wav_lens)
        return self.layer_sum(hidden_states)

    def train(self, mode: bool = True):
        super().train(mode)
        self.ssl_model.eval()
        return self


def normalize_rows(wavs: torch.Tensor, wav_lens: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each row of ``wavs`` (batch, samples) to zero mean and unit variance over
    its own samples (the first ``wav_lens`` (batch,) fraction of the row; a row
    without padding gets what ``F.layer_norm(row, row.shape)`` gives, the
    normalisation SSL models were trained with); the padding comes out zero.
    Computed in fp32; returns (batch, samples) in ``wavs``'s dtype."""
    x = wavs.float()
    lengths = torch.round(wav_lens.float() * x.shape[1]).clamp(min=1)
    mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).float()
    mean = (x * mask).sum(1, keepdim=True) / lengths[:, None]
    var = ((x - mean) * mask).square().sum(1, keepdim=True) / lengths[:, None]
    return ((x - mean) * torch.rsqrt(var + eps) * mask).to(wavs.dtype)


def num_hidden_states(ssl_model) -> int:
    """Hidden states an SSL wrapper returns: its transformer layers + the CNN output."""
    return int(ssl_model.config.num_hidden_layers) + 1


def hidden_size(ssl_model) -> int:
    """Feature size of an SSL wrapper's hidden states (1024 for the large models)."""
    return int(ssl_model.config.hidden_size)


def compute_features_of(modules, compute_features, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
    """Audio -> features, the same way in training and inference.

    A front-end with trained parts (the SSL configs list ``compute_features``
    among their ``modules``) is called through ``modules``, so it is the
    device-placed, DDP-wrapped module, and gets the lengths for the encoder's
    padding mask. A parameter-free one (fbank) only needs the audio.
    """
    if "compute_features" in modules:
        return modules["compute_features"](wavs, wav_lens)
    return compute_features(wavs)


def normalize_features(normalize, feats: torch.Tensor, wav_lens: torch.Tensor, epoch=None) -> torch.Tensor:
    """Features (batch, frames, features) -> normalised by ``normalize``
    (SpeechBrain's ``InputNormalization``, the config's ``normalize``), fp32.

    It runs in fp32 with autocast off, whatever the run's precision: under
    bf16 autocast an SSL front-end's features come out in bf16, and running
    statistics kept in bf16 stop moving once their count is large. In training
    mode it updates its statistics (until ``epoch`` reaches its
    ``update_until_epoch``); in eval mode, with global or per-utterance
    statistics, an utterance's result does not depend on its batch mates.
    """
    with torch.autocast(device_type=feats.device.type, enabled=False):
        return normalize(feats.float(), wav_lens, epoch=epoch)


def encoder_input(modules, compute_features, wavs, wav_lens, epoch=None, fea_augment=None):
    """Audio -> the encoder's input, the same way in training and inference:
    features (``compute_features``) -> normalisation (``modules["normalize"]``)
    -> feature augmentation (``fea_augment``, training only) -> convolutional
    front-end (``modules["CNN"]``).

    Arguments: ``wavs`` (batch, samples) at the config's sample rate,
    ``wav_lens`` (batch,) relative lengths in [0, 1]; ``epoch`` lets global
    normalisation statistics stop updating after ``update_until_epoch``.
    Returns ``(src, wav_lens)``: src (batch', frames, features), where batch'
    is larger than batch when the augmenter appends augmented copies (repeat the
    labels with ``fea_augment.replicate_labels``).
    """
    feats = compute_features_of(modules, compute_features, wavs, wav_lens)
    feats = normalize_features(modules["normalize"], feats, wav_lens, epoch=epoch)
    if fea_augment is not None:
        feats, wav_lens = fea_augment(feats, wav_lens)
    return modules["CNN"](feats), wav_lens
