"""Tests of the causal-LM pipeline (model_utils.causal_pretrain) on a tiny decoder built by the test."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from conftest import TINY_VOCAB, tiny_tokenizer
from transformers import BertConfig, BertLMHeadModel

from model_utils import causal_pretrain as C
from model_utils.data import Document
from model_utils.adapters import apply_delta

SENTENCES = ["the cat sat on the mat .", "the dog ran in the park .", "she ate dinner at night .",
             "they love the film .", "paris is the capital of france .", "i hate rain in the morning ."]


def tiny_decoder(seed: int = 0) -> BertLMHeadModel:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, is_decoder=True, tie_word_embeddings=True,
                        bos_token_id=2, eos_token_id=3)
    return BertLMHeadModel(config).eval()


def docs(n: int, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    return [Document("t", f"t:{i}", tuple(rng.choice(SENTENCES) for _ in range(3))) for i in range(n)]


def test_sequences_start_with_cls_and_only_a_documents_end_has_sep():
    tok = tiny_tokenizer()
    token_docs = [[[10, 11, 12], [13, 14]], [[20]]]
    seqs = C.build_sequences(token_docs, tok, max_len=4)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    assert seqs == [[cls, 10, 11, 12], [cls, 13, 14, sep], [cls, 20, sep]]


def test_sparse_causal_loss_equals_the_models_own_loss():
    tok, model = tiny_tokenizer(), tiny_decoder()
    seqs = C.build_sequences([[tok.encode(s, add_special_tokens=False)] for s in SENTENCES], tok, 32)
    batch = C.collate(seqs, tok.pad_token_id)
    ours = C.causal_losses(model, batch)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        reference = model(**batch, labels=labels).loss
    assert torch.allclose(ours["loss"], reference, atol=1e-5)


def test_attention_is_causal_in_the_decoder_and_its_base():
    model = tiny_decoder()
    ids = torch.tensor([[2, 10, 11, 12, 13, 3]])
    with torch.no_grad():
        weights = model.bert(ids, output_attentions=True).attentions
    for layer in weights:
        upper = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
        assert torch.all(layer[0][:, upper] == 0)
    # changing a later token leaves earlier positions' outputs unchanged
    changed = ids.clone()
    changed[0, 4] = 20
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    assert torch.allclose(a[0, :4], b[0, :4], atol=1e-6) and not torch.allclose(a[0, 4], b[0, 4])


def _args(tmp_path: Path, **kw) -> C.CausalArguments:
    base = dict(output_dir=str(tmp_path / "run"), init_from="", max_steps=30, batch_size=8, learning_rate=1e-2,
                eval_every=0, save_every=0, eval_sequences=32, lora_rank=4, lora_alpha=8, max_seq_length=32,
                bf16=False, wordnet_share=1.0)
    return C.CausalArguments(**{**base, **kw})


def _lora_model(args: C.CausalArguments):
    return C.add_decoder_adapter(tiny_decoder(), args.lora_rank, args.lora_alpha), tiny_tokenizer()


@pytest.mark.slow
def test_training_learns_and_the_delta_rebuilds_an_ordinary_decoder(tmp_path: Path):
    args = _args(tmp_path)
    model, tok = _lora_model(args)
    before = C.evaluate(model, C.eval_batches_of(C.heldout_sequences(docs(8, 1), tok, args), tok.pad_token_id))
    result = C.train(args, docs(60), docs(8, 1), model_and_tokenizer=(model, tok))
    assert result["metrics"]["loss"] < before["loss"] - 0.5
    trained = result["model"].eval()
    frozen = dict(trained.named_parameters())["bert.base_model.model.embeddings.word_embeddings.weight"]
    assert not frozen.requires_grad, "the tied word embeddings stay as they are"
    rebuilt = apply_delta(tiny_decoder(), Path(result["output"])).eval()
    assert type(rebuilt.bert).__name__ == "BertModel" and rebuilt.config.is_decoder
    ids = torch.tensor([[2] + tok.encode("the cat sat on", add_special_tokens=False)])
    with torch.no_grad():
        assert torch.allclose(trained(ids).logits, rebuilt(ids).logits, atol=1e-5)
    generated = rebuilt.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert generated.shape[1] <= ids.shape[1] + 4 and torch.equal(generated[0, :ids.shape[1]], ids[0])


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path: Path):
    import shutil

    args = _args(tmp_path, max_steps=6, save_every=3)
    first = C.train(args, docs(40), docs(8, 1), model_and_tokenizer=_lora_model(args))
    assert (Path(args.output_dir) / "last").is_dir()  # written at step 3
    shutil.rmtree(Path(args.output_dir) / "final")
    resumed = C.train(args, docs(40), docs(8, 1), model_and_tokenizer=_lora_model(args))  # steps 4-6 again
    losses = lambda r: [e["loss"] for e in r["log"] if e["kind"] == "train"]  # noqa: E731
    assert len(losses(resumed)) == 6
    assert losses(resumed) == pytest.approx(losses(first), abs=1e-5)


@pytest.mark.slow
def test_from_scratch_twin_saves_and_reloads_the_whole_model(tmp_path: Path):
    from model_utils.bundled.quality import load_scratch

    args = _args(tmp_path, from_scratch=True, max_steps=3)
    model = tiny_decoder(seed=3)
    result = C.train(args, docs(20), docs(4, 1), model_and_tokenizer=(model.train(), tiny_tokenizer()))
    reloaded = load_scratch(Path(result["output"]))
    ids = torch.tensor([[2, 10, 11, 12]])
    with torch.no_grad():
        assert torch.allclose(result["model"].eval()(ids).logits, reloaded(ids).logits, atol=1e-6)
    assert reloaded.cls.predictions.decoder.weight.data_ptr() == reloaded.bert.embeddings.word_embeddings.weight.data_ptr()


@pytest.mark.slow
def test_export_last_writes_the_checkpoint_as_a_delta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from model_utils.bundled.quality import load_scratch

    args = _args(tmp_path, from_scratch=True, max_steps=4, save_every=2)
    C.train(args, docs(20), docs(4, 1), model_and_tokenizer=(tiny_decoder(seed=3).train(), tiny_tokenizer()))
    state = torch.load(Path(args.output_dir) / "last" / "trainer_state.pt", weights_only=True)["params"]
    monkeypatch.setattr(C, "build_model", lambda _args: tiny_decoder(seed=9))
    out = C.export_last(args)
    assert out.name == "step-2"
    exported = dict(load_scratch(out).named_parameters())
    assert all(torch.equal(exported[name], value) for name, value in state.items())


@pytest.mark.slow
def test_continuing_the_bundled_causal_model_starts_exactly_where_it_ended():
    """``--init_from bundled:minilm-causal`` restores its adapter, head and the LayerNorms/biases it trained in
    full (a start from the head alone would begin a continuation from a different model)."""
    from model_utils.bundled import load_bundled

    start = C.build_model(C.CausalArguments(init_from="bundled:minilm-causal")).eval()
    shipped, tok = load_bundled("bundled:minilm-causal", "causal-lm")
    ids = tok("[CLS] the weather today is", add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(start(ids).logits, shipped.eval()(ids).logits, atol=1e-4)
    trained = {n for n, p in start.named_parameters() if p.requires_grad}
    assert any("LayerNorm" in n for n in trained) and not any("word_embeddings" in n for n in trained)


@pytest.mark.slow
def test_a_start_without_a_language_model_head_is_refused():
    """The sentiment classifier's delta (same LoRA targets at rank 16) has no head to predict words with."""
    with pytest.raises(ValueError, match="no masked/causal LM head"):
        C.build_model(C.CausalArguments(init_from="bundled:minilm-sentiment", lora_rank=16))


