"""The ``stop-slu`` command: a thin dispatcher over the project's functions.

stop-slu demo                      synthesise mini-STOP, train, test (CPU, ~25 min)
stop-slu synth OUT                 write a mini-STOP release spoken by eSpeak NG
stop-slu prepare STOP_DIR SAVE_DIR STOP release -> SpeechBrain CSVs + report
stop-slu tokenizer PREPARED_DIR OUT  train the tokenizer on the train CSV; --sizes compares sizes
stop-slu train HPARAMS [--key=value ...]   the training recipe
stop-slu finetune MODEL_DIR [--key=value ...]   adapt a trained model to new CSVs
stop-slu score REF HYP             EM, EM-Tree, validity of ID<TAB>parse files
stop-slu parse MODEL_DIR a.wav ... JSON parse of each file (--tsv: ID<TAB>parse lines)
stop-slu evaluate MODEL DATA       EM of any model on any split: predictions, metrics, report
stop-slu report OUT                (re)write OUT/report.md and its charts
stop-slu export OUT EXPORT_DIR     a self-contained model folder for inference
stop-slu sagemaker HPARAMS --data s3://... --output s3://...   train on SageMaker
stop-slu serve MODEL_DIR           a web page (microphone, upload) and an HTTP API on 127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from stop_slu.data_prep.release import DEFAULT_TARGET

REPO_ROOT = Path(__file__).resolve().parents[1]
HPARAMS_DIR = REPO_ROOT / "hparams"


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def hparams_path(name: str) -> Path:
    """A config by path, or by name from the repository's hparams/ folder."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = HPARAMS_DIR / (name if name.endswith(".yaml") else name + ".yaml")
    if bundled.is_file():
        return bundled
    raise CLIError(f"{name}: no such config (looked in {HPARAMS_DIR}); pass a YAML path")


def _domains(text):
    return [d for d in text.split(",") if d] if text else None


def _cmd_synth(args):
    from stop_slu.data_prep.release import DOMAINS
    from stop_slu.data_prep.synth import FAMILIES, synthesize

    families = tuple(_domains(args.families) or FAMILIES)
    summary = synthesize(
        args.out,
        n_train=args.train,
        n_eval=args.valid,
        n_test=args.test,
        seed=args.seed,
        text_dir=args.text,
        domains=_domains(args.domains) or DOMAINS,
        workers=args.workers,
        progress=not args.quiet,
        families=families,
        train_families=[f for f in families if f != args.leave_out],
        clean_share=args.clean_share,
    )
    rows = summary["rows"]
    print(
        f"mini-STOP written to {summary['out_dir']}: train {rows['train']}, eval {rows['eval']}, "
        f"test {rows['test']} rows (eval/test in two takes); text from {summary['text']}"
    )
    if "grammar" in summary:
        g = summary["grammar"]
        print(
            f"grammar: {g['domains']} domains, {g['intents']} intent labels, {g['slots']} slot labels, "
            f"{g['slot_values']} distinct slot values, {g['carrier_phrases']} carrier phrases, "
            f"nesting up to {g['max_depth']} intent levels"
        )
    print(
        f"emitted: {summary['emitted_intents']} intent labels, {summary['emitted_slots']} slot labels, "
        f"max depth {summary['emitted_max_depth']}"
    )


def _cmd_prepare(args):
    from stop_slu.data_prep.prepare import prepare, summary_line

    report = prepare(
        args.stop_dir,
        args.save_dir,
        splits=args.splits.split(","),
        domains=_domains(args.domains),
        target=args.target,
        strict=args.strict,
        progress=not args.quiet,
        skip_if_done=not args.force,
        low_resource=args.low_resource,
        flat_only=args.flat_only,
    )
    print(summary_line(report))
    print(f"CSVs and prepare_report.json in {args.save_dir}")


