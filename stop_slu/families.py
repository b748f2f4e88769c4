"""Model families: what the recipe, export and inference need to know about a
kind of model, asked of one object that each config declares::

    family: !new:stop_slu.families.FilterbankSeq2Seq   # hparams/mini.yaml, conformer.yaml, ...
    family: !new:stop_slu.families.SSLSeq2Seq          # conformer_wavlm.yaml, conformer_hubert.yaml
    family: !new:stop_slu.families.WhisperSeq2Seq      # whisper.yaml

- ``compute_forward``: the training and evaluation forward pass (recipe);
- ``encode``: audio -> encoder output (inference);
- ``build_tokenizer``: the family's own tokenizer stage, None for SentencePiece;
- ``normalizer``: whether the family has a feature normaliser (``normalize``);
- ``tokenizer_files``: the files of the tokenizer folder a model needs;
- ``pretrained``: the config keys of a Hugging Face model the family is built
  from (its hub name or folder, and its download folder), and whether that
  model's weights travel with an export (a frozen SSL encoder) or are part of
  ``model.ckpt`` (a fine-tuned Whisper: only its configuration travels).

Each family is stateless: every method takes the modules and hparams it works on.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from speechbrain.core import Stage
from speechbrain.utils.data_utils import batch_pad_right

from stop_slu.frontend import encoder_input

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # a Hugging Face model's weights, in order of preference
CONFIG_SUFFIXES = (".json", ".txt")  # its configuration, feature extractor and tokenizer files


class FamilyError(ValueError):
    """A pretrained model that an export cannot take along; the message says why."""


@dataclass(frozen=True)
class Pretrained:
    """A Hugging Face model the family is built from: ``source_key`` names the
    hub name or local folder in the config, ``folder_key`` its download folder;
    ``weights``: whether its weights go into an export (False where they are
    part of the trained ``model.ckpt``)."""

    source_key: str
    folder_key: str
    weights: bool
    export_name: str  # its folder inside an export


class FilterbankSeq2Seq:
    """Filterbank features -> normaliser -> convolutional front-end ->
    Transformer encoder-decoder with a CTC branch (mini, conformer,
    branchformer, E-Branchformer, ASR transfer)."""

    normalizer = True
    pretrained: Pretrained | None = None
    fixed_window = False  # True: every input is padded or cut to one window (Whisper)

    def compute_forward(self, modules, hparams, batch, stage, search=None):
        """``batch`` (``sig``, ``tokens_bos``) -> ``(p_ctc, p_seq, wav_lens, hyps)``:
        fp32 log-probabilities (batch, frames, vocab) and (batch, tokens, vocab),
        relative lengths, and the hypotheses of ``search`` (None: not decoded).
        Training applies the config's ``wav_augment`` and ``fea_augment``."""
        wavs, wav_lens = batch.sig
        tokens_bos, _ = batch.tokens_bos
        train = stage == Stage.TRAIN
        if train and hparams.wav_augment is not None:
            wavs, wav_lens = hparams.wav_augment(wavs, wav_lens)
            tokens_bos = hparams.wav_augment.replicate_labels(tokens_bos)
        fea_augment = hparams.fea_augment if train else None
        src, wav_lens = encoder_input(
            modules,
            hparams.compute_features,
            wavs,
            wav_lens,
            epoch=hparams.epoch_counter.current,
            fea_augment=fea_augment,
        )
        if fea_augment is not None:
            tokens_bos = fea_augment.replicate_labels(tokens_bos)
        enc_out, dec_out = modules.Transformer(src, tokens_bos, wav_lens, pad_idx=hparams.pad_index)
        # Log-probabilities in fp32 whatever the autocast precision (bf16/fp16 would
        # round them, and CPU autocast keeps log_softmax in bf16): the losses need them.
        p_ctc = hparams.log_softmax(modules.ctc_lin(enc_out).float())
        p_seq = hparams.log_softmax(modules.seq_lin(dec_out).float())
        hyps = None
        if search is not None:
            if stage == Stage.TEST:  # searched as ``stop-slu parse`` searches: each utterance encoded alone
                enc_out, search_lens = self.encode_each(modules, hparams, *batch.sig)
            else:  # validation: the training batch's encoding (its padding shifts the last frames a little)
                search_lens = wav_lens
            hyps = search(enc_out, search_lens)[0]
        return p_ctc, p_seq, wav_lens, hyps

    def encode(self, modules, hparams, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """(batch, samples) audio, (batch,) relative lengths -> (batch, frames, d_model)."""
        src, wav_lens = encoder_input(modules, hparams.compute_features, wavs, wav_lens)
        transformer = modules["Transformer"]
        transformer = getattr(transformer, "module", transformer)  # the model inside a DistributedDataParallel
        return transformer.encode(src, wav_lens, pad_idx=hparams.pad_index)

    def encode_each(self, modules, hparams, wavs: torch.Tensor, wav_lens: torch.Tensor):
        """Each row of a padded batch encoded as if alone: audio (batch,
        samples) with relative lengths (batch,) -> ``(enc_states, enc_lens)``,
        the encoder outputs right-padded to (batch, frames, d_model) and their
        relative lengths (batch,).

        A padded batch's encoder output depends on its padding: SpeechBrain's
        convolutional front-end and the Conformer/E-Branchformer convolutions
        read the padded frames next to an utterance's last ones. A parse must
        not depend on which clips share its batch, so parsing and the recipe's
        test encode each row alone and only the search runs batched. A
        fixed-window family (Whisper: every input padded to one window) is
        encoded in one call: its rows are independent."""
        if self.fixed_window or wavs.shape[0] == 1:
            return self.encode(modules, hparams, wavs, wav_lens), wav_lens
        rows = []
        for wav, length in zip(wavs, wav_lens.tolist()):
            alone = wav[None, : round(length * wavs.shape[1])]
            rows.append(self.encode(modules, hparams, alone, torch.ones(1, device=wavs.device))[0])
        enc_states, enc_lens = batch_pad_right(rows)
        return enc_states, enc_lens.to(wavs.device)

    build_tokenizer = None  # SentencePiece, trained by stop_slu.stages

    def tokenizer_files(self, folder: Path) -> list[str]:
        """The files of the tokenizer ``folder`` that loading it reads (relative)."""
        return ["tokenizer.model", "tokenizer.json"]

    def pretrained_source(self, hparams) -> Path | None:
        """The local folder holding the Hugging Face model the config was built
        from (a local ``source_key`` or its download in the Hub cache layout
        under ``folder_key``); None for a family without one. Raises
        FamilyError when neither is on this machine."""
        if self.pretrained is None:
            return None
        source = str(hparams[self.pretrained.source_key])
        if Path(source).is_dir():
            return Path(source)
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(source, cache_dir=hparams[self.pretrained.folder_key], local_files_only=True))
        except Exception as error:  # huggingface_hub's errors differ by version
            raise FamilyError(
                f"{source}: the pretrained model the run was built from is not on this machine "
                f"({type(error).__name__}); export where the run trained, or set --{self.pretrained.source_key}"
            ) from None

    def export_pretrained(self, hparams, folder: Path) -> list[str]:
        """Copy the pretrained model's files an export needs into ``folder``
        (configuration, feature extractor and tokenizer files; its weights once,
        only where they are not in ``model.ckpt``). Returns their names."""
        source = self.pretrained_source(hparams)
        if source is None:
            return []
        names = sorted(p.name for p in source.iterdir() if p.is_file() and p.suffix in CONFIG_SUFFIXES)
        if self.pretrained.weights:
            weights = [name for name in WEIGHT_FILES if (source / name).is_file()]
            if not weights:
                raise FamilyError(f"{source}: no {' or '.join(WEIGHT_FILES)}; the pretrained model is incomplete")
            names.append(weights[0])
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(source / name, folder / name)  # the file itself, not a link into a cache
        return names


