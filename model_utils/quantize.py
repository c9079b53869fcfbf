"""The int8 CPU path for serving: SmoothQuant-style scaling, then int8 matrix products in ONNX Runtime.

``PLM_QUANTIZE`` (settings ``quantize``): ``int8`` quantizes the prediction models the app serves on the CPU,
``auto`` does so when the serving device is the CPU (both leave a GPU model alone: these kernels are
CPU-only), ``off`` (the default) never. The model (its linear layers scaled, below) is exported to ONNX
(``torch.onnx``) and served by ONNX Runtime (:class:`OnnxRuntimeInt8Model`), its matrix-product weights int8
with one scale per output column and its activations quantized on the fly, one scale per matrix
(``onnxruntime.quantization.quantize_dynamic``); embeddings, LayerNorms, softmax and GELU stay float32. Where
ONNX Runtime is not installed or a model does not export, PyTorch's dynamic int8 ``nn.Linear``
(``torch.ao.quantization.quantize_dynamic``, one weight scale per output row) serves instead: same scaling,
less speed and agreement (below).

One scale per activation matrix is what loses most: a few input channels of BERT's linear layers carry values
10-15x the median (the FFN's input and output reach 24-28 where the median is ~2), and they set the scale for all
the others. Before quantizing, each linear layer's input channel j is therefore divided by
``s_j = max|x_j|^a / max|W_:,j|^(1-a)`` and its weight column multiplied by ``s_j`` (SmoothQuant, Xiao et al.,
ICML 2023): the same function in exact arithmetic, with the outliers moved into the weights, whose scales are
per output. The ``max|x_j|`` come from one pass over :func:`calibration_texts` (256 sentences, 15% of tokens
masked like Fill-Mask inputs; ~3 s on 2 cores) when the model is quantized; the division is one element-wise
product before each layer. Layers whose weight is tied to another (the MLM decoder shares the word embeddings)
are left unscaled. Calibration, export and quantization take ~7.5 s per model at load.

Measured on the bundled models (``python benchmarks/bench_quantize.py --repeat 20``, quiet 2-core machine,
figures in ``benchmarks/README.md``), the app's path against float32: the whole masked-LM forward 2.9x faster at
batch 1 and 2.6x at batch 16 (PyTorch's int8 after the same scaling: 2.0x and 1.4x), and as Fill-Mask runs it
(vocabulary projection at the masks only) 2.5x and 1.8x; Fill-Mask top-1 agreement with float32 92.5% of 5,410
held-out masked tokens and 96.6% of the 88 hand-written cloze sentences (PyTorch scaled: 87.0% and 89.8%; plain
dynamic int8: 81.2% and 73.9%); Next Sentence on the same side of 0.5 for every one of the 90 everyday pairs;
sentiment accuracy +0.09 points. ``a`` = 0.8 was chosen on the held-out agreement of the PyTorch path (0.5, the
paper's default, gave 70%; 0.7 87.5%, 0.9 85.9%, 1.0 83.3%) and is also the best of 0.6-0.9 for ONNX Runtime.
Still short of the 99% target: the bundled MiniLM's word distributions are flat (10% of held-out masks have a
top-1/top-2 logit gap under 0.11), so small rounding flips the top word. Leaving the six feed-forward output
layers (inputs: GELU outputs, the widest range) in float32 (``keep_float``) gives 96.1% and 98.9% for ~20% of the
speed (as Fill-Mask runs it, 1.5x at batch 16), so the app quantizes every layer and the path stays opt-in.
torchao 0.18 was measured earlier (``--torchao``): per-token activations 94%, weight-only 97.5%, but slower than
float32 in eager mode on this CPU. ONNX Runtime's ``MatMulNBits`` at 8 bits (``block_size``; weights and
activations in blocks of 32 input channels, the finest it offers) agrees on 98.1% of held-out masks but is no
faster than float32 at batch 16, and recomputing close calls (int8 top-1/top-2 logit gap < 0.3) in float32 would
reach 99.4% at the cost of a second pass for a quarter of the masks (``benchmarks/README.md``), so neither is
served. For scale: the float32 model under bfloat16 autocast, no int8 at all, agrees on 98.4%.

Only heads that predict are quantized (:data:`QUANTIZED_HEADS`): the Attention tab and the Contextual lab show
the model's internals and keep float32, and so does anything that needs gradients (explanations ask the
manager for ``full_precision``) or trains (fine-tuning and pretraining load their models themselves, never
through the serving cache).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import inspect
import logging
import threading
import warnings
from collections import Counter
from typing import Iterator

import torch

from model_utils.inputs import model_token_limit
from model_utils.projection import head_only_at

logger = logging.getLogger(__name__)

MODES = ("auto", "int8", "off")
BACKENDS = ("onnxruntime", "torch")
# Migration strength of the scaling (0: none, 1: all of an input channel's range moved into the weights),
# chosen by the agreement measured on held-out masked tokens (module docstring).
SMOOTHING_ALPHA = 0.8
CALIBRATION_TEXTS = 256
# Share of calibration tokens replaced by the mask token: Fill-Mask inputs carry masks, and their activations differ.
CALIBRATION_MASKED = 0.15
# Heads whose outputs are predictions (probabilities), not internals shown as they are.
QUANTIZED_HEADS = frozenset({"masked-lm", "next-sentence", "sequence-classification"})


def wants_int8(mode: str | None, device: torch.device, head: str) -> bool:
    """True when a ``head`` model served on ``device`` should be quantized under ``PLM_QUANTIZE=mode``."""
    mode = (mode or "off").lower()
    if mode not in MODES:
        raise ValueError(f"PLM_QUANTIZE={mode!r} is not one of {', '.join(MODES)}")
    return mode != "off" and device.type == "cpu" and head in QUANTIZED_HEADS and int8_supported()


def int8_supported() -> bool:
    """True when this PyTorch build has a quantized CPU engine (x86/fbgemm or qnnpack on ARM)."""
    return any(engine != "none" for engine in torch.backends.quantized.supported_engines)


def quantize_int8(model: torch.nn.Module, tokenizer=None, alpha: float = SMOOTHING_ALPHA,
                  backend: str | None = None, keep_float: tuple[str, ...] = (), in_place: bool = False,
                  block_size: int | None = None) -> torch.nn.Module:
    """An int8 copy of ``model`` (float32, eval mode, on the CPU) that answers like it: ``model(**inputs).logits``.

    With a ``tokenizer`` (and ``alpha`` > 0) the linear layers' inputs are first scaled per channel from one pass
    over :func:`calibration_texts` (module docstring); without one, no scaling. ``backend`` ``"onnxruntime"``
    exports the (scaled) model to ONNX and quantizes its matrix products with ONNX Runtime
    (:class:`OnnxRuntimeInt8Model`; needs a tokenizer for the example inputs of the export); ``"torch"`` uses
    PyTorch's dynamic int8 ``nn.Linear``; ``None`` (the app) takes ONNX Runtime where it is installed and the
    model exports, else PyTorch; ``keep_float`` names ONNX ``MatMul`` nodes to leave in float32
    (:meth:`OnnxRuntimeInt8Model.from_model`); ``block_size`` (ONNX Runtime only) quantizes in blocks of that
    many input channels instead (``MatMulNBits``, measured in the benchmark, not served). ``model`` is left as it
    was, unless ``in_place`` (for a caller that drops it: no float32 copy beside it while quantizing).
    """
    if backend not in (None, *BACKENDS):
        raise ValueError(f"int8 backend {backend!r} is not one of {', '.join(BACKENDS)}")
    scaled = None
    if tokenizer is not None and alpha > 0:
        try:
            ranges = input_ranges(model, tokenizer, calibration_texts())
        except Exception:  # noqa: BLE001 - an odd model or tokenizer still gets the unscaled int8 path
            logger.warning("int8: calibration failed, quantizing without scaling", exc_info=True)
        else:
            scaled = smooth_linears(model if in_place else copy.deepcopy(model), ranges, alpha)
    if backend != "torch" and tokenizer is not None and onnxruntime_available():
        try:
            return OnnxRuntimeInt8Model.from_model(scaled if scaled is not None else model, tokenizer, keep_float,
                                                   block_size)
        except Exception:  # noqa: BLE001 - a model that does not export is served by the PyTorch path
            if backend == "onnxruntime":
                raise
            logger.warning("int8: ONNX export or quantization failed, using PyTorch dynamic int8", exc_info=True)
    elif backend == "onnxruntime":
        raise RuntimeError("the onnxruntime int8 backend needs onnxruntime and onnx installed, and a tokenizer")
    return _torch_int8(scaled if scaled is not None else model, own_copy=scaled is not None or in_place)


def _torch_int8(model: torch.nn.Module, own_copy: bool) -> torch.nn.Module:
    """PyTorch's dynamic int8 ``nn.Linear`` (one weight scale per output row). PyTorch 2.13 marks
    ``torch.ao.quantization`` as deprecated in favour of torchao, whose eager kernels were slower here; the
    warnings are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        # one scale per output row: ~7 points more top-1 agreement with float32 than one scale per matrix
        # a scaled copy is quantized in place: one copy of the weights at a time beside the caller's model
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=own_copy)


