"""``stop-slu export RUN OUT --onnx [--int8]``: a trained run -> an ONNX export
that parses without PyTorch (the ``stop_slu_runtime`` package, runtime/).

The shape is espnet_onnx's: the encoder and one decoder step as separate
graphs, the beam search outside them (in numpy). OUT holds:

- ``encoder.onnx``: normalised features (1, frames, n_mels) -> the CTC
  log-probabilities (1, frames', vocab) and, per decoder layer, the
  cross-attention keys and values of the encoder states
  (layers, 1, heads, frames', head_dim), computed once per utterance;
- ``decoder_step.onnx``: the newest token of each hypothesis (hyps,), its
  position (1,), the self-attention keys and values of the earlier positions
  (layers, hyps, heads, steps, head_dim) and the cross-attention keys and
  values -> log-probabilities (hyps, vocab) and the caches one step longer;
- ``frontend.npz``: the filterbank (STFT window, mel matrix, dB settings) and
  the feature normalisation (the trained global statistics, or per
  utterance), run in numpy;
- ``tree.npz``: the token classes the tree constraint needs; ``tokenizer/``;
  ``labels.txt``;
- ``manifest.json``: config name, search settings, audio limits, versions;
- ``README.md``: a model card with the files' size, the speed on one CPU
  thread and exact match beside the PyTorch model's, measured at export.

``--int8`` quantises the weights of both graphs' MatMul, Gemm and Conv and
the token embedding table (Gather) to int8 (onnxruntime's dynamic
quantisation); inputs and outputs stay as they are.

Exported: every filterbank config. Refused, in one line saying why: the SSL
configs (their front-end is a Hugging Face encoder) and Whisper.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from speechbrain.lobes.features import Fbank

from stop_slu.cached_search import _Attention
from stop_slu.families import WhisperSeq2Seq, family_of
from stop_slu.search import token_classes
from stop_slu.tokenizer.parse_tokenizer import BOUNDARY

OPSET = 17
ENCODER, DECODER, FRONTEND, TREE = "encoder.onnx", "decoder_step.onnx", "frontend.npz", "tree.npz"
CARD_UTTERANCES = 20  # test utterances the model card's speed and EM are measured on


class OnnxExportError(ValueError):
    """A model the ONNX export cannot take; the message says why."""


def check_exportable(hparams) -> None:
    """Raise OnnxExportError (one line) unless the model of ``hparams`` (a
    loaded config, or a parser's ``hparams``) exports: fbank front-end, global
    or per-utterance normalisation, SpeechBrain TransformerASR decoder with regular multi-head
    attention, the recipe's beam search."""
    hp = hparams
    if isinstance(family_of(hp), WhisperSeq2Seq):
        raise OnnxExportError(
            "Whisper config: its encoder-decoder is Hugging Face's Whisper with its own cache and 30 s "
            "input window, which this export does not cover; parse it with PyTorch (stop-slu parse)"
        )
    features = hp.get("compute_features")
    if not isinstance(features, Fbank) or features.deltas or features.context:
        raise OnnxExportError(
            "SSL config: the front-end is a frozen Hugging Face encoder (WavLM/HuBERT, about 300M parameters), "
            "not a filterbank; the ONNX export covers the filterbank configs only"
        )
    from stop_slu_runtime.frontend import NORM_TYPES

    normalize = hp["normalize"]
    if normalize.norm_type not in NORM_TYPES:
        raise OnnxExportError(
            f"normalize.norm_type={normalize.norm_type}: the runtime normalises with global statistics or "
            f"per utterance ({', '.join(NORM_TYPES)}); batch statistics depend on the batch"
        )
    for layer in hp["Transformer"].decoder.layers:
        for name in ("self_attn", "multihead_attn"):
            att = getattr(getattr(layer, name), "att", None)
            if not isinstance(att, torch.nn.MultiheadAttention) or not att._qkv_same_embed_dim:
                raise OnnxExportError(f"decoder {name}: not regular multi-head attention; its step cannot export")
    search = hp["test_search"]
    if search.using_eos_threshold or search.using_max_attn_shift or search.return_topk:
        raise OnnxExportError(
            "test_search: eos threshold, attention-shift limit and top-k output are not in the runtime's search; "
            "set using_eos_threshold: False"
        )


def _decoder_positions(model):
    """The decoder's absolute sine positional encoding module (SpeechBrain's ``PositionalEncoding``)."""
    if model.attention_type in ("RelPosMHAXL", "RoPEMHA"):
        return model.positional_encoding_decoder
    if model.positional_encoding_type == "fixed_abs_sine":
        return model.positional_encoding
    raise OnnxExportError(f"positional_encoding={model.positional_encoding_type}: the decoder step cannot export")


class SinePositions(torch.nn.Module):
    """Row ``position`` of SpeechBrain's ``PositionalEncoding`` table, computed
    (sin and cos interleaved) instead of stored: the table (2,500 x d_model
    floats) would be most of an int8 decoder graph."""

    def __init__(self, encoding):
        super().__init__()
        d_model = encoding.pe.shape[-1]
        exponent = torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)
        self.register_buffer("denominator", torch.exp(exponent), persistent=False)
        check = self(torch.arange(0, min(64, encoding.max_len)))
        if not torch.allclose(check, encoding.pe[0, : check.shape[0]], atol=1e-5):
            raise OnnxExportError("the decoder's positional encoding is not the sine table the step computes")

    def forward(self, position):
        """(n,) int64 positions -> (n, d_model)."""
        angles = position.float().unsqueeze(1) * self.denominator
        return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(1)