def test_upsample_repeats_one_sources_documents():
    tok = tiny_tokenizer()
    corpus = docs(40) + [Document("u", f"u:{i}", ("the dog ran in the park .",)) for i in range(4)]
    held_out = docs(8, seed=1)
    base, _ = C.prepare_data(C.CausalArguments(batch_size=4, wordnet_share=1.0, eval_sequences=8), tok, corpus, held_out)
    more, _ = C.prepare_data(C.CausalArguments(batch_size=4, wordnet_share=1.0, eval_sequences=8, upsample="u=3"),
                             tok, corpus, held_out)
    assert len(more) == len(base) + 2 * 4  # two more copies of each one-sequence document of source u
    with pytest.raises(ValueError, match="source=N"):
        C.CausalArguments(upsample="u=0")


def test_a_stored_adapter_widens_to_a_higher_rank_without_changing_the_model(tmp_path: Path):
    """``--lora_rank 8`` from a rank-4 adapter (its alpha/rank scale 2 -> 16/8 = 2, then 24/8 = 3): the first
    ranks carry the stored adapter, the new ones start as PEFT starts them, so the model computes what it did
    and the new ranks learn (their ``B`` gets a gradient); a narrower rank than stored is refused."""
    from peft import set_peft_model_state_dict

    stored = C.add_decoder_adapter(tiny_decoder(), 4, 8)
    with torch.no_grad():
        for name, p in stored.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)  # a trained adapter, not PEFT's zero start
    stored.bert.save_pretrained(str(tmp_path / "adapter"))
    ids = torch.tensor([[2, 10, 11, 12, 13, 3]])
    with torch.no_grad():
        expected = stored.eval()(ids).logits
    for alpha in (16, 24):
        wide = C.add_decoder_adapter(tiny_decoder(), 8, alpha)
        weights = C.widened_adapter(tmp_path / "adapter", 8, alpha)
        assert all(t.shape[0 if "lora_A" in n else 1] == 8 for n, t in weights.items() if "lora_" in n)
        set_peft_model_state_dict(wide.bert, weights)
        torch.testing.assert_close(wide.eval()(ids).logits, expected, atol=1e-5, rtol=1e-5)
    wide.train()
    wide(ids, labels=ids).loss.backward()
    new_columns = [p.grad[:, 4:] for n, p in wide.named_parameters() if "lora_B" in n]
    assert all(g.abs().sum() > 0 for g in new_columns)
    with pytest.raises(ValueError, match="more than --lora_rank"):
        C.widened_adapter(tmp_path / "adapter", 2, 4)
