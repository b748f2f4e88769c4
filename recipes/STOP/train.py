#!/usr/bin/env python3
"""Direct spoken language understanding on STOP: audio in, semantic parse out.

    python recipes/STOP/train.py hparams/mini.yaml \
        --data_folder=/path/to/stop --output_folder=results/mini

The flow (SpeechBrain style): prepare the CSVs (main process only), train the
tokenizer on the training targets, train the model (joint CTC + attention),
then average the best checkpoints and decode the test set with beam search and
CTC scoring. Results land in the output folder: checkpoints under save/,
train_log.txt, predictions_test.tsv and metrics_test.json.

Any YAML key can be overridden on the command line (``--number_of_epochs=5``,
``--max_train_minutes=20``), as can SpeechBrain's run options
(``--device=cuda:0``, ``--precision=bf16``).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import shutil
import sys
import time
from pathlib import Path

import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import if_main_process, run_on_main

from stop_slu import parses
from stop_slu.data_prep.audio import load_audio
from stop_slu.data_prep.prepare import PrepareError, prepare, summary_line
from stop_slu.recipe import stop_metrics
from stop_slu.recipe.finetune import copy_tokenizer, load_source_weights
from stop_slu.recipe.stop_checkpoints import CheckpointError, load_averaged_model, state_digest
from stop_slu.recipe.stop_frontend import compute_features
from stop_slu.recipe.stop_inference import RECIPE_COPY, RECIPE_OVERRIDES, output_parse
from stop_slu.recipe.stop_report import write_report
from stop_slu.tokenizer.parse_tokenizer import ParseTokenizer, train_tokenizer

logger = logging.getLogger(__name__)


class NonFiniteLossError(ValueError):
    """Training stopped: the loss stayed NaN/inf for too many steps in a row."""


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class SLU(sb.core.Brain):
    """Speech -> parse with a conformer encoder, transformer decoder and CTC."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        tokens_bos, _ = batch.tokens_bos
        train = stage == sb.Stage.TRAIN

        if train and self.hparams.wav_augment is not None:
            wavs, wav_lens = self.hparams.wav_augment(wavs, wav_lens)
            tokens_bos = self.hparams.wav_augment.replicate_labels(tokens_bos)
        feats = compute_features(self.modules, self.hparams.compute_features, wavs, wav_lens)
        feats = self.modules.normalize(feats, wav_lens, epoch=self.hparams.epoch_counter.current)
        if train and self.hparams.fea_augment is not None:
            feats, wav_lens = self.hparams.fea_augment(feats, wav_lens)
            tokens_bos = self.hparams.fea_augment.replicate_labels(tokens_bos)

        src = self.modules.CNN(feats)
        enc_out, dec_out = self.modules.Transformer(
            src, tokens_bos, wav_lens, pad_idx=self.hparams.pad_index
        )
        # Log-probabilities in fp32 whatever the autocast precision (bf16/fp16 would
        # round them, and CPU autocast keeps log_softmax in bf16): the losses need them.
        p_ctc = self.hparams.log_softmax(self.modules.ctc_lin(enc_out).float())
        p_seq = self.hparams.log_softmax(self.modules.seq_lin(dec_out).float())

        hyps = None
        if stage == sb.Stage.VALID and self._search_this_epoch():
            hyps, _, _, _ = self.hparams.valid_search(enc_out.detach(), wav_lens)
        elif stage == sb.Stage.TEST:
            hyps, _, _, _ = self.hparams.test_search(enc_out.detach(), wav_lens)
        return p_ctc, p_seq, wav_lens, hyps

    def _search_this_epoch(self) -> bool:
        """Decode the valid set every ``valid_search_interval`` epochs and on the last."""
        epoch = self.hparams.epoch_counter.current
        return (
            epoch % self.hparams.valid_search_interval == 0
            or epoch == self.hparams.epoch_counter.limit
            or getattr(self, "_time_is_up", False)
        )

    def _replicate(self, labels):
        """Repeat labels the way the augmenters repeated the audio (if they did)."""
        for name in ("wav_augment", "fea_augment"):
            augment = getattr(self.hparams, name)
            if augment is not None:
                labels = augment.replicate_labels(labels)
        return labels

    def compute_objectives(self, predictions, batch, stage):
        p_ctc, p_seq, wav_lens, hyps = predictions
        tokens_eos, tokens_eos_lens = batch.tokens_eos
        tokens, tokens_lens = batch.tokens
        if stage == sb.Stage.TRAIN:
            tokens_eos, tokens_eos_lens, tokens, tokens_lens = (
                self._replicate(t) for t in (tokens_eos, tokens_eos_lens, tokens, tokens_lens)
            )

        loss_seq = self.hparams.seq_cost(p_seq, tokens_eos, length=tokens_eos_lens)
        loss_ctc = self.hparams.ctc_cost(p_ctc, tokens, wav_lens, tokens_lens)
        weight = self.hparams.ctc_weight
        loss = weight * loss_ctc + (1 - weight) * loss_seq

        if stage != sb.Stage.TRAIN:
            self.acc_metric.append(p_seq, tokens_eos, tokens_eos_lens)
            if hyps is not None:
                decouple = self.hparams.decouple_output
                for uid, hyp, ref, domain in zip(batch.id, hyps, batch.semantics, batch.domain):
                    hyp = output_parse(self.tokenizer, hyp, decouple)
                    self.decoded.append((uid, hyp, parses.decouple(ref) if decouple else ref, domain))
        return loss

    # -- training-time limit and non-finite losses -------------------------
    def on_fit_start(self):
        super().on_fit_start()
        self._train_started = time.time()
        self._time_is_up = False
        self._nonfinite_loss = False  # in the batches of the current optimiser step
        self.nonfinite_in_a_row = 0
        self.skipped_steps = 0

    def check_loss_isfinite(self, loss):
        """Brain calls this before backward(). A non-finite loss on any rank
        marks the optimiser step to be skipped (all ranks agree, so DDP stays in step)."""
        finite = torch.isfinite(loss.detach()).float()
        if _distributed():
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if not bool(finite):
            self._nonfinite_loss = True

    def optimizers_step(self):
        if self._nonfinite_loss:  # NaN/inf gradients: drop them, leave the weights as they are
            self.zero_grad(set_to_none=True)
            return
        super().optimizers_step()

    def _count_nonfinite_step(self, batch, loss):
        """Count a skipped step; stop the run after ``nonfinite_patience`` in a row."""
        self._nonfinite_loss = False
        self.skipped_steps += 1
        self.nonfinite_in_a_row += 1
        loss = float(loss.detach())
        where = ", ".join(batch.id) if not math.isfinite(loss) else "another process's batch"
        logger.warning(
            "Non-finite loss (%s) on %s: optimiser step skipped (%d in a row, nonfinite_patience=%d)",
            loss, where, self.nonfinite_in_a_row, self.nonfinite_patience,
        )
        if self.nonfinite_in_a_row > self.nonfinite_patience:
            raise NonFiniteLossError(
                f"{self.hparams.output_folder}: training stopped: the loss was not finite for "
                f"{self.nonfinite_in_a_row} optimiser steps in a row (utterances in log.txt); "
                "lower lr_adam, check those files, or raise --nonfinite_patience"
            )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        if should_step and self._nonfinite_loss:
            self._count_nonfinite_step(batch, loss)
        elif should_step:
            self.nonfinite_in_a_row = 0
            self.hparams.noam_annealing(self.optimizer)
        limit = float(self.hparams.max_train_minutes or 0)
        if limit > 0 and not self._time_is_up:
            up = [(time.time() - self._train_started) / 60.0 >= limit]
            if _distributed():
                torch.distributed.broadcast_object_list(up, src=0)  # ranks stop together
            if up[0]:
                logger.info("max_train_minutes=%s reached: stopping training", limit)
            self._time_is_up = up[0]

    @property
    def _optimizer_step_limit_exceeded(self):
        # Brain checks this before each batch and after each epoch.
        return super()._optimizer_step_limit_exceeded or getattr(self, "_time_is_up", False)

    # -- stages -------------------------------------------------------------
    def on_stage_start(self, stage, epoch):
        if stage == sb.Stage.TRAIN:
            self.skipped_steps = 0
        else:
            self.acc_metric = self.hparams.acc_computer()
            self.decoded = []

    def on_stage_end(self, stage, stage_loss, epoch):
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            if self.skipped_steps:
                stats["skipped_steps"] = self.skipped_steps  # non-finite losses this epoch
            self.train_stats = stats
            if _distributed():
                self._check_ranks_in_sync(epoch)
            return
        stats["ACC"] = self.acc_metric.summarize()
        if self.decoded:
            refs = {uid: ref for uid, _, ref, _ in self.decoded}
            hyps = {uid: hyp for uid, hyp, _, _ in self.decoded}
            scores = stop_metrics.score(refs, hyps, {uid: d for uid, _, _, d in self.decoded})
            stats.update(EM=scores["em"], EM_tree=scores["em_tree"], valid=scores["valid"])

        if stage == sb.Stage.VALID:
            lr = self.hparams.noam_annealing.current_lr
            minutes = round((time.time() - self._train_started) / 60.0, 2)
            self._log_stats(
                stats_meta={"epoch": epoch, "lr": lr, "steps": self.optimizer_step, "minutes": minutes},
                train_stats=getattr(self, "train_stats", None),
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"ACC": stats["ACC"], "epoch": epoch, **({"EM": stats["EM"]} if "EM" in stats else {})},
                max_keys=["ACC"],
                num_to_keep=self.hparams.keep_checkpoints,
            )
        elif stage == sb.Stage.TEST:
            self._log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            if if_main_process():
                out = Path(self.hparams.output_folder)
                stop_metrics.write_predictions(out / "predictions_test.tsv", self.decoded)
                (out / "metrics_test.json").write_text(json.dumps(scores, indent=2) + "\n")
                logger.info("Test report: %s", write_report(out))
            self.test_scores = scores

    def _log_stats(self, **stats):
        """To train_log.txt, and to TensorBoard when ``use_tensorboard`` is on."""
        self.hparams.train_logger.log_stats(**stats)
        if getattr(self.hparams, "use_tensorboard", False) and if_main_process():
            if not hasattr(self, "_tensorboard"):
                from speechbrain.utils.train_logger import TensorboardLogger  # needs `tensorboard`

                self._tensorboard = TensorboardLogger(self.hparams.tensorboard_logs)
            stats["stats_meta"] = {k: v for k, v in stats["stats_meta"].items() if k != "Epoch loaded"}
            self._tensorboard.log_stats(**stats)

    def _check_ranks_in_sync(self, epoch):
        """DDP: every process must hold the same weights; log their digests, stop if not."""
        digests = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(digests, state_digest(self.hparams.model.state_dict()))
        logger.info("epoch %s: model sha256 by rank: %s", epoch, " ".join(digests))
        if len(set(digests)) > 1:
            raise RuntimeError(f"epoch {epoch}: the processes' weights differ (sha256 by rank: {digests})")

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Load the average of the best checkpoints (by valid token accuracy)."""
        load_averaged_model(vars(self.hparams), max_key=max_key, min_key=min_key, device=self.device)


def dataio_prepare(hparams, tokenizer: ParseTokenizer):
    """Datasets reading the CSVs: audio -> ``sig``, parse -> token tensors."""
    folder = Path(hparams["prepare_folder"])

    def load(split):
        return sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=str(folder / f"{split}.csv"))

    train_data = load(hparams["train_split"])
    valid_data = load(hparams["valid_split"]).filtered_sorted(sort_key="duration")
    test_data = load(hparams["test_split"]).filtered_sorted(sort_key="duration")
    if hparams["sorting"] == "ascending":
        train_data = train_data.filtered_sorted(sort_key="duration")
    datasets = [train_data, valid_data, test_data]

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return torch.from_numpy(load_audio(wav, hparams["sample_rate"]))

    @sb.utils.data_pipeline.takes("semantics")
    @sb.utils.data_pipeline.provides("tokens_bos", "tokens_eos", "tokens")
    def text_pipeline(semantics):
        ids = tokenizer.encode(semantics)
        yield torch.LongTensor([hparams["bos_index"]] + ids)
        yield torch.LongTensor(ids + [hparams["eos_index"]])
        yield torch.LongTensor(ids)

    sb.dataio.dataset.add_dynamic_item(datasets, audio_pipeline)
    sb.dataio.dataset.add_dynamic_item(datasets, text_pipeline)
    sb.dataio.dataset.set_output_keys(
        datasets, ["id", "sig", "semantics", "domain", "tokens_bos", "tokens_eos", "tokens"]
    )

    train_loader_kwargs = dict(hparams["train_dataloader_opts"])
    if hparams["dynamic_batching"]:
        sampler = sb.dataio.sampler.DynamicBatchSampler(
            train_data,
            length_func=lambda x: x["duration"],
            seed=hparams["seed"],
            **hparams["dynamic_batch_sampler_train"],
        )
        train_loader_kwargs = {"batch_sampler": sampler, "num_workers": hparams["num_workers"]}
    return train_data, valid_data, test_data, train_loader_kwargs


def prepare_data(hparams):
    """CSVs for the configured splits (reused when inputs are unchanged)."""
    if hparams["skip_prep"]:
        return
    report = prepare(
        hparams["data_folder"],
        hparams["prepare_folder"],
        splits=sorted({hparams["train_split"], hparams["valid_split"], hparams["test_split"]}),
        domains=hparams["domains"],
        target=hparams["target_column"],
    )
    logger.info(summary_line(report))


def build_tokenizer(hparams) -> ParseTokenizer:
    """Train (or reuse) the tokenizer on the training CSV's targets."""
    with open(Path(hparams["prepare_folder"]) / f"{hparams['train_split']}.csv", encoding="utf-8") as f:
        targets = [row["semantics"] for row in csv.DictReader(f)]
    return train_tokenizer(
        targets, hparams["tokenizer_folder"], hparams["vocab_size"], hparams["tokenizer_type"]
    )