class EncoderGraph(torch.nn.Module):
    """Normalised features (1, frames, n_mels) -> CTC log-probabilities and the
    decoder layers' cross-attention keys and values (see the module docstring)."""

    def __init__(self, cnn, transformer, ctc_lin):
        super().__init__()
        self.cnn, self.transformer, self.ctc_lin = cnn, transformer, ctc_lin

    def forward(self, feats):
        enc = self.transformer.encode(self.cnn(feats), None)
        ctc = torch.log_softmax(self.ctc_lin(enc), dim=-1)
        layers = self.transformer.decoder.layers
        keys = torch.stack([_Attention(layer.multihead_attn.att).project(enc, 1) for layer in layers])
        values = torch.stack([_Attention(layer.multihead_attn.att).project(enc, 2) for layer in layers])
        return ctc, keys, values


class DecoderStepGraph(torch.nn.Module):
    """One decoder step for every hypothesis, on its newest token only: the
    computation of ``stop_slu.cached_search._cached_decoder_step`` with the
    caches as inputs and outputs (see the module docstring)."""

    def __init__(self, transformer, seq_lin, temperature: float = 1.0):
        super().__init__()
        self.transformer, self.seq_lin, self.temperature = transformer, seq_lin, float(temperature)
        self.positions = SinePositions(_decoder_positions(transformer))

    def forward(self, tokens, position, past_k, past_v, cross_k, cross_v):
        model = self.transformer
        x = model.custom_tgt_module(tokens.unsqueeze(1)) + self.positions(position).unsqueeze(0)
        new_k, new_v = [], []
        for i, layer in enumerate(model.decoder.layers):
            before = layer.normalize_before
            attention = _Attention(layer.self_attn.att)
            h = layer.norm1(x) if before else x
            keys = torch.cat([past_k[i], attention.project(h, 1)], dim=2)
            values = torch.cat([past_v[i], attention.project(h, 2)], dim=2)
            new_k.append(keys)
            new_v.append(values)
            x = x + attention.attend(h, keys, values)[0]
            if not before:
                x = layer.norm1(x)
            h = layer.norm2(x) if before else x
            x = x + _Attention(layer.multihead_attn.att).attend(h, cross_k[i], cross_v[i])[0]
            if not before:
                x = layer.norm2(x)
            x = x + layer.pos_ffn(layer.norm3(x) if before else x)
            if not before:
                x = layer.norm3(x)
        logits = self.seq_lin(model.decoder.norm(x))[:, 0]
        return torch.log_softmax(logits / self.temperature, dim=-1), torch.stack(new_k), torch.stack(new_v)