def onnxruntime_available() -> bool:
    """True when ONNX Runtime and the ``onnx`` package (its quantizer needs it) can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


class _Logits(torch.nn.Module):
    """``model(**inputs).logits`` with the inputs as positional arguments, for the ONNX export; with ``sparse``
    the last two are the (row, column) positions where the vocabulary projection runs (:func:`head_only_at`)."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...], sparse: bool) -> None:
        super().__init__()
        self.model, self.names, self.sparse = model, names, sparse

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not self.sparse:
            return self.model(**dict(zip(self.names, inputs))).logits
        with head_only_at(self.model, inputs[-2], inputs[-1]):
            return self.model(**dict(zip(self.names, inputs[:-2]))).logits


class OnnxRuntimeInt8Model(torch.nn.Module):
    """A prediction model served by ONNX Runtime with int8 matrix products; called like the transformers model
    it was made from (``model(input_ids=..., attention_mask=..., token_type_ids=...).logits``, CPU tensors).

    Built by :meth:`from_model`: the float32 model (already scaled per input channel) is exported to ONNX
    (``torch.onnx``, opset 17, batch and sequence length dynamic) and its ``MatMul`` weights are quantized to int8,
    one scale per output column, activations quantized on the fly (``onnxruntime.quantization.quantize_dynamic``);
    embeddings, LayerNorms, softmax and GELU stay float32. A masked LM's graph takes the positions to project to
    the vocabulary as two more inputs, so that Fill-Mask (:func:`head_only_at`, through :meth:`project_only_at`)
    projects at its masks only; called plainly it projects everywhere. The session uses as many threads as torch
    and does not spin idle threads (they would take the CPU from requests served by torch). Holds no torch weights.
    """

    INPUTS = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, session, config, onnx_bytes: int, sparse: bool) -> None:
        super().__init__()
        self.session, self.config, self.onnx_bytes, self.sparse = session, config, onnx_bytes, sparse
        self.input_names = tuple(i.name for i in session.get_inputs())
        self._selected = threading.local()

    @classmethod
    def from_model(cls, model: torch.nn.Module, tokenizer, keep_float: tuple[str, ...] = (),
                   block_size: int | None = None) -> "OnnxRuntimeInt8Model":
        """Export ``model`` with example inputs from ``tokenizer``, quantize (except the ``MatMul`` nodes whose
        names contain one of ``keep_float``, e.g. ``"/cls/"``), and open an ONNX Runtime session.

        With ``block_size`` the matrix products are ONNX Runtime's ``MatMulNBits`` instead (8-bit weights with one
        scale per ``block_size`` input channels, activations quantized in blocks of the same size:
        ``accuracy_level`` 4); it needs the ``onnx_ir`` package. Finer than one scale per activation matrix, and
        closer to float32, but no faster than float32 at batch 16 on the 2-core machine (benchmark)."""
        import tempfile
        from pathlib import Path

        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic

        accepted = inspect.signature(model.forward).parameters
        example = tokenizer(["Warm up.", "An example sentence for the export."], padding=True, return_tensors="pt")
        names = tuple(n for n in cls.INPUTS if n in example and n in accepted)
        inputs = tuple(example[n] for n in names)
        with tempfile.TemporaryDirectory(prefix="plm-int8-") as folder:
            fp32, int8 = Path(folder) / "model.onnx", Path(folder) / "model.int8.onnx"
            with torch.no_grad(), warnings.catch_warnings(), _restoring_mode(model):
                warnings.simplefilter("ignore")
                per_token = model(**dict(zip(names, inputs))).logits.dim() == 3
                sparse = per_token and getattr(model, "base_model", model) is not model
                axes = {n: {0: "batch", 1: "sequence"} for n in names}
                axes["logits"] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
                extra: tuple[torch.Tensor, ...] = ()
                if sparse:
                    extra = _all_positions(*inputs[0].shape)
                    axes.update({"rows": {0: "positions"}, "columns": {0: "positions"}, "logits": {1: "positions"}})
                torch.onnx.export(_Logits(model, names, sparse), inputs + extra, str(fp32),
                                  input_names=list(names) + (["rows", "columns"] if sparse else []),
                                  output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False,
                                  do_constant_folding=True)
            excluded = _matmuls_named(fp32, keep_float) if keep_float else []
            root = logging.getLogger()
            root.addFilter(_no_preprocessing_hint)  # logged on every call; shape inference is all it would add
            try:
                if block_size:
                    _quantize_blockwise(fp32, int8, block_size, excluded)
                else:
                    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                                     op_types_to_quantize=["MatMul"], nodes_to_exclude=excluded)
            finally:
                root.removeFilter(_no_preprocessing_hint)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = max(1, torch.get_num_threads())
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            data = int8.read_bytes()
            session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return cls(session, copy.deepcopy(model.config), len(data), sparse)

    @contextlib.contextmanager
    def project_only_at(self, rows: torch.Tensor, columns: torch.Tensor) -> Iterator[None]:
        """While active (in this thread), a masked LM's logits are ``(1, len(rows), vocabulary)``: the projection
        at ``(rows[i], columns[i])`` only, as :func:`head_only_at` gives them from a torch model."""
        if not self.sparse:
            raise TypeError("only a masked LM's int8 graph projects at chosen positions")
        self._selected.positions = (rows, columns)
        try:
            yield
        finally:
            self._selected.positions = None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None):
        from transformers.modeling_outputs import MaskedLMOutput, SequenceClassifierOutput

        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        defaults = {"attention_mask": torch.ones_like(input_ids), "token_type_ids": torch.zeros_like(input_ids)}
        selected = getattr(self._selected, "positions", None)
        if self.sparse:
            given["rows"], given["columns"] = selected if selected is not None else _all_positions(*input_ids.shape)
        feed = {n: (given[n] if given[n] is not None else defaults[n]).to("cpu", torch.long).numpy()
                for n in self.input_names}
        logits = torch.from_numpy(self.session.run(["logits"], feed)[0])
        if self.sparse and selected is None:
            logits = logits.reshape(*input_ids.shape, -1)
        return MaskedLMOutput(logits=logits) if logits.dim() == 3 else SequenceClassifierOutput(logits=logits)