def _save_recipe(hparams_file: str, overrides: dict, output_folder: Path):
    """Keep the config and overrides so the output folder alone rebuilds the model."""
    shutil.copyfile(hparams_file, output_folder / RECIPE_COPY)
    kept = {k: v for k, v in overrides.items() if k not in ("data_folder", "output_folder")}
    (output_folder / RECIPE_OVERRIDES).write_text(yaml.safe_dump(kept, sort_keys=True))


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _numbers(value):
    """``--lr_adam=1e-3`` as a number: YAML 1.1 (PyYAML) reads exponents without
    a dot as strings, YAML 1.2 and users read them as floats."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return float(value) if isinstance(value, str) and _FLOAT.fullmatch(value) else value


def parse_recipe_arguments(argv) -> tuple[str, dict, dict]:
    """SpeechBrain's command line (``HPARAMS --key=value ...``) as
    ``(hparams file, run options, YAML overrides as a dict)``."""
    hparams_file, run_opts, overrides_text = sb.parse_arguments(argv)
    return hparams_file, run_opts, _numbers((yaml.safe_load(overrides_text) if overrides_text else None) or {})


def main(argv=None, init_from=None) -> dict:
    """Run the whole recipe; returns the test metrics. ``init_from``: a trained
    model folder to fine-tune (recipes/STOP/finetune.py passes it)."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(argv if argv is not None else sys.argv[1:])
    sb.utils.distributed.ddp_init_group(run_opts)

    with open(hparams_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    data_folder = Path(str(hparams["data_folder"]))
    if not data_folder.is_dir():
        raise PrepareError(f"{data_folder}: data folder not found; pass --data_folder=<STOP release or mini-STOP>")

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    run_on_main(prepare_data, kwargs={"hparams": hparams})
    if init_from:  # fine-tuning: the source model's tokenizer, so the output layer matches
        run_on_main(copy_tokenizer, kwargs={"model_dir": init_from, "folder": hparams["tokenizer_folder"]})
    else:
        run_on_main(build_tokenizer, kwargs={"hparams": hparams})
    tokenizer = ParseTokenizer(hparams["tokenizer_folder"])  # every rank loads the trained model

    if hparams["output_neurons"] != tokenizer.vocab_size:
        # The model's output size comes from the tokenizer: rebuild with it.
        overrides["output_neurons"] = tokenizer.vocab_size
        with open(hparams_file, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f, overrides)
    if if_main_process():
        _save_recipe(hparams_file, {**overrides, "output_neurons": tokenizer.vocab_size}, Path(hparams["output_folder"]))

    train_data, valid_data, test_data, train_loader_kwargs = dataio_prepare(hparams, tokenizer)
    brain = SLU(
        modules=hparams["modules"],
        opt_class=hparams["Adam"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.tokenizer = tokenizer
    if init_from:  # fine-tuning: start from the source model's averaged weights
        load_source_weights(init_from, hparams, brain.device)
    brain.fit(
        brain.hparams.epoch_counter,
        train_data,
        valid_data,
        train_loader_kwargs=train_loader_kwargs,
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    brain.evaluate(test_data, max_key="ACC", test_loader_kwargs=hparams["test_dataloader_opts"])
    return brain.test_scores


if __name__ == "__main__":
    try:
        main()
    except (PrepareError, CheckpointError, NonFiniteLossError) as error:
        sys.exit(f"error: {error}")
