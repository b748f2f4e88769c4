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

import hashlib
import json
import logging
import random
import shutil
import sys
from pathlib import Path

import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataset import FilteredSortedDynamicItemDataset
from speechbrain.utils.distributed import if_main_process, run_on_main

from stop_slu import metrics, parses
from stop_slu.brain import NonFiniteLossError, RobustBrain, distributed, leave_process_group
from stop_slu.checkpoints import CheckpointError, load_averaged_model, load_source_weights
from stop_slu.data_prep.audio import load_audio
from stop_slu.data_prep.prepare import PrepareError
from stop_slu.data_prep.rows import read_csv
from stop_slu.families import family_of
from stop_slu.inference import RECIPE_COPY, RECIPE_OVERRIDES, output_parse
from stop_slu.nodes import OutputFolder
from stop_slu.recipe_args import OverrideError, RunOptionError, fit_run_options, parse_recipe_arguments
from stop_slu.report import write_report
from stop_slu.run_lock import RunLockedError, config_folders, lock_output_folder
from stop_slu.sharding import gather, shard
from stop_slu.stages import build_tokenizer, copy_tokenizer, prepare_data, report_target_lengths
from stop_slu.tokenizer.parse_tokenizer import VocabSizeError, load_tokenizer
from stop_slu.transfer import transfer_pretrained

logger = logging.getLogger(__name__)


