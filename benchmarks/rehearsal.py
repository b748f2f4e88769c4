#!/usr/bin/env python3
"""A full STOP run rehearsed on this machine: what each stage costs per unit,
and what a whole run of each GPU config would cost, evaluation included.

1. Data: a release-shaped tree with STOP's split sizes (120,935 train rows,
   33,384 eval and 75,636 test rows; hard-linked eSpeak audio, built by
   ``benchmarks/prepare_full_size.py``'s ``build_release``), prepared by the
   project's ``prepare``; the tokenizer trained on the real training targets,
   so target lengths are those of the text.
2. Per GPU config (conformer, branchformer, ebranchformer_small), the model
   built from its YAML, on the CPU, each stage timed separately:
   - train: ``--train-steps`` optimiser steps (after one untimed) of the
     recipe's forward, joint loss, backward, clip and AdamW step on real
     batches of the config's DynamicBatchSampler, at ``--batch-seconds`` of
     audio per batch (the configs use 600 s on a GPU; the time per audio second
     is assumed constant from there to 600 s: an estimate);
   - valid loss: teacher-forced forward over one batch of the valid set;
   - valid decoding: the config's greedy searcher on one batch, decoding
     exactly the reference number of tokens (``min/max_decode_ratio`` set per
     batch: a random model would otherwise stop anywhere);
   - test decoding: the config's beam search (tree constraint, CTC) on one
     batch, at reference lengths the same way;
   - checkpoint: save (weights + optimiser state) and load, size on disk;
     averaging of ``avg_checkpoints`` copies as the recipe's test does;
     export: the exported model's size (weights only).
   ``--old`` adds, measured in the same run, the evaluation settings before
   they changed: every valid utterance greedy-decoded by SpeechBrain's uncached
   searcher, the test's CTC scored on the full vocabulary with the uncached
   beam searcher.
3. Projection for a full run at STOP's split sizes (also when the tree is
   built smaller with ``--scale``): epochs x (train + valid) + test, from the per
   unit times (train: per audio second; valid loss, valid decoding, test: per
   utterance), and the share of evaluation (valid + test) in the whole; disk =
   checkpoint size x (avg_checkpoints + 1) folders, plus one mid-epoch
   checkpoint while an epoch runs.

    python benchmarks/rehearsal.py --old                       # all GPU configs, before and after
    python benchmarks/rehearsal.py --configs ebranchformer_small --scale 0.1

CPU figures are for this machine's CPU; a GPU run's absolute times differ, but
the stages' shares are what the target (evaluation <= 10 % of the run) is
about. Run with ``--device cuda`` on a GPU to measure there.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("conformer", "branchformer", "ebranchformer_small")
STOP_SIZES = {"train": 120_935, "eval": 33_384, "test": 75_636}  # rows, both takes of eval/test


def load_prepare_benchmark():
    """benchmarks/prepare_full_size.py as a module (its tree builder)."""
    spec = importlib.util.spec_from_file_location("prepare_full_size", REPO / "benchmarks" / "prepare_full_size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


class Rehearsal:
    """One config's model, optimiser and searchers, built from its YAML."""

    def __init__(self, name, prepared: Path, tokenizer_folder: Path, vocab: int, work: Path, device, old: bool):
        import torch
        from hyperpyyaml import load_hyperpyyaml

        overrides = {
            "data_folder": str(prepared),
            "output_folder": str(work / name),
            "prepare_folder": str(prepared),
            "tokenizer_folder": str(tokenizer_folder),
            "output_neurons": vocab,
        }
        with open(REPO / "hparams" / f"{name}.yaml", encoding="utf-8") as f:
            self.hparams = load_hyperpyyaml(f, overrides)
        self.name, self.device, self.work = name, device, work / name
        self.modules = torch.nn.ModuleDict(self.hparams["modules"]).to(device)
        self.optimizer = self.hparams["Adam"](self.hparams["model"].parameters())
        self.old = None
        if old:
            with open(REPO / "hparams" / f"{name}.yaml", encoding="utf-8") as f:
                text = f.read()
            text = text.replace(
                "valid_search: !new:stop_slu.cached_search.CachedTransformerGreedySearcher",
                "valid_search: !new:speechbrain.decoders.seq2seq.S2STransformerGreedySearcher",
            )
            text = text.replace(
                "test_search: !new:stop_slu.cached_search.CachedTransformerBeamSearcher",
                "test_search: !new:speechbrain.decoders.seq2seq.S2STransformerBeamSearcher",
            )
            text = text.replace(
                "    full_scorers: [!ref <tree_scorer>]\n    partial_scorers: [!ref <ctc_scorer>]\n",
                "    full_scorers: [!ref <ctc_scorer>, !ref <tree_scorer>]\n",
            )
            old_hparams = load_hyperpyyaml(text, overrides)
            # The old searchers, on a copy of the model with the same weights.
            old_hparams["model"].load_state_dict(self.hparams["model"].state_dict())
            torch.nn.ModuleDict(old_hparams["modules"]).to(device)
            self.old = {key: old_hparams[key] for key in ("valid_search", "test_search")}

    def batch(self, rows, tokenizer):
        """Padded audio and token tensors of ``rows`` (CSV rows)."""
        import torch
        from speechbrain.dataio.batch import PaddedBatch

        from stop_slu.data_prep.audio import load_audio

        h = self.hparams
        items = []
        for row in rows:
            ids = tokenizer.encode(row["semantics"])
            items.append(
                {
                    "sig": torch.from_numpy(load_audio(row["wav"], h["sample_rate"])),
                    "tokens_bos": torch.LongTensor([h["bos_index"]] + ids),
                    "tokens_eos": torch.LongTensor(ids + [h["eos_index"]]),
                    "tokens": torch.LongTensor(ids),
                }
            )
        return PaddedBatch(items).to(self.device)

    def forward(self, batch, train: bool):
        from stop_slu.frontend import encoder_input

        h = self.hparams
        wavs, wav_lens = batch.sig
        tokens_bos, _ = batch.tokens_bos
        src, wav_lens = encoder_input(self.modules, h["compute_features"], wavs, wav_lens, epoch=1)
        enc_out, dec_out = self.modules.Transformer(src, tokens_bos, wav_lens, pad_idx=h["pad_index"])
        p_ctc = h["log_softmax"](self.modules.ctc_lin(enc_out).float())
        p_seq = h["log_softmax"](self.modules.seq_lin(dec_out).float())
        tokens_eos, tokens_eos_lens = batch.tokens_eos
        tokens, tokens_lens = batch.tokens
        loss = h["ctc_weight"] * h["ctc_cost"](p_ctc, tokens, wav_lens, tokens_lens) + (1 - h["ctc_weight"]) * h[
            "seq_cost"
        ](p_seq, tokens_eos, length=tokens_eos_lens)
        return loss, enc_out, wav_lens

    def train_step(self, batch):
        import torch

        self.modules.train()
        loss, _, _ = self.forward(batch, train=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.hparams["model"].parameters(), self.hparams["max_grad_norm"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def decode(self, search, batch):
        """Search ``batch`` for exactly its longest reference's token count."""
        import torch

        self.modules.eval()
        with torch.no_grad():
            _, enc_out, wav_lens = self.forward(batch, train=False)
            steps = int(batch.tokens_eos[0].shape[1])
            ratio = (steps + 0.5) / enc_out.shape[1]  # int(frames x ratio) = steps
            search.max_decode_ratio = ratio
            # beam search: no end before that; greedy search counts its steps from the minimum
            search.min_decode_ratio = ratio if hasattr(search, "beam_size") else 0.0
            hyps, _, _, _ = search(enc_out, wav_lens)
        return hyps


def timed(fn, device, label=""):
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    seconds = time.perf_counter() - started
    if label:
        print(f"  {label}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return seconds


def rehearse(name, args, prepared, tokenizer, splits, work) -> dict:
    import torch
    from speechbrain.dataio.dataset import DynamicItemDataset
    from speechbrain.dataio.sampler import DynamicBatchSampler
    from speechbrain.utils.checkpoints import average_checkpoints

    from stop_slu.checkpoints import SafeCheckpointer

    r = Rehearsal(name, prepared, Path(tokenizer.folder), tokenizer.vocab_size, work, args.device, args.old)
    h = r.hparams
    result = {"config": name, "params_m": round(sum(p.numel() for p in h["model"].parameters()) / 1e6, 1)}

    # -- train: batches as the config's sampler builds them (seconds of audio scaled down)
    train_rows = splits["train"]
    dataset = DynamicItemDataset({row["ID"]: {"duration": float(row["duration"])} for row in train_rows})
    opts = dict(h["dynamic_batch_sampler_train"])
    opts["max_batch_length"] = args.batch_seconds
    sampler = DynamicBatchSampler(dataset, length_func=lambda x: x["duration"], seed=h["seed"], **opts)
    sampler.set_epoch(1)
    batches = list(sampler)[: args.train_steps + 1]
    seconds = []
    audio = []
    for i, indices in enumerate(batches):
        rows = [train_rows[j] for j in indices]
        batch = r.batch(rows, tokenizer)
        t = timed(lambda batch=batch: r.train_step(batch), args.device, f"{name} train step {i}")
        if i:  # the first step is a warm-up
            seconds.append(t)
            audio.append(sum(float(row["duration"]) for row in rows))
    # A full run: STOP's split sizes, at the tree's mean durations.
    train_audio = STOP_SIZES["train"] * sum(float(row["duration"]) for row in train_rows) / len(train_rows)
    result["train_s_per_audio_h"] = round(sum(seconds) / sum(audio) * 3600, 1)
    result["train_batch_audio_s"] = round(sum(audio) / len(audio), 1)

    # -- valid loss and decoding, test decoding: one batch of the eval/test loaders' size
    def eval_rows(split, n):
        rows = sorted(splits[split], key=lambda row: float(row["duration"]))
        start = random.Random(0).randrange(0, max(1, len(rows) - n))
        return rows[start : start + n]  # neighbours in duration, as the sorted loaders batch them

    valid_batch = r.batch(eval_rows("eval", args.valid_batch or h["valid_dataloader_opts"]["batch_size"]), tokenizer)
    test_batch = r.batch(eval_rows("test", args.test_batch), tokenizer)

    def per_utt(fn, batch, label):
        return timed(fn, args.device, f"{name} {label}") / len(batch)

    r.modules.eval()
    with torch.no_grad():
        r.forward(valid_batch, train=False)  # warm-up
        result["valid_loss_s_per_utt"] = per_utt(lambda: r.forward(valid_batch, train=False), valid_batch, "valid loss")
    result["valid_decode_s_per_utt"] = per_utt(
        lambda: r.decode(h["valid_search"], valid_batch), valid_batch, "valid decode"
    )
    result["test_decode_s_per_utt"] = per_utt(lambda: r.decode(h["test_search"], test_batch), test_batch, "test decode")
    if r.old:
        result["old_valid_decode_s_per_utt"] = per_utt(
            lambda: r.decode(r.old["valid_search"], valid_batch), valid_batch, "old valid decode"
        )
        result["old_test_decode_s_per_utt"] = per_utt(
            lambda: r.decode(r.old["test_search"], test_batch), test_batch, "old test decode"
        )

    # -- checkpoint save/load, averaging, export size
    folder = work / name / "save"
    shutil.rmtree(folder, ignore_errors=True)
    checkpointer = SafeCheckpointer(folder, recoverables={"model": h["model"], "optimizer": r.optimizer})
    saved = []
    result["ckpt_save_s"] = timed(lambda: saved.append(checkpointer.save_checkpoint(meta={"ACC": 0.5})), args.device)
    size = sum(p.stat().st_size for p in saved[0].path.iterdir())
    result["ckpt_gb"] = round(size / 1e9, 2)
    result["ckpt_load_s"] = timed(lambda: checkpointer.recover_if_possible(), args.device)
    copies = [saved[0]] * int(h["avg_checkpoints"])
    loader = partial(torch.load, weights_only=True)  # average_checkpoints passes map_location
    result["average_s"] = timed(
        lambda: h["model"].load_state_dict(
            average_checkpoints(copies, recoverable_name="model", parameter_loader=loader)
        ),
        args.device,
    )
    result["export_gb"] = round((saved[0].path / "model.ckpt").stat().st_size / 1e9, 2)
    shutil.rmtree(folder, ignore_errors=True)

    # -- projection for a full run
    epochs = int(h["number_of_epochs"])
    interval = int(h["valid_search_interval"])
    decode_epochs = len({e for e in range(1, epochs + 1) if e % interval == 0 or e == epochs})
    n_valid, n_test = STOP_SIZES["eval"], STOP_SIZES["test"]
    subset = int(h.get("valid_search_subset") or 0) or n_valid
    subset = min(subset, n_valid)
    hours = lambda s: s / 3600  # noqa: E731

    def projection(valid_decode_per_utt, decoded_per_epoch, test_per_utt):
        train = epochs * train_audio * result["train_s_per_audio_h"] / 3600
        valid = epochs * n_valid * result["valid_loss_s_per_utt"] + decode_epochs * decoded_per_epoch * (
            valid_decode_per_utt
        )
        test = n_test * test_per_utt
        total = train + valid + test
        return {
            "train_h": round(hours(train), 1),
            "valid_h": round(hours(valid), 1),
            "test_h": round(hours(test), 1),
            "total_h": round(hours(total), 1),
            "eval_share": round((valid + test) / total, 3),
        }

    result["after"] = projection(result["valid_decode_s_per_utt"], subset, result["test_decode_s_per_utt"])
    if r.old:
        result["before"] = projection(
            result["old_valid_decode_s_per_utt"], n_valid, result["old_test_decode_s_per_utt"]
        )
    result["disk_gb"] = round(result["ckpt_gb"] * (int(h["avg_checkpoints"]) + 2), 1)
    result["epochs"], result["decode_epochs"], result["valid_decoded"] = epochs, decode_epochs, subset
    for key, value in list(result.items()):
        if isinstance(value, float) and key.endswith("per_utt"):
            result[key] = round(value, 3)
        elif isinstance(value, float) and key.endswith("_s"):
            result[key] = round(value, 2)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "stop_slu_rehearsal"))
    parser.add_argument("--topv2", default=str(REPO.parent / "shared" / "topv2"))
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of STOP's split sizes (default 1)")
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps per config")
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="audio seconds per training batch")
    parser.add_argument(
        "--valid-batch", type=int, default=0, help="utterances in the timed valid batch (0: the config's batch size)"
    )
    parser.add_argument("--test-batch", type=int, default=8, help="utterances in the timed test batch")
    parser.add_argument("--old", action="store_true", help="also time the evaluation settings before the change")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from stop_slu.data_prep.prepare import prepare
    from stop_slu.tokenizer.parse_tokenizer import train_tokenizer

    work = Path(args.work)
    bench = load_prepare_benchmark()
    sizes = {split: max(2, round(n * args.scale)) for split, n in bench.STOP_SIZES.items()}
    sizes.update((split, 2 * max(1, round(sizes[split] / 2))) for split in ("eval", "test"))
    release = work / ("release" if args.scale == 1.0 else f"release_x{args.scale:g}")
    started = time.perf_counter()
    text = bench.build_release(release, sizes, Path(args.topv2))
    prepared = work / (release.name + "_prepared")
    if not (prepared / "test.csv").is_file():
        prepare(release, prepared, progress=True)
    splits = {split: read_csv(prepared / f"{split}.csv") for split in ("train", "eval", "test")}
    tokenizer = train_tokenizer(
        [row["semantics"] for row in splits["train"]], work / (release.name + "_tokenizer"), 500, "unigram"
    )
    data_s = time.perf_counter() - started
    print(f"data: {release} ({text}); {', '.join(f'{s} {len(r):,}' for s, r in splits.items())}; {data_s:.0f} s")

    results = []
    for name in args.configs.split(","):
        started = time.perf_counter()
        result = rehearse(name, args, prepared, tokenizer, splits, work)
        result["rehearsal_s"] = round(time.perf_counter() - started, 1)
        results.append(result)
        print(json.dumps(result), flush=True)
    print()
    print(f"device: {args.device}, threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}")
    header = "| config | train s/audio-h | valid loss s/utt | valid decode s/utt (before) | test s/utt (before) |"
    header += " projected run h: train / valid / test (share of evaluation) | before | disk GB |"
    print(header)
    print("|" + "---|" * 8)
    for r in results:
        after, before = r["after"], r.get("before")
        old_valid = f" ({r['old_valid_decode_s_per_utt']})" if before else ""
        old_test = f" ({r['old_test_decode_s_per_utt']})" if before else ""
        row = (
            f"| {r['config']} | {r['train_s_per_audio_h']} | {r['valid_loss_s_per_utt']} | "
            f"{r['valid_decode_s_per_utt']}{old_valid} | {r['test_decode_s_per_utt']}{old_test} | "
            f"{after['train_h']} / {after['valid_h']} / {after['test_h']} ({after['eval_share']:.1%}) | "
        )
        row += (
            f"{before['train_h']} / {before['valid_h']} / {before['test_h']} ({before['eval_share']:.1%}) | "
            if before
            else "- | "
        )
        row += f"{r['disk_gb']} |"
        print(row)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    worst = max(r["after"]["eval_share"] for r in results)
    print(f"evaluation share of the projected run, worst config: {worst:.1%} (target <= 10 %)")
    return 0 if worst <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