def _export(module, args, path, input_names, output_names, dynamic_axes):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic (the graphs are checked after)
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )


def compact_names(path: Path):
    """Rename a graph's nodes and inner tensors to short names (``n12``, ``t34``):
    the exporter's module-path names are about 5 % of an int8 graph's size."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    keep = {v.name for v in (*graph.input, *graph.output)}
    names = {}
    for index, init in enumerate(graph.initializer):
        names.setdefault(init.name, f"w{index}")
    for node in graph.node:
        for name in node.output:
            if name and name not in keep:
                names.setdefault(name, f"t{len(names)}")
    for init in graph.initializer:
        init.name = names.get(init.name, init.name)
    for index, node in enumerate(graph.node):
        node.name, node.doc_string = f"n{index}", ""
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    del graph.value_info[:]  # inferred shapes of inner tensors: onnxruntime infers them again
    onnx.save(model, str(path))


def export_graphs(hparams, folder: Path) -> dict:
    """Write ``encoder.onnx`` and ``decoder_step.onnx`` of a config's model
    (``hparams``: the loaded config, its ``CNN``, ``Transformer``, ``ctc_lin``,
    ``test_search`` and ``compute_features``); returns their shapes for the manifest."""
    model = hparams["Transformer"]
    search = hparams["test_search"]
    n_mels = int(hparams["compute_features"].compute_fbanks.n_mels)
    encoder = EncoderGraph(hparams["CNN"], model, hparams["ctc_lin"]).eval()
    feats = torch.randn(1, 301, n_mels)
    _export(
        encoder,
        (feats,),
        folder / ENCODER,
        ["feats"],
        ["ctc_log_probs", "cross_k", "cross_v"],
        {
            "feats": {1: "frames"},
            "ctc_log_probs": {1: "enc_frames"},
            "cross_k": {3: "enc_frames"},
            "cross_v": {3: "enc_frames"},
        },
    )
    with torch.no_grad():
        _, cross_k, cross_v = encoder(feats)
    layers, _, heads, _, head_dim = cross_k.shape
    step = DecoderStepGraph(model, search.fc, search.temperature).eval()
    hyps, steps = 3, 2
    args = (
        torch.tensor([4, 5, 6], dtype=torch.long),
        torch.tensor([steps], dtype=torch.long),
        torch.randn(layers, hyps, heads, steps, head_dim),
        torch.randn(layers, hyps, heads, steps, head_dim),
        cross_k,
        cross_v,
    )
    _export(
        step,
        args,
        folder / DECODER,
        ["tokens", "position", "past_k", "past_v", "cross_k", "cross_v"],
        ["log_probs", "new_k", "new_v"],
        {
            "tokens": {0: "hyps"},
            "past_k": {1: "hyps", 3: "steps"},
            "past_v": {1: "hyps", 3: "steps"},
            "cross_k": {3: "enc_frames"},
            "cross_v": {3: "enc_frames"},
            "log_probs": {0: "hyps"},
            "new_k": {1: "hyps", 3: "steps1"},
            "new_v": {1: "hyps", 3: "steps1"},
        },
    )
    compact_names(folder / ENCODER)
    compact_names(folder / DECODER)
    return {"decoder_layers": int(layers), "heads": int(heads), "head_dim": int(head_dim), "n_mels": n_mels}


def frontend_constants(features: Fbank, normalize) -> dict:
    """The numpy front-end's constants (stop_slu_runtime.frontend.Frontend) of
    a SpeechBrain ``Fbank`` and an ``InputNormalization``: global (the trained
    mean and standard deviation) or sentence (statistics of each utterance, so
    only ``std_norm`` and ``epsilon`` are kept)."""
    stft, fbanks = features.compute_STFT, features.compute_fbanks
    window = stft.window.detach().cpu().float()
    left = (stft.n_fft - window.numel()) // 2
    window = torch.nn.functional.pad(window, (left, stft.n_fft - window.numel() - left))
    n_stft = stft.n_fft // 2 + 1
    log_mel, fbanks.log_mel = fbanks.log_mel, False
    try:
        with torch.no_grad():
            matrix = fbanks(torch.eye(n_stft).unsqueeze(0))[0]
    finally:
        fbanks.log_mel = log_mel
    if not log_mel:
        raise OnnxExportError("compute_features: a filterbank without log_mel does not export")
    constants = {
        "window": window.numpy(),
        "fbank_matrix": matrix.cpu().numpy().astype(np.float32),
        "hop_length": np.int64(stft.hop_length),
        "n_fft": np.int64(stft.n_fft),
        "amin": np.float64(fbanks.amin),
        "multiplier": np.float64(fbanks.multiplier),
        "db_offset": np.float64(fbanks.multiplier * fbanks.db_multiplier),
        "top_db": np.float64(fbanks.top_db if fbanks.top_db is not None else np.inf),
        "norm_type": np.str_(normalize.norm_type),
        "std_norm": np.bool_(normalize.std_norm),
        "epsilon": np.float64(normalize.epsilon),
    }
    if normalize.norm_type == "global":
        std = normalize.glob_std if normalize.std_norm else torch.ones_like(normalize.glob_mean)
        constants["mean"] = normalize.glob_mean.detach().cpu().float().numpy()
        constants["std"] = std.clamp(min=normalize.epsilon).detach().cpu().float().numpy()
    return constants


def tree_classes(pieces: list[str], eos_index: int, empty_slots) -> dict:
    """The token classes of the tree constraint (bool arrays over the
    vocabulary, ``stop_slu_runtime.scoring.TOKEN_CLASSES``), as
    ``TreeConstraintScorer.set_vocabulary`` builds them."""
    classes = token_classes(pieces, eos_index)
    empty = {BOUNDARY + label for label in empty_slots}
    classes["empty_ok"] = [s and p in empty for s, p in zip(classes["slot"], pieces)]
    return {name: np.array(flags, dtype=bool) for name, flags in classes.items()}


def search_settings(parser, tree) -> dict:
    """The runtime search's settings (stop_slu_runtime.search.SearchConfig) from the config's test_search."""
    search = parser.hparams.test_search
    scorer = search.scorer
    ctc = scorer.partial_scorers.get("ctc") or scorer.full_scorers.get("ctc") if scorer is not None else None
    unknown = set(scorer.full_scorers) | set(scorer.partial_scorers) if scorer is not None else set()
    if unknown - {"ctc", "treeconstraint"}:
        raise OnnxExportError(f"test_search scorers {sorted(unknown)}: only ctc and the tree constraint export")
    return {
        "beam_size": int(search.beam_size),
        "bos_index": int(search.bos_index),
        "eos_index": int(search.eos_index),
        "blank_index": int(ctc.blank_index) if ctc is not None else 0,
        "min_decode_ratio": float(search.min_decode_ratio),
        "max_decode_ratio": float(search.max_decode_ratio),
        "ctc_weight": float(search.ctc_weight),
        # CTC as a full scorer scores every token: a pre-beam as wide as the vocabulary
        "scorer_beam_scale": float(scorer.scorer_beam_scale if "ctc" in scorer.partial_scorers else 10**6)
        if scorer is not None
        else 1.0,
        "length_normalization": bool(search.length_normalization),
        "tree_weight": float(scorer.weights.get("treeconstraint", 0.0)) if scorer is not None else 0.0,
        "tree_constrained": bool(tree is not None and tree.enabled),
        "words_in_intents": bool(tree.words_in_intents) if tree is not None else True,
    }


def quantize(folder: Path):
    """Dynamic int8 quantisation of both graphs' MatMul, Gemm and Conv weights
    and of the Gather of a weight table (the decoder's token embedding), in
    place."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in (ENCODER, DECODER):
        path = folder / name
        tmp = folder / (name + ".fp32")
        path.replace(tmp)
        quantize_dynamic(
            str(tmp), str(path), op_types_to_quantize=["MatMul", "Gemm", "Gather", "Conv"], weight_type=QuantType.QInt8
        )
        tmp.unlink()


def _config_title(out: Path) -> str:
    """The config's title line (``# stop-slu: mini model, ...``) from the run's copy of it."""
    lines = (out / "recipe.yaml").read_text(encoding="utf-8").splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("# stop-slu:")), "")