@contextlib.contextmanager
def _restoring_mode(model: torch.nn.Module) -> Iterator[None]:
    """``model`` in eval mode while active, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _matmuls_named(path, parts: tuple[str, ...]) -> list[str]:
    """Names of the ``MatMul`` nodes of the ONNX graph at ``path`` whose names contain one of ``parts``."""
    import onnx

    return [node.name for node in onnx.load(str(path), load_external_data=False).graph.node
            if node.op_type == "MatMul" and any(part in node.name for part in parts)]


def _quantize_blockwise(source, target, block_size: int, excluded: list[str]) -> None:
    """Write the ONNX graph at ``source`` to ``target`` with its ``MatMul`` nodes (but ``excluded``) as 8-bit
    ``MatMulNBits``: symmetric weight blocks of ``block_size`` input channels, int8 compute (accuracy level 4)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quiet = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # it logs every node at INFO
    try:
        quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=8, block_size=block_size, is_symmetric=True,
                                         accuracy_level=4, nodes_to_exclude=excluded)
        quantizer.process()
        quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
    finally:
        quiet.setLevel(level)


def _no_preprocessing_hint(record: logging.LogRecord) -> bool:
    """False for ONNX Runtime's quantizer hint to pre-process the model first (a root-logger filter)."""
    return "pre-processing before quantization" not in record.getMessage()


