"""Tests of the MLM + NSP pretraining pipeline on a tiny BERT built by the test."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_model, tiny_tokenizer
from transformers import BertForPreTraining

from model_utils import adapters, pretrain as P
from model_utils.data import Document

SENTENCES = [
    "the cat sat on the mat", "the dog ran in the park", "she ate dinner at night", "they love the film",
    "the bird sleeps in the tree", "he was happy after dinner", "it is a great book", "we ate food in paris",
    "london is a city in england", "paris is the capital of france", "the sun was on the house",
    "i hate rain in the morning", "my car is very bad", "you are so good", "this movie was terrible",
]


def tiny_docs(n_docs: int = 24, per_doc: int = 4, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    return [Document("t", f"t:{i}", tuple(rng.choice(SENTENCES) for _ in range(per_doc))) for i in range(n_docs)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("pt") / "tiny", "bert-pretraining")


def load_tiny(tiny_dir: Path):
    return BertForPreTraining.from_pretrained(str(tiny_dir), use_safetensors=True), tiny_tokenizer()


def test_masking_follows_bert_rule_statistically():
    tok = tiny_tokenizer()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(len(tok.all_special_ids) + 10, tok.vocab_size, (400, 60), generator=gen)
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    masker = P.make_masker(tok, 0.15, seed=1)
    inputs, labels = masker.torch_mask_tokens(ids.clone(), special_tokens_mask=special)
    selected = labels != -100
    n = int((~special).sum())
    assert not selected[special].any(), "special tokens are never selected"
    assert abs(selected.sum().item() / n - 0.15) < 0.01  # 23,200 draws: 4 sigma is about 0.01
    k = int(selected.sum())
    masked = (inputs == tok.mask_token_id) & selected
    unchanged = (inputs == ids) & selected
    random_ = selected & ~masked & ~unchanged
    assert abs(masked.sum().item() / k - 0.8) < 0.03
    assert abs(unchanged.sum().item() / k - 0.1) < 0.03  # random draws may hit the same id, rarely
    assert abs(random_.sum().item() / k - 0.1) < 0.03
    assert torch.equal(labels[selected], ids[selected]), "labels are the original tokens"
    assert torch.equal(inputs[~selected], ids[~selected]), "unselected tokens are untouched"


def test_nsp_pairs_are_true_next_half_the_time():
    tok = tiny_tokenizer()
    docs = tiny_docs(60, 5)
    token_docs = P.tokenize_documents(docs, tok)
    examples = P.build_examples(token_docs, tok, 64, random.Random(0))
    assert len(examples) == sum(len(d) - 1 for d in token_docs)
    labels = [e.next_sentence_label for e in examples]
    assert 0.4 < labels.count(P.IS_NEXT) / len(labels) < 0.6
    # Rebuild which document each IsNext example came from and check B really follows A.
    i = 0
    for doc in token_docs:
        for si in range(len(doc) - 1):
            e = examples[i]
            sep = e.input_ids.index(tok.sep_token_id)
            a, b = e.input_ids[1:sep], e.input_ids[sep + 1:-1]
            assert a == doc[si]
            if e.next_sentence_label == P.IS_NEXT:
                assert b == doc[si + 1]
            assert e.token_type_ids == [0] * (sep + 1) + [1] * (len(e.input_ids) - sep - 1)
            i += 1


def test_nsp_negatives_come_from_another_document():
    tok = tiny_tokenizer()
    # Every document uses its own distinct sentences, so a NotNext B must belong to a different doc.
    docs = [Document("t", f"t:{i}", tuple(f"{w} {w} {w}" for w in ws))
            for i, ws in enumerate([("cat", "dog"), ("paris", "london"), ("rain", "sun"), ("book", "film")])]
    token_docs = P.tokenize_documents(docs, tok)
    rng = random.Random(3)
    for _ in range(20):
        for e, (di, doc) in zip(P.build_examples(token_docs, tok, 64, rng), enumerate(token_docs)):
            sep = e.input_ids.index(tok.sep_token_id)
            b = e.input_ids[sep + 1:-1]
            assert (b in doc) == (e.next_sentence_label == P.IS_NEXT)


def test_pack_pair_truncates_longest_first():
    tok = tiny_tokenizer()
    ids, types = P.pack_pair(tok, list(range(10, 40)), list(range(50, 55)), 16)
    assert len(ids) == 16 and len(types) == 16
    assert ids[0] == tok.cls_token_id and ids.count(tok.sep_token_id) == 2
    assert ids[-6:-1] == list(range(50, 55)), "the shorter segment is kept whole"


def test_sparse_losses_equal_the_models_own_loss(tiny_dir: Path):
    model, tok = load_tiny(tiny_dir)
    model.eval()
    examples = P.build_examples(P.tokenize_documents(tiny_docs(), tok), tok, 64, random.Random(0))
    batch = P.collate(examples[:16], tok, P.make_masker(tok, 0.15, 0))
    ours = P.pretraining_losses(model, batch)
    with torch.no_grad():
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          token_type_ids=batch["token_type_ids"], labels=batch["labels"],
                          next_sentence_label=batch["next_sentence_label"])
    assert torch.allclose(ours["loss"], reference.loss, atol=1e-5)


def _args(tmp_path: Path, **kw) -> P.PretrainArguments:
    base = dict(output_dir=str(tmp_path / "run"), max_steps=40, batch_size=16, learning_rate=2e-2,
                eval_every=0, save_every=0, eval_examples=64, lora_rank=8, lora_alpha=16, max_seq_length=64)
    return P.PretrainArguments(**{**base, **kw})


@pytest.mark.slow
def test_training_reduces_loss_and_delta_reassembles(tiny_dir: Path, tmp_path: Path):
    docs = tiny_docs(80, 4)
    events = []
    result = P.train(_args(tmp_path), docs, tiny_docs(12, 4, seed=1), on_event=events.append,
                     model_and_tokenizer=load_tiny(tiny_dir))
    losses = [e["loss"] for e in events if e["kind"] == "train"]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2
    assert events[-1]["kind"] == "eval" and 0.0 <= events[-1]["mlm_accuracy"] <= 1.0
    # Reassemble: fresh base + stored delta gives the trained model's outputs.
    trained = result["model"].eval()
    fresh, tok = load_tiny(tiny_dir)
    rebuilt = adapters.apply_delta(fresh, Path(result["output"])).eval()
    enc = tok(["the cat sat on the [MASK]"], ["she ate dinner"], return_tensors="pt")
    with torch.no_grad():
        a, b = trained(**enc), rebuilt(**enc)
    assert torch.allclose(a.prediction_logits, b.prediction_logits, atol=1e-5)
    assert torch.allclose(a.seq_relationship_logits, b.seq_relationship_logits, atol=1e-5)
    assert type(rebuilt.bert).__name__ == "BertModel", "an ordinary transformers model, no PEFT wrapper"


@pytest.mark.slow
def test_resume_continues_exactly(tiny_dir: Path, tmp_path: Path):
    docs, held = tiny_docs(40, 4), tiny_docs(8, 4, seed=1)
    full = P.train(_args(tmp_path / "a", max_steps=6), docs, held, model_and_tokenizer=load_tiny(tiny_dir))
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    args = _args(tmp_path / "b", max_steps=6, save_every=3)
    P.train(args, docs, held, should_stop=stop_after_three, model_and_tokenizer=load_tiny(tiny_dir))
    assert (Path(args.output_dir) / "last").is_dir()
    resumed = P.train(args, docs, held, model_and_tokenizer=load_tiny(tiny_dir))
    assert resumed["steps"] == 6
    train_losses = lambda r: [e["loss"] for e in r["log"] if e["kind"] == "train"]  # noqa: E731
    assert train_losses(resumed) == pytest.approx(train_losses(full), abs=1e-5)


def test_examples_without_nsp_are_single_segments():
    tok = tiny_tokenizer()
    examples = P.build_examples(P.tokenize_documents(tiny_docs(3, 2), tok), tok, 64, random.Random(0), nsp=False)
    assert len(examples) == 6
    assert all(e.input_ids.count(tok.sep_token_id) == 1 and e.next_sentence_label == -100 for e in examples)


def test_nsp_needs_two_documents():
    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match="two"):
        P.build_examples(P.tokenize_documents(tiny_docs(1, 3), tok), tok, 64, random.Random(0))


def test_micro_batches_give_the_whole_batch_gradient(tiny_dir: Path):
    model, tok = load_tiny(tiny_dir)
    model.eval()  # no dropout, so both ways compute the same function
    examples = P.build_examples(P.tokenize_documents(tiny_docs(40, 4), tok), tok, 64, random.Random(0))
    batch = P.collate(examples[:24], tok, P.make_masker(tok, 0.15, 0))
    grads = []
    for micro in (1, 3):
        model.zero_grad()
        result = P.pretraining_step(model, batch, micro_batches=micro)
        grads.append((result, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (whole, g1), (parts, g3) = grads
    assert whole["loss"] == pytest.approx(parts["loss"], abs=1e-5)
    assert whole["loss"] == pytest.approx(float(P.pretraining_losses(model, batch)["loss"]), abs=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g1, g3))


def _distinct_docs(sources: list[str], per_doc: int = 4) -> list[Document]:
    """Documents whose sentences are all different ("w0 w0", "w1 w1", ...), so a segment names its document."""
    words = iter(P_WORDS)
    return [Document(source, f"{source}:{i}", tuple(f"{w} {w}" for w in (next(words) for _ in range(per_doc))))
            for i, source in enumerate(sources)]


P_WORDS = ("cat dog bird mat sofa house car park tree paris france london england capital city country good bad "
           "great terrible happy sad love hate movie film book food rain sun day night morning dinner").split()


def _where(token_docs: list[list[list[int]]], segment: list[int]) -> tuple[int, int]:
    return next((d, s) for d, doc in enumerate(token_docs) for s, sent in enumerate(doc) if sent == segment)


def test_nsp_negatives_come_from_the_same_source_and_never_the_next_sentence():
    tok = tiny_tokenizer()
    docs = _distinct_docs(["a", "a", "a", "b", "b", "b", "c", "c"])
    token_docs = P.tokenize_documents(docs, tok)
    sources = [d.source for d in docs]
    same_document = 0
    for seed in range(30):
        examples = P.build_examples(token_docs, tok, 64, random.Random(seed), sources=sources, same_document=0.3)
        pairs = [(di, si) for di, doc in enumerate(token_docs) for si in range(len(doc) - 1)]
        for e, (di, si) in zip(examples, pairs):
            sep = e.input_ids.index(tok.sep_token_id)
            bd, bs = _where(token_docs, e.input_ids[sep + 1:-1])
            assert sources[bd] == sources[di], "a NotNext B never changes source"
            if e.next_sentence_label == P.IS_NEXT:
                assert (bd, bs) == (di, si + 1)
            else:
                assert bd != di or bs not in (si, si + 1)
                same_document += bd == di
    assert same_document > 0


def test_one_sentence_documents_are_mlm_only_examples():
    tok = tiny_tokenizer()
    docs = _distinct_docs(["a", "a"]) + _distinct_docs(["a"], per_doc=1)
    examples = P.build_examples(P.tokenize_documents(docs, tok), tok, 64, random.Random(0))
    assert len(examples) == 3 + 3 + 1
    single = examples[-1]
    assert single.next_sentence_label == -100 and single.input_ids.count(tok.sep_token_id) == 1


def test_documents_to_examples_follows_the_arguments():
    tok = tiny_tokenizer()
    docs = _distinct_docs(["a", "a", "b", "b"])
    args = P.PretrainArguments(max_seq_length=64, nsp_same_document=0.0)
    first = P.documents_to_examples(docs, tok, args, seed=5)
    assert first == P.documents_to_examples(docs, tok, args, seed=5)
    token_docs = P.tokenize_documents(docs, tok)
    assert first == P.build_examples(token_docs, tok, 64, random.Random(5), sources=["a", "a", "b", "b"])


@pytest.mark.slow
def test_init_from_continues_a_delta(tiny_dir: Path, tmp_path: Path):
    docs, held = tiny_docs(40, 4), tiny_docs(8, 4, seed=1)
    first = P.train(_args(tmp_path / "a", max_steps=5), docs, held, model_and_tokenizer=load_tiny(tiny_dir))
    # one step at the smallest learning rate from the saved delta: the model evaluates as the trained one
    cont = P.train(_args(tmp_path / "b", max_steps=1, learning_rate=1e-7, init_from=first["output"]), docs, held,
                   model_and_tokenizer=load_tiny(tiny_dir))
    assert cont["metrics"]["mlm_loss"] == pytest.approx(first["metrics"]["mlm_loss"], abs=1e-4)
    assert cont["metrics"]["nsp_loss"] == pytest.approx(first["metrics"]["nsp_loss"], abs=1e-4)


def test_upsample_adds_passes_over_one_sources_examples_with_fresh_negatives():
    tok = tiny_tokenizer()
    docs = _distinct_docs(["a", "a", "b", "b"])
    base = P.prepare_examples(P.PretrainArguments(max_seq_length=64, eval_examples=8), tok, docs, docs)[0]
    more = P.prepare_examples(P.PretrainArguments(max_seq_length=64, eval_examples=8, upsample="b=3"), tok, docs, docs)[0]
    assert more[:len(base)] == base
    extra = more[len(base):]
    assert len(extra) == 2 * 2 * 3  # two more passes over two 4-sentence documents of source b: 3 pairs each
    assert extra[:6] != extra[6:]  # each pass draws its own negatives
    b_sentences = {tuple(s) for d in P.tokenize_documents(docs[2:], tok) for s in d}
    assert all(tuple(e.input_ids[1:e.input_ids.index(tok.sep_token_id)]) in b_sentences for e in extra)
    assert P.parse_upsample(" botchan=4, chat=2 ") == {"botchan": 4, "chat": 2}
    for bad in ("botchan", "botchan=0", "=3", "chat=x", "chat=21"):
        with pytest.raises(ValueError, match="source=N"):
            P.PretrainArguments(upsample=bad)
