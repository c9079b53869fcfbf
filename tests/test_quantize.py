"""The int8 CPU path (PLM_QUANTIZE): setting parsing, which models it touches, closeness to float32 on a tiny
model, and the float32 paths it must leave alone (attention, explanations, training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_utils import manager
from model_utils.config import get_settings
from model_utils.quantize import QUANTIZED_HEADS, is_quantized, quantize_int8, quantized_bytes, wants_int8

CPU = torch.device("cpu")


@pytest.mark.parametrize("raw, expected", [(None, "off"), ("", "off"), ("int8", "int8"), ("INT8", "int8"),
                                           (" auto ", "auto"), ("off", "off")])
def test_setting_parses(monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: str) -> None:
    if raw is None:
        monkeypatch.delenv("PLM_QUANTIZE", raising=False)
    else:
        monkeypatch.setenv("PLM_QUANTIZE", raw)
    assert get_settings().quantize == expected


def test_unknown_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_QUANTIZE", "fp8")
    with pytest.raises(ValueError, match="PLM_QUANTIZE"):
        get_settings()


def test_which_models_are_quantized() -> None:
    for head in QUANTIZED_HEADS:
        assert wants_int8("int8", CPU, head) and wants_int8("auto", CPU, head)
        assert not wants_int8("off", CPU, head)
        assert not wants_int8("int8", torch.device("cuda"), head)  # dynamic int8 kernels are CPU-only
    # The views of the model's internals and generation keep float32.
    for head in ("base", "causal-lm", "pretraining"):
        assert not wants_int8("int8", CPU, head)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
@torch.inference_mode()
def test_int8_close_to_float32_on_a_tiny_model(tiny_env: Path, backend: str) -> None:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    location = tiny_env / "tiny-bert"
    fp32 = AutoModelForMaskedLM.from_pretrained(location).eval()
    tokenizer = AutoTokenizer.from_pretrained(location)
    int8 = quantize_int8(fp32, tokenizer, alpha=0, backend=backend)
    assert type(int8).__name__ == ("OnnxRuntimeInt8Model" if backend == "onnxruntime" else type(fp32).__name__)
    assert is_quantized(int8) and not is_quantized(fp32)  # the float32 model is left as it was
    enc = tokenizer(["the cat sat on the [MASK] .", "paris is the capital of [MASK] ."], padding=True,
                    return_tensors="pt")
    p32 = fp32(**enc).logits.softmax(-1)
    p8 = int8(**enc).logits.softmax(-1)
    assert p8.shape == p32.shape
    assert not torch.equal(p32, p8)  # it really computes differently
    assert (p32 - p8).abs().max() < 0.02
    linear = sum(m.in_features * m.out_features for m in fp32.modules() if isinstance(m, torch.nn.Linear))
    assert quantized_bytes(int8) >= linear  # one byte per weight at least


@pytest.mark.parametrize("head", ["masked-lm", "next-sentence", "sequence-classification"])
@torch.inference_mode()
def test_onnxruntime_int8_answers_like_the_model_it_was_made_from(tiny_env: Path, head: str) -> None:
    """Every quantized head: the same outputs shape and class, close values, the token types optional (zeros,
    as transformers defaults them), accepted by the Classify tab's input filter; a masked LM also projects at
    chosen positions only, as Fill-Mask asks, giving what the whole projection gives there."""
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer, \
        BertForNextSentencePrediction

    from model_utils.classify import model_inputs
    from model_utils.projection import head_only_at
    from model_utils.quantize import OnnxRuntimeInt8Model

    location = tiny_env / ("tiny-classifier" if head == "sequence-classification" else "tiny-bert")
    load = {"masked-lm": AutoModelForMaskedLM, "next-sentence": BertForNextSentencePrediction,
            "sequence-classification": AutoModelForSequenceClassification}[head]
    fp32 = load.from_pretrained(location).eval()
    tokenizer = AutoTokenizer.from_pretrained(location)
    int8 = quantize_int8(fp32, tokenizer, backend="onnxruntime")
    assert isinstance(int8, OnnxRuntimeInt8Model) and int8.config.to_dict() == fp32.config.to_dict()
    enc = tokenizer(["the cat sat on the [MASK] .", "a good film"], ["it was fine .", "the end"], padding=True,
                    return_tensors="pt")
    reference, answer = fp32(**enc).logits, int8(**model_inputs(enc, int8, CPU)).logits
    assert answer.shape == reference.shape and answer.dtype == torch.float32
    assert type(int8(**enc)).__name__ == ("MaskedLMOutput" if head == "masked-lm" else "SequenceClassifierOutput")
    assert (answer - reference).abs().max() < 0.1
    without_types = int8(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    with_zeros = int8(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                      token_type_ids=torch.zeros_like(enc["input_ids"])).logits
    torch.testing.assert_close(without_types, with_zeros)
    if head != "masked-lm":
        assert not int8.sparse
        return
    rows, columns = torch.tensor([0, 1, 1]), torch.tensor([6, 1, 3])
    with head_only_at(int8, rows, columns) as sparse:
        picked = int8(**enc).logits
    assert sparse and picked.shape == (1, 3, reference.shape[-1])
    with head_only_at(fp32, rows, columns):
        expected = fp32(**enc).logits
    assert (picked - expected).abs().max() < 0.1
    assert int8(**enc).logits.shape == reference.shape  # the selection ends with the context


@torch.inference_mode()
def test_blockwise_int8_is_closer_to_float32_than_one_scale_per_matrix(tiny_env: Path) -> None:
    """The benchmark's ``block_size`` variant (ONNX Runtime's ``MatMulNBits``): its finer scales land nearer
    float32 than the served path's one scale per activation matrix, and still not on it."""
    pytest.importorskip("onnx_ir")  # ONNX Runtime's MatMulNBits quantizer needs it (requirements-dev.txt)
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    location = tiny_env / "tiny-bert"
    fp32 = AutoModelForMaskedLM.from_pretrained(location).eval()
    tokenizer = AutoTokenizer.from_pretrained(location)
    enc = tokenizer(["the cat sat on the [MASK] .", "paris is the capital of [MASK] ."], padding=True,
                    return_tensors="pt")
    reference = fp32(**enc).logits
    errors = {}
    for block in (None, 16):
        int8 = quantize_int8(fp32, tokenizer, alpha=0, backend="onnxruntime", block_size=block)
        errors[block] = float((int8(**enc).logits - reference).abs().mean())
    assert 0 < errors[16] < errors[None]


