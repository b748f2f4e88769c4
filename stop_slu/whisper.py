"""The Whisper track (``hparams/whisper.yaml``): a pretrained Whisper, encoder
and decoder both fine-tuned, emits STOP parses.

    wav -> Whisper's log-mel (30 s window) -> Whisper encoder -> Whisper decoder
        -> parse tokens (Whisper's BPE for words, one added token per label and ``]``)

The model is SpeechBrain's Whisper integration
(``speechbrain.integrations.huggingface.whisper.Whisper``); decoding is
SpeechBrain's ``S2SWhisperBeamSearcher`` with the tree-constrained scorer
(``stop_slu.search``), so every output is a well-formed parse. The tokenizer
is ``stop_slu.tokenizer.whisper_tokenizer`` (how a parse is tokenised is
explained there).

The recipe, export and parser reach this module through the config's
``family`` (``stop_slu.families.WhisperSeq2Seq``). No CTC branch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from speechbrain.core import Stage
from speechbrain.integrations.huggingface.whisper import Whisper

from stop_slu.tokenizer.whisper_tokenizer import WhisperParseTokenizer, train_whisper_tokenizer


class WhisperSLU(Whisper):
    """SpeechBrain's Whisper wrapper, its decoder vocabulary grown by the parse labels.

    Arguments
    ---------
    source : str
        Hugging Face hub name (``openai/whisper-base``) or a local folder of a
        saved model (config.json, model.safetensors, preprocessor_config.json,
        tokenizer files).
    save_path : str
        Where the hub download goes (weights, feature extractor and tokenizer):
        inside the output folder, so the folder parses audio offline.
    output_neurons : int or None
        Decoder vocabulary: Whisper's tokens plus the added labels (the recipe
        sets it from the trained tokenizer). The token embedding (tied to the
        output layer) is resized to it; None keeps Whisper's.
    language, task : str
        The decoder prefix of multilingual models (``<|en|><|transcribe|>``);
        English-only models (``.en``) have none.
    freeze_encoder : bool
        True trains the decoder alone.

    Raises ValueError when ``output_neurons`` is below Whisper's vocabulary.
    """

    def __init__(self, source, save_path, output_neurons=None, language="en", task="transcribe", freeze_encoder=False):
        object.__setattr__(self, "_cache_dir", str(save_path))  # read by load_tokenizer during __init__
        super().__init__(
            source, str(save_path), freeze_encoder=freeze_encoder, language=language, task=task, sampling_rate=16000
        )
        rows = self.model.get_input_embeddings().weight.shape[0]
        if output_neurons is not None and int(output_neurons) != rows:
            if int(output_neurons) < rows:
                raise ValueError(
                    f"{source}: output_neurons={output_neurons} is below Whisper's vocabulary ({rows}); "
                    "the tokenizer adds labels to Whisper's tokens, it never removes any"
                )
            self.model.resize_token_embeddings(int(output_neurons))  # new rows: around the old rows' mean

    def _from_pretrained(self, source, save_path, cache_dir, device=None, **kwargs):
        """A Hugging Face model as SpeechBrain loads it; or, from a local folder
        holding Whisper's configuration without weights (an exported model:
        the fine-tuned weights are in its ``model.ckpt``), the architecture
        alone, its weights loaded afterwards."""
        folder = Path(str(source))
        if folder.is_dir() and not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
            self.model = self.auto_class.from_config(self.config)
            if device is not None:
                self.model.to(device)
            return
        super()._from_pretrained(source, save_path, cache_dir, device=device, **kwargs)

    def load_tokenizer(self, source, **kwargs):
        """Whisper's tokenizer, downloaded into ``save_path`` like the weights
        (SpeechBrain's default is the user's Hugging Face cache)."""
        super().load_tokenizer(source, cache_dir=self._cache_dir, **kwargs)

    @property
    def prefix(self) -> list[int]:
        """The decoder's start tokens: start of transcript, [language, task,] no timestamps."""
        return list(self.tokenizer.prefix_tokens)

    def log_mel_spectrogram(self, audio: torch.Tensor, padding: int = 0) -> torch.Tensor:
        """(batch, samples) 16 kHz audio -> (batch, n_mels, frames) log-mel, each
        utterance floored at its own maximum - 8 as Whisper does (SpeechBrain's
        wrapper floors at the batch's maximum, so an utterance's features would
        depend on how loud its batch mates are). A 1-D input gives (n_mels, frames)."""
        if audio.dim() < 2:
            return super().log_mel_spectrogram(audio, padding)
        return torch.cat([super(WhisperSLU, self).log_mel_spectrogram(row[None], padding) for row in audio])

    def encode(self, wavs: torch.Tensor) -> torch.Tensor:
        """(batch, samples) 16 kHz audio, padded or cut to 30 s -> (batch, 1500, d_model)."""
        return self.forward_encoder(self.log_mel_spectrogram(self.pad_or_trim(wavs)))


def decoder_prefix(whisper: WhisperSLU) -> list[int]:
    """The config's ``decoder_prefix``: token ids every target starts with."""
    return whisper.prefix


def eos_index(whisper: WhisperSLU) -> int:
    """The config's ``eos_index``: Whisper's ``<|endoftext|>``."""
    return int(whisper.eos)


def build_tokenizer(targets, hparams: dict, whisper: WhisperSLU) -> WhisperParseTokenizer:
    """The recipe's tokenizer stage for Whisper (the family's
    ``build_tokenizer``): Whisper's tokenizer plus the labels of ``targets`` (the training
    CSV's canonical parses), in ``tokenizer_folder``."""
    rows = whisper.model.get_input_embeddings().weight.shape[0]
    return train_whisper_tokenizer(targets, hparams["tokenizer_folder"], whisper.tokenizer, model_vocab=rows)


def compute_forward(modules, hparams, batch, stage, search=None):
    """The recipe's forward pass for Whisper (the family's ``compute_forward``).

    Arguments: ``modules`` (the Brain's, holding ``whisper``), ``hparams`` (the
    Brain's namespace: ``wav_augment``, ``decoder_prefix``, ``log_softmax``),
    ``batch`` (``sig``, ``tokens_bos`` = prefix + parse ids), ``stage``, and
    ``search``, the searcher to decode with (None: no decoding).
    Returns ``(None, p_seq, wav_lens, hyps)``: no CTC log-probabilities;
    ``p_seq`` (batch, parse tokens + 1, vocab) fp32 log-probabilities of the
    parse ids and end-of-text (the prefix is given, not predicted).
    """
    wavs, wav_lens = batch.sig
    tokens_bos, _ = batch.tokens_bos
    if stage == Stage.TRAIN and getattr(hparams, "wav_augment", None) is not None:
        wavs, wav_lens = hparams.wav_augment(wavs, wav_lens)
        tokens_bos = hparams.wav_augment.replicate_labels(tokens_bos)
    enc_out, logits, _ = modules.whisper(wavs, tokens_bos)
    start = len(hparams.decoder_prefix) - 1  # the last prefix token predicts the first parse token
    p_seq = hparams.log_softmax(logits[:, start:].float())
    hyps = None
    if search is not None:
        hyps, _, _, _ = search(enc_out.detach(), wav_lens)
    return None, p_seq, wav_lens, hyps
