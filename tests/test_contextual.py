"""The Contextual lab's model layer: word vectors against a direct forward pass, similarities against
their cosine, the probe against leakage, subword pooling, limits, the corpus sample and its neighbours.

Three tiers: pure functions (no model), the tiny local BERT of conftest, and the bundled MiniLM
(real senses, the sentence-transformers reference).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require_bundled
from model_utils import contextual, contextual_analysis, contextual_corpus
from model_utils.errors import UserError

EXAMPLES = Path(__file__).resolve().parent.parent / "demo" / "examples" / "word_senses.csv"
TINY_SENTENCES = ["the cat sat on the bank .", "my bank was very good .", "the dog ate the cat", "bank bank ."]


def senses(word: str) -> tuple[list[str], list[str]]:
    with EXAMPLES.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["word"] == word]
    return [r["sentence"] for r in rows], [r["sense"] for r in rows]


def reference_states(folder: Path, sentence: str, word: str) -> list[np.ndarray]:
    """Per occurrence of ``word``'s pieces (found by token ids, not offsets): mean hidden state per layer."""
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder).eval()
    encoding = tokenizer(sentence, return_tensors="pt")
    with torch.inference_mode():
        states = torch.stack(model(**encoding, output_hidden_states=True).hidden_states)[:, 0]
    ids = encoding["input_ids"][0].tolist()
    pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
    starts = [i for i in range(len(ids)) if ids[i:i + len(pieces)] == pieces]
    return [states[:, s:s + len(pieces)].mean(1).numpy() for s in starts]


# ---------------------------------------------------------------------------- pure logic


@pytest.mark.parametrize("text, word, expected", [
    ("The bank's banks by the embankment; BANK!", "bank", ["bank", "BANK"]),
    ("a New  York minute in new york", "new york", ["New  York", "new york"]),
    ("我去银行取钱，银行关门了", "银行", ["银行", "银行"]),
    ("re-bank bank2 bank_ bank", "bank", ["bank", "bank"]),
])
def test_whole_word_matching(text: str, word: str, expected: list[str]) -> None:
    assert [m.group(0) for m in contextual_corpus.word_pattern(word).finditer(text)] == expected


def test_parse_lines_reads_optional_sense_labels() -> None:
    assert contextual.parse_lines("river | On the bank.\n\n  The bank closed.  \n | x") == (
        ["On the bank.", "The bank closed.", "x"], ["river", None, None])
    assert contextual.parse_lines("one\ntwo") == (["one", "two"], None)


def test_cosine_matrices_and_sense_means_by_hand() -> None:
    vectors = np.array([[[1, 0], [1, 1]], [[2, 0], [0, 1]], [[0, 3], [0, -1]]], dtype=float)  # [occ, layer, dim]
    matrices = contextual_analysis.cosine_matrices(vectors)
    assert matrices.shape == (2, 3, 3)
    assert matrices[0].tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert matrices[1][0, 1] == pytest.approx(1 / np.sqrt(2)) and matrices[1][1, 2] == pytest.approx(-1)
    stats = contextual_analysis.sense_similarity(matrices, ["a", "a", "b"])
    assert stats[0] == {"layer": 0, "all": pytest.approx(1 / 3), "within": 1.0, "between": 0.0}
    unlabelled = contextual_analysis.sense_similarity(matrices, None)
    assert unlabelled[1]["within"] is None and unlabelled[1]["all"] == pytest.approx(
        (1 / np.sqrt(2) - 1 / np.sqrt(2) - 1) / 3)


def test_probe_scores_held_out_folds_only() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 3, 200))
    labels = ["a", "b"] * 30
    rng.shuffle(labels)
    vectors[[i for i, label in enumerate(labels) if label == "a"], 2, :3] += 4.0  # only layer 2 knows the sense
    probe = contextual_analysis.probe_by_layer(vectors, labels)
    assert probe["chance"] == 0.5 and probe["folds"] == 5 and probe["count"] == 60
    noise = [probe["layers"][layer] for layer in (0, 1)]
    # 200 dimensions for 48 training occurrences: a probe scored on what it was fitted on is always right...
    assert all(r["train_accuracy"] == 1.0 for r in noise)
    # ...and on held-out folds at chance level: nothing leaks from the test folds.
    assert all(0.25 <= r["accuracy"] <= 0.75 for r in noise)
    assert probe["layers"][2]["accuracy"] >= 0.9