def test_without_onnxruntime_or_when_the_export_fails_int8_is_pytorchs(tiny_env: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from model_utils import quantize

    location = tiny_env / "tiny-bert"
    fp32 = AutoModelForMaskedLM.from_pretrained(location).eval()
    tokenizer = AutoTokenizer.from_pretrained(location)
    monkeypatch.setattr(quantize, "onnxruntime_available", lambda: False)
    assert type(quantize_int8(fp32, tokenizer)) is type(fp32)
    with pytest.raises(RuntimeError, match="onnxruntime"):
        quantize_int8(fp32, tokenizer, backend="onnxruntime")
    monkeypatch.undo()

    def broken(*_args, **_kwargs):
        raise RuntimeError("an operator ONNX does not know")

    monkeypatch.setattr(quantize.OnnxRuntimeInt8Model, "from_model", broken)
    fallback = quantize_int8(fp32, tokenizer)
    assert type(fallback) is type(fp32) and is_quantized(fallback)
    with pytest.raises(RuntimeError, match="ONNX does not know"):
        quantize_int8(fp32, tokenizer, backend="onnxruntime")
    with pytest.raises(ValueError, match="backend"):
        quantize_int8(fp32, tokenizer, backend="tensorrt")


def test_manager_serves_int8_predictions_and_float32_internals(tiny_env: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from model_utils import attention, explain, fill_mask

    monkeypatch.setenv("PLM_QUANTIZE", "int8")
    cache = manager.get_manager()
    masked = cache.get(None, "masked-lm", task="fill-mask")
    assert masked.quantized and is_quantized(masked.model)
    assert fill_mask("the cat sat on the [MASK] .")  # serves from the int8 model
    assert not is_quantized(cache.get(None, "base", task="attention", attn_implementation="eager").model)
    assert attention("the cat sat on the mat .")["tokens"]
    result = explain("a good film", model="local:tiny-classifier", method="gradient-x-input")
    assert result["words"] and any(w["score"] != 0 for w in result["words"])  # gradients flow: the float32 classifier, cached apart from the int8 one
    classifiers = [m for m in cache.loaded() if m["head"] == "sequence-classification"]
    assert sorted(m["int8"] for m in classifiers) == [False]
    assert cache.get("local:tiny-classifier", "sequence-classification").quantized
    assert any(m["dtype"] == "int8/float32" for m in cache.loaded())
    assert type(masked.model).__name__ == "OnnxRuntimeInt8Model" and masked.approx_bytes >= 2 * masked.model.onnx_bytes


def test_off_serves_float32(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_QUANTIZE", "off")
    loaded = manager.get_manager().get(None, "masked-lm", task="fill-mask")
    assert not loaded.quantized and not is_quantized(loaded.model)


def test_training_loads_float32(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_utils.finetune import _pretrained_classifier

    monkeypatch.setenv("PLM_QUANTIZE", "int8")
    model, _ = _pretrained_classifier("local", str(tiny_env / "tiny-bert"), {0: "neg", 1: "pos"})
    assert not is_quantized(model)
    assert all(p.dtype == torch.float32 for p in model.parameters())


@torch.inference_mode()
def test_smoothing_is_the_same_function_and_leaves_tied_weights_alone(tiny_env: Path) -> None:
    import copy

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from model_utils.quantize import SmoothedLinear, calibration_texts, input_ranges, smooth_linears

    location = tiny_env / "tiny-bert"
    fp32 = AutoModelForMaskedLM.from_pretrained(location).eval()
    tokenizer = AutoTokenizer.from_pretrained(location)
    texts = calibration_texts(16)
    assert len(texts) == 16 and all(isinstance(t, str) and t for t in texts)
    ranges = input_ranges(fp32, tokenizer, texts)
    linears = {n for n, m in fp32.named_modules() if isinstance(m, torch.nn.Linear)}
    assert set(ranges) == linears
    assert all(ranges[n].shape == (m.in_features,) for n, m in fp32.named_modules() if n in ranges)
    smoothed = smooth_linears(copy.deepcopy(fp32), ranges, alpha=0.8)
    wrapped = {n for n, m in smoothed.named_modules() if isinstance(m, SmoothedLinear)}
    assert wrapped == linears - {"cls.predictions.decoder"}  # the decoder is tied to the word embeddings
    assert smoothed.cls.predictions.decoder.weight is smoothed.get_input_embeddings().weight
    assert torch.equal(smoothed.get_input_embeddings().weight, fp32.get_input_embeddings().weight)
    scaled = smoothed.get_submodule("bert.encoder.layer.0.intermediate.dense")
    assert not torch.allclose(scaled.linear.weight, fp32.get_submodule("bert.encoder.layer.0.intermediate.dense").weight)
    enc = tokenizer(["the cat sat on the [MASK] .", "paris is the capital of [MASK] ."], padding=True, return_tensors="pt")
    torch.testing.assert_close(smoothed(**enc).logits, fp32(**enc).logits, rtol=1e-4, atol=1e-4)
    int8 = quantize_int8(fp32, tokenizer, backend="torch")
    assert is_quantized(int8) and any(isinstance(m, SmoothedLinear) for m in int8.modules())
    assert not any(isinstance(m, SmoothedLinear) for m in fp32.modules())  # the float32 model is untouched
    assert (int8(**enc).logits.softmax(-1) - fp32(**enc).logits.softmax(-1)).abs().max() < 0.02
    served = quantize_int8(fp32, tokenizer)  # ONNX Runtime: the scaled model exported
    assert (served(**enc).logits.softmax(-1) - fp32(**enc).logits.softmax(-1)).abs().max() < 0.02
    owned = copy.deepcopy(fp32)  # in place: the caller's model is scaled (the manager drops it), no copy
    quantize_int8(owned, tokenizer, in_place=True)
    assert {n for n, m in owned.named_modules() if isinstance(m, SmoothedLinear)} == wrapped


@pytest.mark.slow
@torch.inference_mode()
def test_int8_agreement_on_the_bundled_model() -> None:
    """On the hand-written cloze sentences, as Fill-Mask projects (at the masks only): plain PyTorch dynamic int8
    keeps 74% of float32's top words, scaled 90%, scaled and served by ONNX Runtime (the app) 97%."""
    from model_utils.bundled import load_bundled
    from model_utils.bundled.quality import CLOZE_EVERYDAY, read_jsonl
    from model_utils.projection import logits_at

    fp32, tokenizer = load_bundled("bundled:minilm-pretrained", "masked-lm")
    enc = tokenizer([r["text"] for r in read_jsonl(CLOZE_EVERYDAY)], padding=True, return_tensors="pt")
    rows, columns = (enc["input_ids"] == tokenizer.mask_token_id).nonzero(as_tuple=True)

    def top(model) -> torch.Tensor:
        return logits_at(model, dict(enc), rows, columns).argmax(-1)

    reference = top(fp32)
    plain, scaled, served = (float((top(model) == reference).float().mean()) for model in (
        quantize_int8(fp32), quantize_int8(fp32, tokenizer, backend="torch"), quantize_int8(fp32, tokenizer)))
    assert served >= 0.94 and scaled >= 0.85 and scaled > plain + 0.05, (plain, scaled, served)