def _cmd_tokenizer(args):
    from stop_slu.tokenizer import stage

    if args.out is None and not args.sizes:
        raise CLIError("OUT missing: name the folder to write the tokenizer to, or compare sizes with --sizes")
    kwargs = {"model_type": args.type, "split": args.split, "target_column": args.target_column}
    if args.out is not None:
        _, report = stage.tokenizer_stage(args.prepared_dir, args.out, vocab_size=args.vocab_size, **kwargs)
        print(stage.format_report(report))
        print(f"reuse it: stop-slu train HPARAMS --tokenizer_from={args.out} ...")
    if args.sizes:
        try:
            sizes = [int(size) for size in args.sizes.split(",") if size]
        except ValueError:
            raise CLIError(f"--sizes {args.sizes}: not a comma-separated list of integers, e.g. 100,400,1000") from None
        print(f"sizes compared on {args.prepared_dir}/{args.split}.csv ({args.type}; pieces per target; none kept):")
        print(stage.SIZE_HEADER)
        stage.compare_sizes(args.prepared_dir, sizes, on_row=lambda row: print(stage.format_size_row(row)), **kwargs)


def _cmd_train(args):
    from stop_slu.recipe import train

    scores = train.main([str(hparams_path(args.hparams)), *args.overrides])
    print(json.dumps(scores))


def _cmd_finetune(args):
    from stop_slu.recipe import finetune

    scores = finetune.main([args.model_dir, *args.overrides])
    print(json.dumps(scores))


def _cmd_score(args):
    from stop_slu.metrics import read_parse_tsv, score

    for path in (args.ref, args.hyp):
        if not Path(path).is_file():
            raise CLIError(f"{path}: no such file; expected ID<TAB>parse lines")
    if args.ref.endswith(".csv"):  # a prepared CSV: its semantics column
        from stop_slu.data_prep.rows import read_csv

        refs = {uid: row.get("semantics", "") for uid, row in read_csv(args.ref).items()}
    else:
        refs = read_parse_tsv(args.ref, "reference")
    hyps = read_parse_tsv(args.hyp, "hypothesis")
    matched = sum(uid in hyps for uid in refs)
    if not matched:
        raise CLIError(
            f"{args.hyp}: no hypothesis ID is a reference ID of {args.ref} (e.g. {next(iter(hyps))!r} vs "
            f"{next(iter(refs))!r}); pass files with the same utterance IDs"
        )
    result = score(refs, hyps)
    print(json.dumps(result, indent=2))
    if matched < 0.9 * len(refs) or result["hyp_not_in_ref"] > 0.1 * len(hyps):
        print(
            f"WARNING: only {matched} of the {len(refs)} reference IDs have a hypothesis "
            f"({result['hyp_not_in_ref']} hypothesis IDs are not in the reference); the scores count every "
            "missing one as wrong: check that both files hold the same utterances",
            file=sys.stderr,
        )


def _check_device(device: str):
    """Refuse a CUDA device this machine does not have (before a model loads)."""
    if device.startswith("cuda"):
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= gpus:
            raise CLIError(
                f"--device={device}: no such GPU here ({gpus} visible); pass --device=cpu"
                + (f" or one of cuda:0 to cuda:{gpus - 1}" if gpus else "")
            )


def _parse_inputs(args) -> tuple[list[str], list[str]]:
    """(audio files, their IDs) of a parse call: the files given, IDs from their
    names (stems); or, with --csv, the wav column of the CSV and its IDs."""
    if args.csv:
        if args.wavs:
            raise CLIError(f"--csv {args.csv}: pass audio files or --csv, not both")
        from stop_slu.data_prep.rows import read_csv

        rows = read_csv(args.csv)
        if rows and "wav" not in next(iter(rows.values())):
            raise CLIError(f"--csv {args.csv}: no wav column; pass a CSV written by stop-slu prepare")
        return [row["wav"] for row in rows.values()], list(rows)
    if not args.wavs:
        raise CLIError("no audio files: pass a.wav ... or --csv PREPARED.csv")
    ids = [Path(wav).stem for wav in args.wavs]
    if args.tsv:
        seen = {}
        for wav, uid in zip(args.wavs, ids):
            seen.setdefault(uid, []).append(wav)
        twice = {uid: wavs for uid, wavs in seen.items() if len(wavs) > 1}
        if twice:
            named = "; ".join(f"{uid}: {' '.join(wavs)}" for uid, wavs in list(twice.items())[:3])
            raise CLIError(
                f"--tsv: {len(twice)} ID(s) given by two files of the same name ({named}); "
                "pass --csv PREPARED.csv for the utterance IDs of STOP"
            )
    return list(args.wavs), ids