def test_probe_keeps_a_repeated_sentence_in_one_fold() -> None:
    rng = np.random.default_rng(2)
    distinct = rng.normal(size=(30, 2, 100))
    vectors = np.concatenate([distinct, distinct])  # every sentence given twice
    labels = list(rng.permutation(["a", "b"] * 15)) * 2  # at random, the same for both copies
    groups = list(range(30)) * 2
    leaky = contextual_analysis.probe_by_layer(vectors, labels)  # copies on both sides of a split
    grouped = contextual_analysis.probe_by_layer(vectors, labels, groups=groups)
    assert min(r["accuracy"] for r in leaky["layers"]) >= 0.9  # it recognises the copies it was trained on
    assert all(0.2 <= r["accuracy"] <= 0.8 for r in grouped["layers"])
    assert grouped["senses"] == {"a": 15, "b": 15} and grouped["count"] == 60


def test_probe_needs_two_senses_with_two_examples_each() -> None:
    vectors = np.zeros((4, 1, 3))
    with pytest.raises(UserError, match="at least two different senses"):
        contextual_analysis.probe_by_layer(vectors, ["a", "a", None, "a"])
    with pytest.raises(UserError, match="b has 1"):
        contextual_analysis.probe_by_layer(vectors, ["a", "a", "b", None])
    with pytest.raises(UserError, match="2 different labelled sentences for every sense; a has 1"):
        contextual_analysis.probe_by_layer(vectors, ["a", "a", "b", "b"], groups=["s", "s", "t", "u"])


def test_projection_handles_few_and_identical_points() -> None:
    assert contextual_analysis.project_2d(np.ones((3, 5)))["points"] == [[0, 0]] * 3
    two = contextual_analysis.project_2d(np.array([[0.0, 0], [2, 0]]))
    assert two["points"][0][1] == 0 and abs(two["points"][0][0]) == pytest.approx(1) and two["explained"][0] == pytest.approx(1)


# ---------------------------------------------------------------------------- tiny model


def test_vectors_equal_output_hidden_states_of_a_direct_forward(tiny_env: Path) -> None:
    result = contextual.word_vectors(TINY_SENTENCES, "bank", "local:tiny-bert")
    assert result["num_layers"] == 3 and result["hidden_size"] == 32
    assert [(o["sentence"], o["nth"]) for o in result["occurrences"]] == [(0, 0), (1, 0), (3, 0), (3, 1)]
    assert result["notices"] == ["“bank” does not occur as a whole word in sentence(s) 3; they are left out."]
    by_sentence: dict[int, list] = {}
    for occurrence in result["occurrences"]:
        by_sentence.setdefault(occurrence["sentence"], []).append(occurrence)
    for index, occurrences in by_sentence.items():
        expected = reference_states(tiny_env / "tiny-bert", TINY_SENTENCES[index], "bank")
        assert len(expected) == len(occurrences)
        for occurrence, reference in zip(occurrences, expected):
            # "bank" is not in the tiny vocabulary: four pieces b ##a ##n ##k, pooled by their mean
            assert occurrence["tokens"] == ["b", "##a", "##n", "##k"]
            np.testing.assert_allclose(np.array(occurrence["vectors"]), reference, atol=1e-5)


def test_similarity_values_are_the_cosine_of_the_vectors(tiny_env: Path) -> None:
    vectors = np.array([o["vectors"] for o in contextual.word_vectors(TINY_SENTENCES, "bank")["occurrences"]])
    result = contextual.similarity_by_layer(TINY_SENTENCES, "bank", labels=["x", "y", None, "x"])
    explored = contextual.explore_word(TINY_SENTENCES, "bank", labels=["x", "y", None, "x"])
    for layer, record in enumerate(result["layers"]):
        a = vectors[:, layer]
        expected = a @ a.T / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(a, axis=1))
        np.testing.assert_allclose(record["matrix"], expected, atol=1e-6)
        np.testing.assert_allclose(explored["layers"][layer]["matrix"], expected, atol=1e-5)
        within = [expected[0, 2], expected[0, 3], expected[2, 3]]  # occurrences 0, 2, 3 are "x"
        assert record["within"] == pytest.approx(np.mean(within))
        assert record["between"] == pytest.approx(np.mean([expected[0, 1], expected[1, 2], expected[1, 3]]))
    assert [o["label"] for o in result["occurrences"]] == ["x", "y", "x", "x"]
    assert explored["probe"] is None and "y has 1" in explored["probe_note"]