class SSLSeq2Seq(FilterbankSeq2Seq):
    """A frozen self-supervised encoder (WavLM, HuBERT: ``ssl_model``), its
    hidden states summed with trained weights, in place of the filterbank;
    the rest as ``FilterbankSeq2Seq``. The SSL weights are not in
    ``model.ckpt``, so an export carries them (once)."""

    pretrained = Pretrained("ssl_hub", "ssl_folder", weights=True, export_name="ssl_model")


class WhisperSeq2Seq(FilterbankSeq2Seq):
    """A pretrained Whisper, encoder and decoder fine-tuned (stop_slu/whisper.py):
    no CTC branch, no feature normaliser, Whisper's tokenizer plus the labels.
    Its fine-tuned weights are in ``model.ckpt``: an export carries only
    Whisper's configuration and tokenizer files."""

    normalizer = False
    pretrained = Pretrained("whisper_hub", "whisper_folder", weights=False, export_name="whisper_model")
    fixed_window = True

    def compute_forward(self, modules, hparams, batch, stage, search=None):
        from stop_slu import whisper

        return whisper.compute_forward(modules, hparams, batch, stage, search)

    def encode(self, modules, hparams, wavs, wav_lens):
        return modules["whisper"].encode(wavs)

    def build_tokenizer(self, targets, hparams):
        """Whisper's tokenizer plus the labels of ``targets``, in ``tokenizer_folder``."""
        from stop_slu import whisper

        return whisper.build_tokenizer(targets, hparams, hparams["whisper"])

    def tokenizer_files(self, folder: Path) -> list[str]:
        from stop_slu.tokenizer.whisper_tokenizer import HF_FOLDER

        files = sorted(p.relative_to(folder).as_posix() for p in (folder / HF_FOLDER).rglob("*") if p.is_file())
        return ["tokenizer.json", *files]


def family_of(hparams) -> FilterbankSeq2Seq:
    """The config's ``family`` (a config without one is a filterbank seq2seq)."""
    family = hparams.get("family") if hasattr(hparams, "get") else getattr(hparams, "family", None)
    return family if family is not None else FilterbankSeq2Seq()