def _versions() -> dict:
    from importlib.metadata import version

    import onnx
    import onnxruntime
    import speechbrain

    return {
        "stop-slu": version("stop-slu"),
        "torch": torch.__version__,
        "speechbrain": speechbrain.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def _test_rows(out: Path, limit: int, decouple: bool) -> list[dict]:
    """Up to ``limit`` rows (id, wav, reference parse in the form the model
    outputs) of the run's test set whose audio is on disk."""
    from stop_slu.data_prep.rows import read_csv
    from stop_slu.parses import decouple_if_valid

    path = out / "data" / "test.csv"
    if not path.is_file():
        return []
    rows = [(key, r) for key, r in read_csv(path).items() if Path(r["wav"]).is_file()][:limit]
    return [
        {"id": key, "wav": r["wav"], "ref": decouple_if_valid(r["semantics"]) if decouple else r["semantics"]}
        for key, r in rows
    ]


def measure(parser, onnx_parser, rows) -> dict:
    """Time on one thread (seconds per second of audio) and EM of both parsers on ``rows``."""
    from stop_slu.metrics import score

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        audio = sum(onnx_parser.load_audio(r["wav"]).shape[0] for r in rows) / onnx_parser.sample_rate
        results = {}
        for name, model in (("pytorch", parser), ("onnx", onnx_parser)):
            start = time.perf_counter()
            parsed = model.parse_files([r["wav"] for r in rows], batch_size=1)
            seconds = time.perf_counter() - start
            hyps = {r["id"]: p.get("parse", "") for r, p in zip(rows, parsed)}
            em = score({r["id"]: r["ref"] for r in rows}, hyps)["em"]
            results[name] = {"rtf": seconds / audio, "em": em, "parses": [p.get("parse") for p in parsed]}
        same = sum(a == b for a, b in zip(results["pytorch"]["parses"], results["onnx"]["parses"]))
        return {"n": len(rows), "audio_seconds": audio, "same_parse": same, **results}
    finally:
        torch.set_num_threads(threads)


def _card(out: Path, folder: Path, int8: bool, manifest: dict, measured: dict | None) -> str:
    size = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file() and p.suffix in (".onnx", ".npz")}
    lines = [
        f"# STOP parser, ONNX export ({out.name}, {'int8' if int8 else 'fp32'})",
        "",
        "Parse 16 kHz audio without PyTorch:",
        "",
        "```",
        "pip install ./runtime   # stop-slu-runtime: onnxruntime, numpy, sentencepiece, soundfile",
        f"stop-slu-runtime {folder} audio.wav   # or stop-slu parse {folder} audio.wav",
        "```",
        "",
        "## Size",
        "",
        *[f"- `{name}`: {bytes_ / 1e6:.2f} MB" for name, bytes_ in sorted(size.items())],
        f"- total: {sum(size.values()) / 1e6:.2f} MB",
        "",
        "## Search",
        "",
        "```json",
        json.dumps(manifest["search"], indent=1),
        "```",
        f"Audio it parses: {manifest['limits']['shortest_samples']} to "
        f"{manifest['limits']['longest_samples'] or 'any number of'} samples at {manifest['sample_rate']} Hz.",
        "",
        "## Measured at export (one CPU thread, one utterance at a time)",
        "",
    ]
    if measured:
        n = measured["n"]
        lines += [
            f"On {n} utterances of the run's test set ({measured['audio_seconds']:.1f} s of audio):",
            "",
            "| parser | real-time factor | EM |",
            "|---|---|---|",
            f"| PyTorch (stop-slu parse) | {measured['pytorch']['rtf']:.4f} | {measured['pytorch']['em']} |",
            f"| ONNX {'int8' if int8 else 'fp32'} (this folder) | {measured['onnx']['rtf']:.4f} | "
            f"{measured['onnx']['em']} |",
            "",
            f"Same parse as PyTorch: {measured['same_parse']} of {n}. Only a sample: benchmarks/onnx_parity.py "
            "measures the whole test set.",
        ]
    else:
        lines += ["Not measured: the run folder has no test set with audio on disk."]
    return "\n".join(lines) + "\n"


