"""Parse audio with an ONNX export of a stop-slu model, without PyTorch.

``stop-slu export RUN OUT --onnx`` writes the folder; this package needs only
onnxruntime, numpy, sentencepiece and soundfile::

    from stop_slu_runtime import OnnxParser
    parser = OnnxParser("OUT")
    parser.parse_files(["a.wav"])  # [{"file", "parse", "intent", "slots", "confidence"}]

The search is the recipe's test search (``stop_slu.cached_search`` over
SpeechBrain's ``S2SBeamSearcher``) redone in numpy: beam width, CTC weight with
the CTC pre-beam, length limits and the tree constraint, as the export's
``manifest.json`` sets them.
"""

from stop_slu_runtime.parser import MANIFEST, ExportError, OnnxParser, is_onnx_export

__all__ = ["MANIFEST", "ExportError", "OnnxParser", "is_onnx_export"]