def test_limits_come_from_settings(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_LAB_MAX_SENTENCES", "3")
    with pytest.raises(UserError, match="4 sentences were given; the lab takes at most 3") as caught:
        contextual.word_vectors(TINY_SENTENCES, "bank")
    assert caught.value.code == "contextual.too_many_sentences"
    monkeypatch.setenv("PLM_LAB_MAX_SENTENCES", "200")
    monkeypatch.setenv("PLM_LAB_MAX_TOKENS", "10")
    with pytest.raises(UserError, match=r"Sentence 2 is 14 tokens long; .* at most 10 tokens"):
        contextual.word_vectors(["the bank", "the cat sat on the bank at night ."], "bank")
    monkeypatch.delenv("PLM_LAB_MAX_TOKENS")
    monkeypatch.setenv("PLM_MAX_TEXT_CHARS", "100")
    with pytest.raises(UserError, match="The list of sentences is 107 characters"):
        contextual.word_vectors(["the bank"] * 12, "bank")
    monkeypatch.delenv("PLM_MAX_TEXT_CHARS")
    with pytest.raises(UserError, match="does not occur as a whole word in any"):
        contextual.word_vectors(["the banks", "embankment"], "bank")
    with pytest.raises(UserError, match="2 sense labels were given for 3 sentences"):
        contextual.similarity_by_layer(["bank", "bank", "bank"], "bank", labels=["a", "b"])
    with pytest.raises(UserError, match="Type at least 2 sentences"):
        contextual.sentence_similarity(["only one"])


def test_sentence_similarity_mean_pools_the_last_layer(tiny_env: Path) -> None:
    from transformers import AutoTokenizer, BertModel

    folder = tiny_env / "tiny-bert"
    tokenizer, model = AutoTokenizer.from_pretrained(folder), BertModel.from_pretrained(folder).eval()
    sentences = ["the cat sat on the mat .", "a dog ate my dinner", "rain"]
    for pooling in ("mean", "cls"):
        with torch.inference_mode():
            states = [model(**tokenizer(s, return_tensors="pt")).last_hidden_state[0] for s in sentences]
        pooled = torch.stack([s.mean(0) if pooling == "mean" else s[0] for s in states])
        expected = torch.nn.functional.cosine_similarity(pooled[:, None], pooled[None], dim=-1).numpy()
        result = contextual.sentence_similarity(sentences, "local:tiny-bert", pooling)
        np.testing.assert_allclose(result["matrix"], expected, atol=1e-5)
    with pytest.raises(UserError, match="Pooling must be one of: mean, cls"):
        contextual.sentence_similarity(sentences, pooling="max")


@pytest.fixture
def tiny_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sample.jsonl"
    docs = [{"source": "test", "id": "d1", "sentences": ["the cat sat on the mat .", "my bank was good ."]},
            {"source": "test", "id": "d2", "sentences": ["the dog ate the bank", "banks and embankment"]}]
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    monkeypatch.setattr(contextual_corpus, "CORPUS_SAMPLE", path)
    monkeypatch.setattr(contextual_corpus, "VECTORS", contextual_corpus.VectorCache())
    return path


def test_find_examples_reads_the_file_again_when_it_grows(tiny_corpus: Path) -> None:
    found = contextual.find_examples("Bank")
    assert found["total"] == 2 and [s["sentence"] for s in found["sentences"]] == [
        "my bank was good .", "the dog ate the bank"]  # shortest first, whole words only
    with tiny_corpus.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"source": "more", "id": "d3", "sentences": ["a bank"]}) + "\n")
    assert contextual.find_examples("bank")["sentences"][0] == {"sentence": "a bank", "source": "more", "id": "d3"}