def _cmd_parse(args):
    from stop_slu.data_prep.audio import AudioError, audio_info

    _check_device(args.device)
    wavs, ids = _parse_inputs(args)
    unreadable = {}
    for wav in wavs:  # a header read each: before anything loads a model
        try:
            audio_info(wav)
        except AudioError as error:
            unreadable[wav] = str(error)
    if len(unreadable) == len(wavs):  # nothing to parse
        for wav, reason in unreadable.items():
            print(f"error: {wav}: {reason}", file=sys.stderr, flush=True)
        sys.exit(1)

    from stop_slu.inference import load_parser

    parser = load_parser(args.model_dir, device=args.device)
    if args.max_audio_seconds is not None:
        try:
            parser.set_max_audio_seconds(args.max_audio_seconds)
        except ValueError as error:
            raise CLIError(f"--max_audio_seconds: {error}") from None
    refused = 0
    for uid, result in zip(ids, parser.parse_files(wavs)):
        if "error" in result:
            refused += 1
            print(f"error: {result['file']}: {result['error']}", file=sys.stderr, flush=True)
        elif args.tsv:
            print(f"{uid}\t{result['parse']}", flush=True)
        else:
            print(json.dumps(result), flush=True)
    if refused:
        sys.exit(1)


def _yaml_overrides(items: list[str]) -> dict:
    """``KEY=VALUE`` items -> {key: value}, each value read as YAML, as the
    recipe reads ``--key=value`` (``0.3`` a number, ``True`` a boolean, ``{a: 1}`` a mapping).
    Raises CLIError for an item without a key or with a value that is not YAML."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise CLIError(f"--override {item}: expected KEY=VALUE, e.g. ctc_weight_decode=0.3")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise CLIError(f"--override {item}: the value is not YAML ({str(error).splitlines()[0]})") from None
    return overrides


def _cmd_evaluate(args):
    from stop_slu.brain import leave_process_group
    from stop_slu.data_prep.release import DEFAULT_TARGET
    from stop_slu.evaluate import evaluate, find_csv, init_distributed, search_settings, set_search
    from stop_slu.inference import load_parser

    device = init_distributed(args.device)
    _check_device(device)
    overrides = _yaml_overrides(args.override) if args.override else None
    parser = load_parser(args.model, device=device, overrides=overrides)
    set_search(parser, beam_size=args.beam_size, max_decode_ratio=args.max_decode_ratio)
    target = parser.target_column or DEFAULT_TARGET
    csv_path = find_csv(
        args.data, args.split, args.out, target, low_resource=args.low_resource, progress=not args.quiet
    )
    split = args.split if csv_path.stem == args.split or not Path(args.data).is_file() else csv_path.stem
    settings = search_settings(parser)
    model = str(Path(args.model).resolve()) if Path(args.model).exists() else str(args.model)
    run = {"model": model, "overrides": overrides or {}, **settings, "batch_size": args.batch_size}
    result = evaluate(
        parser,
        csv_path,
        args.out,
        split=split,
        batch_size=args.batch_size,
        domains=_domains(args.domains),
        restart=args.restart,
        progress=not args.quiet,
        run=run,
    )
    leave_process_group()
    if result is None:  # not rank 0
        return
    scores = result.scores
    print(
        f"{split}: EM {scores['em']:.2f}% (EM-Tree {scores['em_tree']:.2f}%, well-formed {scores['valid']:.2f}%) "
        f"on {scores['n']} utterances of {csv_path}; search: beam {settings['beam_size']}, "
        f"max decode ratio {settings['max_decode_ratio']}"
        + (f"; {result.resumed} read back from the interrupted run" if result.resumed else "")
    )
    if result.seconds:
        print(
            f"decoded {sum(result.by_rank)} utterances ({result.audio_seconds:.1f} s of audio) in "
            f"{result.seconds:.1f} s ({result.cpu_seconds:.1f} CPU s): {result.rate:.2f} utterances/s, "
            f"{result.seconds / max(result.audio_seconds, 1e-9):.3f} x real time"
        )
    if len(result.by_rank) > 1:
        print(f"decoded by rank: {' '.join(map(str, result.by_rank))}")
    print(f"predictions: {result.predictions}   metrics: {result.metrics}   report: {result.report}")


def _cmd_report(args):
    from stop_slu.report import write_report

    print(f"report written: {write_report(args.out)}")


def _cmd_export(args):
    if args.int8 and not args.onnx:
        raise CLIError("--int8: quantises the ONNX export only; add --onnx")
    if args.onnx:
        from stop_slu.onnx_export import export_onnx

        export = export_onnx(args.out, args.export_dir, int8=args.int8)
        print(f"ONNX model exported to {export}; try: stop-slu-runtime {export} audio.wav (no PyTorch needed)")
        return
    from stop_slu.export import export_model

    export = export_model(args.out, args.export_dir)
    print(f"model exported to {export}; try: stop-slu parse {export} audio.wav")


def _cmd_sagemaker(args):
    from stop_slu.sagemaker.launch import launch

    launch(args, hparams_path(args.hparams))


def _cmd_serve(args):
    try:
        from stop_slu.serve import ServeConfig, serve
    except ImportError as error:
        raise CLIError(f"stop-slu serve needs FastAPI and uvicorn ({error}); pip install 'stop-slu[serve]'") from None

    for option, value in (
        ("--max-batch", args.max_batch),
        ("--max-queue", args.max_queue),
        ("--threads", args.threads),
    ):
        if value < 1:
            raise CLIError(f"{option} {value}: must be 1 or more")
    config = ServeConfig(
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        body_timeout_s=args.body_timeout,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        cors_origins=tuple(args.cors_origin),
        low_confidence=args.low_confidence,
        threads=args.threads,
    )
    serve(args.model_dir, host=args.host, port=args.port, config=config, device=args.device)


def _cmd_demo(args):
    from stop_slu.data_prep.synth import FAMILIES, synthesize
    from stop_slu.recipe import train
    from stop_slu.recipe_args import parse_recipe_arguments
    from stop_slu.voice_scores import scores_by_voice, summary_line

    out = Path(args.out)
    data = out / ("mini_stop" if not args.leave_out else f"mini_stop_without_{args.leave_out}")
    model = out / ("model" if not args.leave_out else f"model_without_{args.leave_out}")
    recipe_args = [
        str(hparams_path(args.hparams)),
        f"--data_folder={data}",
        f"--output_folder={model}",
        f"--max_train_minutes={args.minutes}",
        *args.overrides,
    ]
    parse_recipe_arguments(recipe_args)  # a wrong override stops here, not after minutes of synthesis
    if (data / "manifests" / "test.tsv").is_file():
        print(f"[1/3] mini-STOP already in {data}")
    else:
        heard = [f for f in FAMILIES if f != args.leave_out]
        print(f"[1/3] synthesising mini-STOP in {data} (training voices: {', '.join(heard)})")
        synthesize(data, n_train=args.train, n_eval=args.valid, n_test=args.test, seed=args.seed, train_families=heard)
    budget = f"for up to {args.minutes:g} minutes" if args.minutes else "with no time limit"
    print(f"[2/3] preparing, training {args.hparams} {budget}, testing")
    scores = train.main(recipe_args)
    example = sorted((data / "test_1").rglob("*.wav"))[:1]
    print(
        f"[3/3] test EM {scores['em']:.1f}% (EM-Tree {scores['em_tree']:.1f}%, "
        f"well-formed {scores['valid']:.1f}%) on {scores['n']} utterances whose text was never trained on"
    )
    by_voice = scores_by_voice(model / "predictions_test.tsv", data)
    if by_voice:
        (model / "metrics_by_voice.json").write_text(json.dumps(by_voice, indent=2) + "\n")
        print(f"voices: {summary_line(by_voice)}")
    print(f"model: {model}   (predictions: {model / 'predictions_test.tsv'}, metrics: {model / 'metrics_test.json'})")
    if example:
        print(f"try:   stop-slu parse {model} {example[0]}")
    print(f"serve: stop-slu serve {model}   (a page with the microphone and an HTTP API on 127.0.0.1:8000)")


def build_parser() -> argparse.ArgumentParser:
    """The ``stop-slu`` argument parser: one subcommand per stage."""
    parser = argparse.ArgumentParser(
        prog="stop-slu",
        description="Direct spoken language understanding on STOP (audio -> semantic parse) with SpeechBrain.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="synthesise mini-STOP, train the mini model on CPU, report test EM",
        description="The whole pipeline on the built-in mini-STOP: synthesise, prepare, "
        "train hparams/mini.yaml for --minutes, test, print EM and the model folder.",
    )
    p.add_argument("--out", default="stop_slu_demo", help="output folder (default: %(default)s)")
    p.add_argument(
        "--minutes", type=float, default=20, help="training time limit in minutes, 0 = none (default: %(default)s)"
    )
    p.add_argument("--hparams", default="mini", help="config name or path (default: %(default)s)")
    p.add_argument("--train", type=int, default=3000, help="training utterances (default: %(default)s)")
    p.add_argument("--valid", type=int, default=150, help="eval utterances per take (default: %(default)s)")
    p.add_argument("--test", type=int, default=150, help="test utterances per take (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default: %(default)s)")
    p.add_argument(
        "--leave-out",
        choices=["espeak", "piper"],
        help="voice family left out of training and validation (test still speaks it): the EM on a family the "
        "model never heard, beside the EM on the families it did (own corpus and model folders; default: train on all)",
    )
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="extra --key=value overrides for the recipe")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "synth",
        help="write a mini-STOP corpus in the STOP release layout",
        description="Synthesise a STOP-shaped corpus (manifests/*.tsv + 16 kHz wavs) spoken by "
        "eSpeak NG and a neural voice (Piper), in simulated rooms, noise and microphones "
        "(manifests/synthesis.tsv says how each file was made). Text from the built-in grammar, "
        "or from TOPv2 files with --text. Same arguments, same bytes.",
    )
    p.add_argument("out", help="output folder (becomes the release root holding manifests/)")
    p.add_argument("--train", type=int, default=3000, help="training utterances (default: %(default)s)")
    p.add_argument("--valid", type=int, default=150, help="eval utterances, each in two takes (default: %(default)s)")
    p.add_argument("--test", type=int, default=150, help="test utterances, each in two takes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--text", help="TOPv2 folder (<domain>_train.tsv, <domain>_eval.tsv) to take text from")
    p.add_argument("--domains", help="comma-separated domains (default: all eight)")
    p.add_argument("--workers", type=int, default=None, help="synthesis processes (default: up to 2)")
    p.add_argument(
        "--families",
        help="comma-separated voice families: espeak (eSpeak NG), piper (a neural voice) (default: both)",
    )
    p.add_argument("--leave-out", help="a family that speaks test but not train or eval (default: none)")
    p.add_argument(
        "--clean-share",
        type=float,
        default=0.2,
        help="share of utterances without room, noise or microphone; 1 = all clean (default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser(
        "prepare",
        help="STOP release -> SpeechBrain CSVs with a report of skipped rows",
        description="Read the release's manifests, check every wav header and target parse, "
        "write SAVE_DIR/{train,eval,test}.csv and SAVE_DIR/prepare_report.json.",
    )
    p.add_argument("stop_dir", help="the extracted release: the folder holding manifests/ (or its parent)")
    p.add_argument("save_dir", help="where to write the CSVs and the report")
    p.add_argument("--splits", default="train,eval,test", help="comma-separated splits (default: %(default)s)")
    p.add_argument(
        "--domains",
        help="comma-separated domains to keep in the main splits, e.g. the held-in "
        "alarm,event,messaging,music,navigation,timer (default: all)",
    )
    p.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help="manifest column used as the target parse (default: %(default)s, the full parse: a tokenizer "
        "trained on it covers every config, decoupled targets included)",
    )
    p.add_argument(
        "--low-resource",
        metavar="DIR",
        help="STOP's extracted low_resource_splits folder: each of its .tsv files (first line a "
        "folder, then relative/path.wav<TAB>num_samples) becomes SAVE_DIR/<file stem>.csv, "
        "labels joined from the release's manifests; repeated lines are dropped and counted",
    )
    p.add_argument(
        "--flat-only",
        action="store_true",
        help="keep only utterances whose parse has one intent and no nesting (main splits; counted in the report)",
    )
    p.add_argument("--strict", action="store_true", help="fail instead of skipping bad rows")
    p.add_argument("--force", action="store_true", help="redo even if an identical preparation exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser(
        "tokenizer",
        help="train the tokenizer on a prepared train CSV; report it, or compare sizes",
        description="Train SentencePiece (every intent/slot label and ']' one piece) on the "
        "semantics column of PREPARED_DIR/train.csv and write OUT/tokenizer.model and "
        "OUT/tokenizer.json, the folder a training run writes to save/tokenizer/; a run reuses it "
        "with --tokenizer_from=OUT. Prints pieces, labels, pieces per target (mean, 95th "
        "percentile), characters the eval/test CSVs use that it does not cover, labels they use "
        "that it lacks, and three example segmentations. Same CSV and options: OUT is reused. "
        "--sizes 100,400,1000 trains one per size in a temporary folder and prints a table "
        "(nothing kept); OUT is then optional.",
    )
    p.add_argument("prepared_dir", help="a folder written by stop-slu prepare (train.csv, prepare_report.json)")
    p.add_argument("out", nargs="?", help="where to write the tokenizer folder")
    p.add_argument(
        "--vocab_size",
        type=int,
        default=400,
        help="requested pieces, a soft limit (default: %(default)s, as hparams/mini.yaml; the GPU configs use 500)",
    )
    p.add_argument(
        "--type", default="unigram", choices=["unigram", "bpe", "char"], help="SentencePiece model (default: unigram)"
    )
    p.add_argument(
        "--target_column",
        help="the manifest column the CSVs must have been prepared from (checked against "
        "prepare_report.json; default: whichever it was), recorded in tokenizer.json",
    )
    p.add_argument("--split", default="train", help="the CSV to train on: PREPARED_DIR/SPLIT.csv (default: train)")
    p.add_argument("--sizes", help="comma-separated vocabulary sizes to compare, e.g. 100,400,1000 (nothing kept)")
    p.set_defaults(func=_cmd_tokenizer)

    p = sub.add_parser(
        "train",
        help="run the training recipe (same as python recipes/STOP/train.py)",
        description="Prepare, train the tokenizer, train and test. HPARAMS is a YAML path or a "
        "name from hparams/ (mini, conformer, branchformer, ebranchformer, conformer_asr_transfer, "
        "conformer_wavlm, conformer_hubert, ebranchformer_small, whisper). Overrides: "
        "--data_folder=... --output_folder=... --max_train_minutes=... and any YAML key.",
    )
    p.add_argument("hparams", help="config path or name")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--key=value overrides")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "finetune",
        help="adapt a trained model to new data (same as python recipes/STOP/finetune.py)",
        description="Rebuild MODEL_DIR's model, keep its tokenizer, start from its averaged "
        "weights and train on the CSVs in --prepare_folder (e.g. a low-resource "
        "domain: --train_split=reminder_train_25spis). hparams/finetune.yaml sets the "
        "fine-tuning defaults; any YAML key is an override.",
    )
    p.add_argument("model_dir", help="a training output folder")
    p.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="--data_folder=... --prepare_folder=... --output_folder=... and any --key=value",
    )
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser(
        "score",
        help="EM, EM-Tree and validity of hypotheses against references",
        description="REF and HYP are ID<TAB>parse files (UTF-8, with or without a byte-order "
        "mark; an optional header row starting with ID, e.g. the recipe's predictions_test.tsv, "
        "whose reference/hypothesis column each side then reads). REF may also be a prepared CSV "
        "(its semantics column), HYP the output of stop-slu parse --tsv. Prints JSON with em, "
        "em_tree, valid (percentages), n, per-domain scores, ref_without_hyp and hyp_not_in_ref. "
        "A missing or empty hypothesis counts as wrong; a warning says when many IDs do not match, "
        "an error when none does. An ID given twice with different parses is refused, every such "
        "ID named; one repeated with the same parse is scored once, with a warning naming it.",
    )
    p.add_argument("ref")
    p.add_argument("hyp")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser(
        "parse",
        help="parse wav files with a trained model folder",
        description="Print one JSON object per file: file, parse, intent, slots and confidence "
        "(the search's length-normalised log-probability: at most 0, nearer 0 more confident). "
        "A file that is not audio, or shorter or longer than the model can parse, gets one "
        "'error: FILE: reason' line on stderr instead (the other files are still parsed; exit "
        "status 1). --tsv prints ID<TAB>parse lines instead, the input of stop-slu score: IDs "
        "are the file names without extension, or the utterance IDs of a prepared CSV given "
        "with --csv (its wav column is parsed).",
    )
    p.add_argument("model_dir", help="a training output folder, an exported model folder (PyTorch or ONNX) or a Hub id")
    p.add_argument("wavs", nargs="*", help="audio files (any sample rate; stereo is down-mixed)")
    p.add_argument("--csv", help="parse the wav column of this CSV (stop-slu prepare's) instead of files")
    p.add_argument("--tsv", action="store_true", help="print ID<TAB>parse lines (for stop-slu score)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument(
        "--max_audio_seconds",
        type=float,
        metavar="S",
        help="accept audio up to S seconds (default: the model's max_audio_seconds, shown in its "
        "model card; memory grows with it, as its square in the encoder's self-attention)",
    )
    p.set_defaults(func=_cmd_parse)

    p = sub.add_parser(
        "evaluate",
        help="EM of a model on a test set: predictions, metrics JSON and report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Decode every utterance of a split with MODEL, as the recipe's test stage does
(sorted by duration, batched, the model's own search), and write into --out:
predictions_SPLIT.tsv (ID, hypothesis, reference, domain), metrics_SPLIT.json
(the keys of the recipe's metrics_test.json) and report.md (report_SPLIT.md for
another split) with its chart. Rows are appended as they are decoded: run the
same command again after an interruption and it decodes only what is missing.
Several processes: torchrun --nproc_per_node=N -m stop_slu.cli evaluate ...

examples:
  stop-slu evaluate results/mini /data/stop                    # the STOP test set
  stop-slu evaluate user/stop-model prepared/ --split eval --device cuda
  stop-slu evaluate results/held_in /data/stop --low-resource /data/low_resource_splits --split reminder_test""",
    )
    p.add_argument(
        "model", help="a training output folder, an exported model folder (PyTorch or ONNX) or a Hub id (as parse)"
    )
    p.add_argument(
        "data",
        help="a prepared folder (holding SPLIT.csv), one CSV, or a STOP release (prepared into OUT/data first)",
    )
    p.add_argument("--split", default="test", help="the split to evaluate: DATA/SPLIT.csv (default: %(default)s)")
    p.add_argument("--out", default="evaluation", help="output folder (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device; under torchrun cuda means cuda:LOCAL_RANK")
    p.add_argument("--batch_size", type=int, help="utterances per batch (default: the model's test batch size)")
    p.add_argument("--beam_size", type=int, help="beam size of the search (default: the model's own)")
    p.add_argument("--max_decode_ratio", type=float, help="most tokens per encoder frame (default: the model's own)")
    p.add_argument(
        "--override", action="append", metavar="KEY=VALUE", help="a config override for loading the model (repeatable)"
    )
    p.add_argument("--domains", help="comma-separated domains to keep, e.g. reminder,weather (default: all)")
    p.add_argument(
        "--low-resource",
        metavar="DIR",
        help="with a STOP release: STOP's low_resource_splits folder, prepared too (--split reminder_test...)",
    )
    p.add_argument("--restart", action="store_true", help="discard an interrupted evaluation in --out, start over")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "report",
        help="(re)write OUT/report.md with tables and charts of a run's test results",
        description="Reads OUT/predictions_test.tsv and OUT/train_log.txt; writes OUT/report.md "
        "(metrics, per-domain table, error classes, the 20 most frequent label "
        "confusions) with per_domain.png and learning_curves.png beside it.",
    )
    p.add_argument("out", help="a training output folder")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "export",
        help="write a self-contained model folder (inference config, averaged weights, "
        "tokenizer, normaliser, labels, model card)",
        description="OUT is a finished training run. EXPORT_DIR gets hyperparams.yaml, model.ckpt, "
        "normalizer.ckpt, tokenizer/, labels.txt and README.md; load it with "
        "SLUParser.from_hparams(source=EXPORT_DIR) or stop-slu parse EXPORT_DIR a.wav.",
    )
    p.add_argument("out", help="a training output folder")
    p.add_argument("export_dir", help="where to write the exported model")
    p.add_argument(
        "--onnx",
        action="store_true",
        help="write an ONNX export instead, parsed without PyTorch by the stop-slu-runtime package "
        "(encoder and decoder-step graphs, numpy front-end and search tables, manifest.json, a model card "
        "with speed and EM beside PyTorch's; docs/deploy.md); filterbank configs only",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="with --onnx: int8 weights (dynamic quantisation of MatMul, Gemm, Conv and the embedding)",
    )
    p.set_defaults(func=_cmd_export)

    from stop_slu.sagemaker.launch import add_arguments as sagemaker_arguments  # stdlib only: --help stays fast

    p = sub.add_parser(
        "sagemaker",
        help="train on Amazon SageMaker (pip install 'stop-slu[sagemaker]')",
        description="Submit the recipe as a SageMaker training job on a GPU instance: the STOP "
        "release streamed from --data, checkpoints and the exported model under "
        "--output, spot instances with --spot (resumed from the last checkpoint). "
        "--dry-run prints the job request without contacting AWS.",
    )
    sagemaker_arguments(p)
    p.set_defaults(func=_cmd_sagemaker)

    p = sub.add_parser(
        "serve",
        help="a web page (microphone, upload, example clips) and an HTTP API for a trained model",
        description="Serve MODEL_DIR (anything parse accepts) on http://HOST:PORT/: the page records "
        "from the microphone or takes a file and shows the parse as a tree; POST /v1/parse takes "
        "an audio file's bytes and returns the JSON parse prints; GET /v1/model, GET /health, "
        "OpenAPI at /docs. Concurrent requests are parsed in batches behind a bounded queue (full: "
        "503 with Retry-After). Listens on 127.0.0.1 only unless --host says otherwise; see "
        "docs/serving.md for HTTPS behind a reverse proxy.",
    )
    p.add_argument("model_dir", help="a training output folder, an exported model folder (PyTorch or ONNX) or a Hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port, 0 = any free one (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=8, help="most requests per model batch (default: %(default)s)")
    p.add_argument(
        "--max-wait-ms", type=float, default=5, help="longest wait for a batch to fill, ms (default: %(default)s)"
    )
    p.add_argument(
        "--max-queue", type=int, default=32, help="most requests waiting; beyond: 503 (default: %(default)s)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the model (PyTorch models; default: %(default)s, measured fastest on 2 cores: "
        "batching fills a core, the server needs the other; more can help a large model on many cores)",
    )
    p.add_argument("--max-body-mb", type=float, default=25, help="largest request body, MiB (default: %(default)s)")
    p.add_argument(
        "--body-timeout", type=float, default=30, help="seconds a client may take to send a body (default: %(default)s)"
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages from ORIGIN (e.g. https://example.org) call the API; repeatable (default: none, CORS off)",
    )
    p.add_argument(
        "--low-confidence",
        type=float,
        default=-0.85,
        help="the page warns below this confidence (default: %(default)s, the demo model's; docs/walkthrough.md)",
    )
    p.set_defaults(func=_cmd_serve)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """The command line as a namespace. For the commands that pass
    ``--key=value`` overrides to the recipe (demo, train, finetune, sagemaker),
    every option the command itself does not know is such an override, wherever
    it stands (``stop-slu demo --number_of_epochs=30 --minutes 0``); a bare
    ``--`` separator is dropped. Other commands refuse unknown options (exit status 2)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if not hasattr(args, "overrides"):
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        return args
    overrides = [*unknown, *args.overrides]
    args.overrides = [item for item in overrides if item != "--"]
    return args


def main(argv=None):
    """``stop-slu`` itself: run one subcommand; a user error ends in one
    ``error:`` line and a non-zero exit status, never a traceback."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from stop_slu.data_prep.audio import AudioError
    from stop_slu.data_prep.prepare import PrepareError

    # No stop_slu.inference here (its ModelFolderError is a ValueError): it
    # imports torch and SpeechBrain, which would make `stop-slu prepare` load
    # 800 MB and take seconds before any work (benchmarks/prepare_full_size.py).
    try:
        args.func(args)
    except BrokenPipeError:  # the reader went away (stop-slu ... | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (CLIError, PrepareError, AudioError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    except ValueError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