def _all_positions(batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns) of every position of a ``batch`` x ``length`` input, row by row."""
    return torch.arange(batch).repeat_interleave(length), torch.arange(length).repeat(batch)


class SmoothedLinear(torch.nn.Module):
    """``linear(x * inv_scale)``, where ``linear``'s weight columns were multiplied by ``1 / inv_scale``."""

    def __init__(self, linear: torch.nn.Linear, inv_scale: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("inv_scale", inv_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv_scale)


def calibration_texts(count: int = CALIBRATION_TEXTS) -> list[str]:
    """English sentences for the activation ranges: the first ``count`` training rows of the bundled sentiment
    set (movie-review snippets; never the held-out data the agreement is measured on)."""
    from model_utils.bundled import SAMPLE_SENTIMENT_CSV

    with open(SAMPLE_SENTIMENT_CSV, encoding="utf-8", newline="") as fh:
        rows = [r["text"] for r in csv.DictReader(fh) if r["split"] == "train"]
    return rows[:count]


@torch.inference_mode()
def input_ranges(model: torch.nn.Module, tokenizer, texts: list[str], batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Largest absolute value of each input channel of every ``nn.Linear`` of ``model`` over ``texts``, with
    :data:`CALIBRATION_MASKED` of their tokens masked (seeded) where the tokenizer has a mask token."""
    ranges: dict[str, torch.Tensor] = {}

    def record(name: str):
        def hook(_module, inputs, _output) -> None:
            seen = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0).float()
            ranges[name] = torch.maximum(ranges[name], seen) if name in ranges else seen
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear)]
    if getattr(tokenizer, "pad_token", None) is None:
        batch_size = 1  # e.g. GPT-2's tokenizer cannot pad
    longest = model_token_limit(getattr(model, "config", None), tokenizer, cap=128)
    try:
        with _restoring_mode(model):
            generator = torch.Generator().manual_seed(0)
            for i in range(0, len(texts), batch_size):
                enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=longest,
                                return_tensors="pt", return_special_tokens_mask=True)
                special = enc.pop("special_tokens_mask").bool() | (enc["attention_mask"] == 0)
                if getattr(tokenizer, "mask_token_id", None) is not None:
                    chosen = (torch.rand(enc["input_ids"].shape, generator=generator) < CALIBRATION_MASKED) & ~special
                    enc["input_ids"] = enc["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
                model(**enc)
    finally:
        for handle in handles:
            handle.remove()
    return ranges


@torch.no_grad()
def smooth_linears(model: torch.nn.Module, ranges: dict[str, torch.Tensor], alpha: float) -> torch.nn.Module:
    """``model`` (changed in place) with each measured, untied ``nn.Linear`` wrapped in a :class:`SmoothedLinear`
    whose weight columns carry ``s = max|x|^alpha / max|W|^(1 - alpha)``: the same function, flatter inputs."""
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    for name, linear in list(model.named_modules()):
        if not isinstance(linear, torch.nn.Linear) or name not in ranges or uses[id(linear.weight)] > 1:
            continue  # a tied weight (the MLM decoder is the word embeddings): scaling it would change both
        weight_range = linear.weight.abs().amax(0).clamp(min=1e-5)
        scale = (ranges[name].clamp(min=1e-5).pow(alpha) / weight_range.pow(1 - alpha)).clamp(min=1e-5)
        linear.weight.mul_(scale)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child,
                SmoothedLinear(linear, (1.0 / scale).to(linear.weight.dtype)))
    return model


def is_quantized(model: torch.nn.Module) -> bool:
    """True when ``model`` is served by ONNX Runtime int8 or holds PyTorch's dynamically quantized linear layers."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return isinstance(model, OnnxRuntimeInt8Model) or any(isinstance(m, DynamicLinear) for m in model.modules())


def quantized_bytes(model: torch.nn.Module) -> int:
    """Bytes of the int8 model outside torch's parameters: what ONNX Runtime's session holds for the quantized
    graph (int8 weights, float32 embeddings, working memory), or the packed int8 weights and float32 biases of
    PyTorch's quantized layers."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    if isinstance(model, OnnxRuntimeInt8Model):
        # the session holds ~1.3x the graph's bytes once loaded, and ~1.9x after a batch of 16 (its arena),
        # measured on the bundled masked LM (71 MB graph: 93 MB, then 136 MB)
        return 2 * model.onnx_bytes
    return sum(m.in_features * m.out_features + 4 * m.out_features
               for m in model.modules() if isinstance(m, DynamicLinear))