def test_nearest_neighbours_rank_every_corpus_word_by_cosine(tiny_env: Path, tiny_corpus: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    query = "my bank was good ."  # also a corpus sentence: that occurrence must not be its own neighbour
    result = contextual.nearest_neighbours(query, "bank", layer=1, top_k=50)
    words = [(s, w.group(0)) for s in contextual_corpus.corpus_sentences()
             for w in contextual_corpus._WORD.finditer(s.sentence)]
    assert result["searched_words"] == len(words) == 18 and result["searched_sentences"] == 4
    reference = {}
    for sentence in {s.sentence for s, _ in words}:
        for word in {w for s, w in words if s.sentence == sentence}:
            found = contextual.word_vectors([sentence], word)["occurrences"]
            reference.update({(sentence, o["start"]): np.array(o["vectors"][1]) for o in found})
    q = reference.pop((query, 3))
    expected = {key: float(v @ q / np.linalg.norm(v) / np.linalg.norm(q)) for key, v in reference.items()}
    assert len(result["neighbours"]) == 17 and result["query"]["text"] == "bank"
    got = {(n["sentence"], n["start"]): n["similarity"] for n in result["neighbours"]}
    assert got.keys() == expected.keys()  # every other word, the query itself left out
    for key, similarity in got.items():  # float16 storage: within 2e-3
        assert similarity == pytest.approx(expected[key], abs=2e-3)
    ranked = [n["similarity"] for n in result["neighbours"]]
    assert ranked == sorted(ranked, reverse=True)

    calls = []
    original = contextual._forward
    monkeypatch.setattr(contextual, "_forward", lambda *a, **k: calls.append(len(a[1])) or original(*a, **k))
    contextual.nearest_neighbours("the bank", "bank", layer=2, top_k=3)
    assert calls == [1]  # the query only: every layer of the corpus was cached by the first search


def test_corpus_cache_stays_within_its_budget(tiny_env: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_LAB_CACHE_MB", "0")  # nothing may be kept: each search recomputes, none fails
    for layer in (0, 2):
        assert contextual.nearest_neighbours("the bank", "bank", layer=layer, top_k=2)["neighbours"]
    assert contextual_corpus.VECTORS.bytes_used() == 0
    monkeypatch.setenv("PLM_LAB_CACHE_MB", "1")
    contextual.nearest_neighbours("the bank", "bank", layer=0, top_k=2)
    assert 0 < contextual_corpus.VECTORS.bytes_used() <= 2**20
    with pytest.raises(UserError, match="There is no layer 3: this model has layers 0 .* to 2"):
        contextual.nearest_neighbours("the bank", "bank", layer=3)
    with pytest.raises(UserError, match="1 occurrence"):
        contextual.nearest_neighbours("the bank", "bank", occurrence=1)


# ---------------------------------------------------------------------------- bundled MiniLM


@pytest.fixture(scope="module")
def bundled() -> str:
    require_bundled()
    return "bundled:minilm-pretrained"


@pytest.mark.slow
def test_subword_pieces_are_pooled_on_the_bundled_model(bundled: str) -> None:
    from model_utils.manager import get_manager

    sentence = "Photosynthesis feeds the plant; photosynthesis needs light."
    result = contextual.word_vectors([sentence], "photosynthesis", bundled)
    loaded = get_manager().get(bundled, "base", task="contextual")
    encoding = loaded.tokenizer(sentence, return_tensors="pt")
    with torch.inference_mode():
        states = torch.stack(loaded.model(**encoding, output_hidden_states=True).hidden_states)[:, 0]
    tokens = loaded.tokenizer.convert_ids_to_tokens(encoding["input_ids"][0])
    assert tokens[1:4] == ["photos", "##yn", "##thesis"] and tokens[8:11] == ["photos", "##yn", "##thesis"]
    for occurrence, start in zip(result["occurrences"], (1, 8)):
        assert occurrence["tokens"] == ["photos", "##yn", "##thesis"]
        np.testing.assert_allclose(occurrence["vectors"], states[:, start:start + 3].mean(1).numpy(), atol=1e-5)


@pytest.mark.slow
def test_senses_separate_with_depth_and_random_labels_stay_at_chance(bundled: str) -> None:
    sentences, labels = senses("bank")
    result = contextual.explore_word(sentences, "bank", bundled, labels)
    layers, probe = result["layers"], result["probe"]
    # static -> contextual: one token is nearly one vector at the embedding output, then senses part
    assert layers[0]["all"] > 0.95 and abs(layers[0]["within"] - layers[0]["between"]) < 0.02
    assert all(r["within"] - r["between"] > 0.03 for r in layers[1:])
    assert probe["chance"] == 0.5 and max(r["accuracy"] for r in probe["layers"][1:]) >= 0.9
    # Vectors of every built-in word (96 occurrences) with senses drawn at random: nothing to find, and a probe
    # scored on held-out folds says so, while the same probe scored on its training folds is perfect.
    vectors = np.concatenate([
        np.array([o["vectors"] for o in contextual.word_vectors(senses(word)[0], word, bundled)["occurrences"]])
        for word in ("bank", "bat", "spring", "light", "bark", "mouse", "match", "crane")])
    random_labels = list(np.random.default_rng(1).permutation(["a", "b"] * (len(vectors) // 2)))
    random_probe = contextual_analysis.probe_by_layer(vectors, random_labels, seed=1)
    assert random_probe["count"] == 96 and random_probe["chance"] == 0.5
    assert all(0.3 <= r["accuracy"] <= 0.7 for r in random_probe["layers"])
    assert np.mean([r["accuracy"] for r in random_probe["layers"]]) == pytest.approx(0.5, abs=0.1)
    assert all(r["train_accuracy"] == 1.0 for r in random_probe["layers"][1:])


@pytest.mark.slow
def test_sentence_similarity_matches_sentence_transformers(bundled: str) -> None:
    st = pytest.importorskip("sentence_transformers")
    from model_utils.manager import get_manager
    from model_utils.adapters import minilm_dir

    sentences = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell sharply.",
                 "Interest rates went up at the bank."]
    reference = st.SentenceTransformer(str(minilm_dir()), device="cpu")  # Transformer -> mean Pooling -> Normalize
    reference[0].model = get_manager().get(bundled, "base", task="contextual").model  # the bundled encoder inside
    embeddings = reference.encode(sentences, convert_to_tensor=True)
    expected = st.util.cos_sim(embeddings, embeddings).numpy()
    np.testing.assert_allclose(contextual.sentence_similarity(sentences, bundled)["matrix"], expected, atol=1e-5)