def export_onnx(output_folder, export_dir, int8: bool = False, card_utterances: int = CARD_UTTERANCES) -> Path:
    """Write the ONNX export of the finished run ``output_folder`` into
    ``export_dir`` (see the module docstring). Raises OnnxExportError for a
    config that does not export, ModelFolderError for a folder that is not a run."""
    from stop_slu_runtime import MANIFEST, OnnxParser
    from stop_slu_runtime.parser import FORMAT

    from stop_slu.inference import SLUParser

    out = Path(output_folder).resolve()
    parser = SLUParser.from_folder(out)
    hp = parser.hparams
    try:
        check_exportable(hp)
    except OnnxExportError as error:
        raise OnnxExportError(f"{out}: {error}") from None
    folder = Path(export_dir)
    folder.mkdir(parents=True, exist_ok=True)
    shapes = export_graphs(parser.hparams, folder)
    if int8:
        quantize(folder)
    np.savez(folder / FRONTEND, **frontend_constants(hp.compute_features, parser.mods["normalize"]))
    scorer = parser.hparams.test_search.scorer
    tree = scorer.full_scorers.get("treeconstraint") if scorer is not None else None
    classes = tree_classes(parser.tokenizer.pieces(), int(hp.test_search.eos_index), parser.tokenizer.empty_slots)
    np.savez(folder / TREE, **classes)
    tokenizer_dir = folder / "tokenizer"
    tokenizer_dir.mkdir(exist_ok=True)
    for name in ("tokenizer.model", "tokenizer.json"):
        shutil.copyfile(parser.tokenizer.folder / name, tokenizer_dir / name)
    (folder / "labels.txt").write_text("".join(label + "\n" for label in parser.tokenizer.labels), encoding="utf-8")
    shortest, longest = parser.supported_samples()
    manifest = {
        "format": FORMAT,
        "config": _config_title(out),
        "run": str(out),
        "recipe_overrides": parser.overrides,
        "precision": "int8" if int8 else "fp32",
        "sample_rate": int(hp.sample_rate),
        "decouple_output": bool(hp.decouple_output),
        "target_column": hp.get("target_column"),
        "pad_index": int(hp.get("pad_index", 0)),
        "vocab_size": int(len(classes["eos"])),
        "limits": {"shortest_samples": int(shortest), "longest_samples": int(longest) if longest else None},
        "search": search_settings(parser, tree),
        "graphs": {**shapes, "opset": OPSET},
        "versions": _versions(),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    rows = _test_rows(out, card_utterances, bool(hp.decouple_output))
    measured = measure(parser, OnnxParser(folder, threads=1), rows) if rows else None
    (folder / "README.md").write_text(_card(out, folder, int8, manifest, measured), encoding="utf-8")
    return folder