class SLU(RobustBrain):
    """Speech -> parse, with the model of the config's ``family``: an encoder,
    a decoder and (but for Whisper) CTC."""

    valid_search_ids = None  # the utterances decoded at validation (None: all)
    test_ids = None  # the whole test set's IDs in order (DDP: every process decodes a share)

    def compute_forward(self, batch, stage):
        """The config's model family's forward pass (stop_slu/families.py):
        ``(p_ctc, p_seq, wav_lens, hyps)``, hyps one per utterance, its token
        ids (None: not decoded); p_ctc None for a family without CTC."""
        batch = batch.to(self.device)
        search = self._searcher(stage, batch.id)
        return family_of(self.hparams).compute_forward(self.modules, self.hparams, batch, stage, search)

    def _searcher(self, stage, ids):
        """How this stage decodes the batch of utterance ``ids``, as a searcher
        ``(enc_out, wav_lens) -> (hyps, ...)``, or None when it does not decode:
        the test decodes every utterance, validation (every
        ``valid_search_interval`` epochs) only those of ``valid_search_ids``."""
        if stage == sb.Stage.VALID and self._search_this_epoch():
            search, only = self.hparams.valid_search, self.valid_search_ids
        elif stage == sb.Stage.TEST:
            search, only = self.hparams.test_search, None
        else:
            return None
        return lambda enc_out, wav_lens: (self._decode(search, enc_out, wav_lens, ids, only), None, None, None)

    @staticmethod
    def _decode(search, enc_out, wav_lens, ids, only):
        """Search the utterances of the batch that are in ``only`` (None: all)."""
        rows = [i for i, uid in enumerate(ids) if only is None or uid in only]
        hyps = [None] * len(ids)
        if rows:
            index = torch.tensor(rows, device=enc_out.device)
            found, _, _, _ = search(enc_out.detach().index_select(0, index), wav_lens.index_select(0, index))
            for row, hyp in zip(rows, found):
                hyps[row] = hyp
        return hyps

    def _search_this_epoch(self) -> bool:
        """Decode the valid set every ``valid_search_interval`` epochs and on the last."""
        epoch = self.hparams.epoch_counter.current
        return (
            epoch % self.hparams.valid_search_interval == 0
            or epoch == self.hparams.epoch_counter.limit
            or self.time_is_up
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
        if p_ctc is None:  # a model without a CTC branch
            loss = loss_seq
        else:
            loss_ctc = self.hparams.ctc_cost(p_ctc, tokens, wav_lens, tokens_lens)
            weight = self.hparams.ctc_weight
            loss = weight * loss_ctc + (1 - weight) * loss_seq

        if stage != sb.Stage.TRAIN:
            self.acc_metric.append(p_seq, tokens_eos, tokens_eos_lens)
            if hyps is not None:
                decouple = self.hparams.decouple_output
                for uid, hyp, ref, domain in zip(batch.id, hyps, batch.semantics, batch.domain):
                    if hyp is None:  # not in the decoded subset
                        continue
                    hyp = output_parse(self.tokenizer, hyp, decouple)
                    self.decoded.append((uid, hyp, parses.decouple(ref) if decouple else ref, domain))
        return loss

    def on_optimizer_step(self):
        self.hparams.noam_annealing(self.optimizer)  # sets the learning rate of the next step

    def on_fit_start(self):
        super().on_fit_start()  # a resumed run recovers the schedule and the optimiser's rate
        if self.hparams.noam_annealing.n_steps == 0:
            # A fresh run: the optimiser starts at lr_adam, the peak; the first
            # step must use the schedule's first warm-up rate.
            self.hparams.noam_annealing(self.optimizer)

    # -- stages -------------------------------------------------------------
    def on_stage_start(self, stage, epoch):
        super().on_stage_start(stage, epoch)
        if stage != sb.Stage.TRAIN:
            self.acc_metric = self.hparams.acc_computer()
            self.decoded = []

    def on_stage_end(self, stage, stage_loss, epoch):
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            if self.skipped_steps:
                stats["skipped_steps"] = self.skipped_steps  # non-finite losses or gradients this epoch
            if self.scaler_skipped_steps:
                stats["scaler_skipped_steps"] = self.scaler_skipped_steps  # fp16: skipped by the gradient scaler
            self.train_stats = stats
            super().on_stage_end(stage, stage_loss, epoch)  # DDP: ranks in sync?
            return
        if stage == sb.Stage.TEST and distributed():  # each process decoded its share of the test set
            stage_loss, self.decoded = self._gather_test_results(stage_loss)
        stats["ACC"] = self.acc_metric.summarize()
        if self.decoded:
            refs = {uid: ref for uid, _, ref, _ in self.decoded}
            hyps = {uid: hyp for uid, hyp, _, _ in self.decoded}
            scores = metrics.score(refs, hyps, {uid: d for uid, _, _, d in self.decoded})
            stats.update(EM=scores["em"], EM_tree=scores["em_tree"], valid=scores["valid"])

        if stage == sb.Stage.VALID:
            if self.decoded:
                uids = sorted(uid for uid, _, _, _ in self.decoded)
                digest = hashlib.sha256(",".join(uids).encode()).hexdigest()[:12]
                logger.info("Validation: decoded %d utterances (IDs digest %s)", len(uids), digest)
            lr = self.hparams.noam_annealing.current_lr
            self.log_stats(
                stats_meta={"epoch": epoch, "lr": lr, "steps": self.optimizer_step, "minutes": self.train_minutes},
                train_stats=getattr(self, "train_stats", None),
                valid_stats=stats,
            )
            # On disk: the avg_checkpoints best (averaged for testing) and the latest (resuming).
            self.checkpointer.save_and_keep_best(
                meta={"ACC": stats["ACC"], "epoch": epoch, **({"EM": stats["EM"]} if "EM" in stats else {})},
                max_key="ACC",
                num_best=self.hparams.avg_checkpoints,
            )
        elif stage == sb.Stage.TEST:
            self.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            if if_main_process():
                out = Path(self.hparams.output_folder)
                metrics.write_predictions(out / "predictions_test.tsv", self.decoded)
                (out / "metrics_test.json").write_text(json.dumps(scores, indent=2) + "\n")
                logger.info("Test report: %s", write_report(out))
            self.test_scores = scores

    def _gather_test_results(self, stage_loss):
        """DDP: every process's decoded utterances, token accuracy counts and
        loss, combined (the loss weighted by utterances). Returns the loss over
        all processes and the decoded utterances of all, in test-set order."""
        everyone = gather((self.decoded, self.acc_metric.correct, self.acc_metric.total, float(stage_loss)))
        logger.info("Test: utterances decoded by rank: %s", " ".join(str(len(d)) for d, _, _, _ in everyone))
        self.acc_metric.correct = sum(c for _, c, _, _ in everyone)
        self.acc_metric.total = sum(t for _, _, t, _ in everyone)
        count = sum(len(d) for d, _, _, _ in everyone)
        loss = sum(len(d) * loss for d, _, _, loss in everyone) / max(count, 1)
        order = {uid: i for i, uid in enumerate(self.test_ids)}
        decoded = sorted((row for d, _, _, _ in everyone for row in d), key=lambda row: order[row[0]])
        return loss, decoded

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Load the average of the best checkpoints (by valid token accuracy); DDP:
        every process must then hold the same weights (digests compared)."""
        load_averaged_model(vars(self.hparams), max_key=max_key, min_key=min_key, device=self.device)
        if distributed():
            self.check_ranks_in_sync("test")


def dataio_prepare(hparams, tokenizer):
    """Datasets reading the CSVs: audio -> ``sig``, parse -> token tensors.
    The CSVs are read with ``read_csv``: fields literal (no ``$variable``
    substitution), targets in canonical form as the tokenizer was trained."""
    folder = Path(hparams["prepare_folder"])

    def load(split):
        return sb.dataio.dataset.DynamicItemDataset(read_csv(folder / f"{split}.csv"))

    train_data = load(hparams["train_split"])
    valid_data, valid_search_ids = searched_first(
        load(hparams["valid_split"]), hparams.get("valid_search_subset", 0), hparams
    )
    test_data = load(hparams["test_split"]).filtered_sorted(sort_key="duration")
    if hparams["sorting"] == "ascending":
        train_data = train_data.filtered_sorted(sort_key="duration")
    datasets = [train_data, valid_data, test_data]

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return torch.from_numpy(load_audio(wav, hparams["sample_rate"]))

    prefix = list(hparams.get("decoder_prefix") or [hparams["bos_index"]])  # Whisper: its task prefix

    @sb.utils.data_pipeline.takes("semantics")
    @sb.utils.data_pipeline.provides("tokens_bos", "tokens_eos", "tokens")
    def text_pipeline(semantics):
        ids = tokenizer.encode(semantics)
        yield torch.LongTensor(prefix + ids)
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
    return train_data, valid_data, test_data, train_loader_kwargs, valid_search_ids


def searched_first(dataset, size, hparams):
    """The valid set with its decoded subset first (so decoding runs on full
    batches), each part sorted by duration, and the subset's IDs (None: all).
    ``size``: utterances decoded (0 or null: all), a fixed sample drawn with
    the config's seed, the same every epoch and on a resumed run."""
    ids = sorted(dataset.data_ids)
    if not size or int(size) >= len(ids):
        return dataset.filtered_sorted(sort_key="duration"), None
    chosen = set(random.Random(hparams["seed"]).sample(ids, int(size)))
    logger.info("Validation decodes %d of the %d utterances of %s", len(chosen), len(ids), hparams["valid_split"])
    by_duration = sorted(ids, key=lambda uid: (dataset.data[uid]["duration"], uid))
    order = [uid for uid in by_duration if uid in chosen] + [uid for uid in by_duration if uid not in chosen]
    return FilteredSortedDynamicItemDataset(dataset, order), chosen


def _save_recipe(hparams_file: str, overrides: dict, output_folder: Path):
    """Keep the config and overrides so the output folder alone rebuilds the model."""
    shutil.copyfile(hparams_file, output_folder / RECIPE_COPY)
    kept = {k: v for k, v in overrides.items() if k not in ("data_folder", "output_folder")}
    (output_folder / RECIPE_OVERRIDES).write_text(yaml.safe_dump(kept, sort_keys=True))


def main(argv=None, init_from=None) -> dict:
    """Run the whole recipe; returns the test metrics. ``init_from``: a trained
    model folder to fine-tune (recipes/STOP/finetune.py passes it)."""
    hparams_file, run_opts, overrides = parse_recipe_arguments(argv if argv is not None else sys.argv[1:])
    run_opts, run_notes = fit_run_options(run_opts, hparams_file, overrides)
    sb.utils.distributed.ddp_init_group(run_opts)
    data_folder, output_folder = config_folders(hparams_file, overrides, "data_folder", "output_folder")
    if not data_folder.is_dir():
        raise PrepareError(f"{data_folder}: data folder not found; pass --data_folder=<STOP release or mini-STOP>")
    # One run per output folder: the main process locks it before anything is written or built.
    run_lock = lock_output_folder(output_folder) if if_main_process() else None

    with open(hparams_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    for note in run_notes:  # run options changed to work here: in log.txt
        logger.warning(note)
    output = OutputFolder.check(hparams["output_folder"])  # machines without a shared disk get rank 0's files
    run_on_main(prepare_data, kwargs={"hparams": hparams})
    output.share(hparams["prepare_folder"])
    if init_from:  # fine-tuning: the source model's tokenizer, so the output layer matches
        run_on_main(copy_tokenizer, kwargs={"model_dir": init_from, "folder": hparams["tokenizer_folder"]})
    else:
        run_on_main(build_tokenizer, kwargs={"hparams": hparams})
    output.share(hparams["tokenizer_folder"])
    tokenizer = load_tokenizer(hparams["tokenizer_folder"])  # every rank loads the trained model
    run_on_main(report_target_lengths, kwargs={"hparams": hparams, "tokenizer": tokenizer})

    if hparams["output_neurons"] != tokenizer.vocab_size:
        # The model's output size comes from the tokenizer: rebuild with it.
        overrides["output_neurons"] = tokenizer.vocab_size
        with open(hparams_file, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f, overrides)
    if if_main_process():
        _save_recipe(
            hparams_file, {**overrides, "output_neurons": tokenizer.vocab_size}, Path(hparams["output_folder"])
        )

    train_data, valid_data, test_data, train_loader_kwargs, valid_search_ids = dataio_prepare(hparams, tokenizer)
    if not init_from:  # configs with an asr_pretrainer start from a pretrained ASR model (fine-tuning: from init_from)
        transfer_pretrained(hparams)
    brain = SLU(
        modules=hparams["modules"],
        opt_class=hparams["Adam"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.tokenizer = tokenizer
    brain.valid_search_ids = valid_search_ids
    brain.test_ids = list(test_data.data_ids)
    if init_from:  # fine-tuning: start from the source model's averaged weights
        load_source_weights(init_from, hparams, brain.device)
    output.share_checkpoints(hparams["checkpointer"])  # a resumed run recovers rank 0's state everywhere
    brain.fit(
        brain.hparams.epoch_counter,
        train_data,
        valid_data,
        train_loader_kwargs=train_loader_kwargs,
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    output.share_checkpoints(hparams["checkpointer"])  # every process averages rank 0's checkpoints
    brain.evaluate(shard(test_data), max_key="ACC", test_loader_kwargs=hparams["test_dataloader_opts"])
    if run_lock is not None:
        run_lock.release()
    leave_process_group()
    return brain.test_scores


if __name__ == "__main__":
    try:
        main()
    except (
        PrepareError,
        CheckpointError,
        NonFiniteLossError,
        OverrideError,
        RunOptionError,
        VocabSizeError,
        RunLockedError,
    ) as error:
        sys.exit(f"error: {error}")
