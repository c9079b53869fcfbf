"""Contextual representations: one word in different sentences, followed layer by layer.

BERT's point against word2vec: a word's vector depends on its sentence ("bank" of a river vs a
bank account). Public API (plain records, ``model=None`` = the "contextual" default checkpoint):

* :func:`word_vectors` ``(sentences, word, model=None)``: every whole-word occurrence of ``word``
  and its vector at every layer (0 = the embedding output, then one per transformer layer); a word
  split into several subword pieces is the mean of its pieces.
* :func:`similarity_by_layer`: the cosine-similarity matrix of the occurrences at every layer, with
  the mean similarity within and between sense labels.
* :func:`sense_probe`: a logistic-regression probe of the sense labels per layer (held-out folds).
* :func:`explore_word`: all of the above plus a 2-D PCA projection per layer (the lab tab's data).
* :func:`sentence_similarity` ``(sentences, model=None, pooling="mean")``: sentence embeddings by
  mean pooling over the last layer (as sentence-transformers does for all-MiniLM-L6-v2) or [CLS],
  and their cosine-similarity matrix.
* :func:`nearest_neighbours`: the corpus-sample words closest to one occurrence at one layer.

Each follows preprocess (:func:`check_sentences`, :func:`prepare`: the only validation) ->
:func:`_forward` (the only device code) -> postprocess (plain lists, dicts, floats, strings).
Limits come from the settings: ``PLM_LAB_MAX_SENTENCES``, ``PLM_LAB_MAX_TOKENS``,
``PLM_MAX_TEXT_CHARS``, ``PLM_LAB_CORPUS_SENTENCES`` and ``PLM_LAB_CACHE_MB``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from model_utils import contextual_analysis as analysis
from model_utils import contextual_corpus as corpus
from model_utils.config import get_settings
from model_utils.errors import Notice, UserError, define
from model_utils.inputs import FIELDS, check_text, model_token_limit
from model_utils.manager import LoadedModel, get_manager

define({
    "contextual.too_many_sentences": "{count} sentences were given; the lab takes at most {limit} at once "
                                     "(PLM_LAB_MAX_SENTENCES). Remove some.",
    "contextual.sentence_too_long": "Sentence {index} is {length} tokens long; the lab reads sentences of at most "
                                    "{limit} tokens (PLM_LAB_MAX_TOKENS). Shorten or split it.",
    "contextual.word_not_found": "“{word}” does not occur as a whole word in any of the sentences.",
    "contextual.word_missing": "“{word}” does not occur as a whole word in sentence(s) {sentences}; "
                               "they are left out.",
    "contextual.too_many_occurrences": "“{word}” occurs {count} times; only the first {limit} occurrences are "
                                       "used (PLM_LAB_MAX_SENTENCES).",
    "contextual.labels_mismatch": "{labels} sense labels were given for {count} sentences; give one per "
                                  "sentence (an empty label for none), or no labels at all.",
    "contextual.slow_tokenizer": "{name} has no fast tokenizer, so its tokens cannot be mapped back to words; "
                                 "choose another model.",
    "contextual.bad_pooling": "Pooling must be one of: {choices}.",
    "contextual.bad_layer": "There is no layer {layer}: this model has layers 0 (embeddings) to {top}.",
    "contextual.bad_occurrence": "The sentence has {count} occurrence(s) of “{word}”; choose one from 1 to {count}.",
    "contextual.bad_top_k": "The number of neighbours must be from 1 to {limit}.",
    "contextual.no_sentences": "Type at least {minimum} sentences, one per line.",
})

POOLINGS = ("mean", "cls")
BATCH_SIZE = 32  # sentences per forward pass, sorted by length so that little is spent on padding
MAX_WORD_CHARS = 100
MAX_NEIGHBOURS = 50
Progress = Callable[[int, int], None]  # (sentences done, sentences in all)


# ---------------------------------------------------------------------------- preprocess


@dataclass
class Occurrence:
    """One whole-word occurrence of the word: where it is and which tokens are pooled."""

    sentence: int  # index in the (cleaned) sentence list
    nth: int  # 0 for the word's first occurrence in its sentence, 1 for the second, ...
    start: int  # character span in the sentence
    end: int
    positions: list[int]  # token positions of its pieces
    tokens: list[str]


@dataclass
class Prepared:
    """Validated, tokenized input of one request."""

    sentences: list[str]
    labels: list[str | None] | None
    encodings: list[dict]  # per sentence: input_ids, attention_mask (, token_type_ids), offset_mapping
    occurrences: list[Occurrence] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def parse_lines(text: str) -> tuple[list[str], list[str | None] | None]:
    """One sentence per line, optionally labelled ``sense | sentence``; returns (sentences, labels).

    Blank lines are skipped; labels is None when no line has one (an empty label = unlabelled).
    """
    text = check_text(text, "sentences")
    sentences, labels = [], []
    for line in text.splitlines():
        label, bar, sentence = line.partition("|")
        if not bar:
            label, sentence = "", line
        if sentence.strip():
            sentences.append(sentence.strip())
            labels.append(label.strip() or None)
    return sentences, (labels if any(labels) else None)


def _clean_label(label: Any) -> str | None:
    if label is None:
        return None
    if not isinstance(label, (str, int)):
        raise UserError("input.not_text", what="sense label", field="A sense label", kind=type(label).__name__)
    return str(label).strip()[:MAX_WORD_CHARS] or None


def check_sentences(sentences: Sequence[str] | str, labels: Sequence[str | None] | None = None,
                    minimum: int = 1) -> tuple[list[str], list[str | None] | None]:
    """Sentences (a list, or one string with one per line) within the limits, and their labels.

    Blank sentences are dropped with their labels. UserError past ``PLM_LAB_MAX_SENTENCES``
    sentences or ``PLM_MAX_TEXT_CHARS`` characters in all, or when labels do not match.
    """
    if isinstance(sentences, str):
        sentences = sentences.splitlines()
    if not isinstance(sentences, (list, tuple)):
        raise UserError("input.not_text", what="sentences", field=FIELDS["sentences"], kind=type(sentences).__name__)
    for sentence in sentences:
        if not isinstance(sentence, str):
            raise UserError("input.not_text", what="sentences", field=FIELDS["sentences"], kind=type(sentence).__name__)
    if labels is not None and (not isinstance(labels, (list, tuple)) or len(labels) != len(sentences)):
        raise UserError("contextual.labels_mismatch", labels=len(labels) if isinstance(labels, (list, tuple)) else 0,
                        count=len(sentences))
    check_text("\n".join(sentences), "sentences")  # the character limit, before any tokenizer
    names = [_clean_label(label) for label in labels] if labels is not None else [None] * len(sentences)
    kept = [(s.strip(), name) for s, name in zip(sentences, names) if s.strip()]
    if len(kept) < minimum:
        raise UserError("contextual.no_sentences", minimum=minimum)
    limit = get_settings().lab_max_sentences
    if len(kept) > limit:
        raise UserError("contextual.too_many_sentences", count=len(kept), limit=limit)
    clean_labels = [name for _, name in kept]
    return [s for s, _ in kept], (clean_labels if any(n is not None for n in clean_labels) else None)


def check_word(word: Any) -> str:
    """The word (or short phrase) to follow, stripped; UserError if empty or longer than 100 characters."""
    return check_text(word, "word", limit=MAX_WORD_CHARS).strip()


def token_limit(loaded: LoadedModel) -> int:
    """Longest sentence in tokens: ``PLM_LAB_MAX_TOKENS``, or the model's own position limit if smaller."""
    return max(8, model_token_limit(loaded.model.config, loaded.tokenizer, get_settings().lab_max_tokens))


def encode(loaded: LoadedModel, sentences: list[str], *, truncate: bool = False) -> list[dict]:
    """Tokenize each sentence with its character offsets; UserError for one over the token limit.

    With ``truncate`` (the corpus sample) long sentences are cut to the limit instead.
    """
    tokenizer = loaded.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("contextual.slow_tokenizer", name=loaded.checkpoint)
    limit = token_limit(loaded)
    extra = {"truncation": True, "max_length": limit} if truncate else {}
    out = tokenizer(sentences, return_offsets_mapping=True, verbose=False, **extra)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids", "offset_mapping") if k in out]
    encodings = [{k: out[k][i] for k in keys} for i in range(len(sentences))]
    for index, encoding in enumerate(encodings, start=1):
        if len(encoding["input_ids"]) > limit:
            raise UserError("contextual.sentence_too_long", index=index, length=len(encoding["input_ids"]), limit=limit)
    return encodings


def piece_positions(offsets: Sequence[Sequence[int]], start: int, end: int) -> list[int]:
    """Token positions whose characters overlap ``[start, end)``; special tokens (empty spans) never do."""
    return [t for t, (a, b) in enumerate(offsets) if b > a and a < end and b > start]


def locate(sentences: list[str], encodings: list[dict], word: str, tokenizer: Any) -> list[Occurrence]:
    """Every whole-word occurrence of ``word`` that has tokens, in sentence order."""
    pattern = corpus.word_pattern(word)
    found = []
    for index, (sentence, encoding) in enumerate(zip(sentences, encodings)):
        for nth, match in enumerate(pattern.finditer(sentence)):
            positions = piece_positions(encoding["offset_mapping"], *match.span())
            if positions:
                ids = [encoding["input_ids"][p] for p in positions]
                found.append(Occurrence(index, nth, *match.span(), positions, tokenizer.convert_ids_to_tokens(ids)))
    return found


def prepare(loaded: LoadedModel, sentences: Sequence[str] | str, word: str,
            labels: Sequence[str | None] | None = None) -> Prepared:
    """Validate and tokenize; find the word's occurrences. UserError when the word occurs nowhere."""
    word = check_word(word)
    sentences, labels = check_sentences(sentences, labels)
    with loaded.lock:
        encodings = encode(loaded, sentences)
        occurrences = locate(sentences, encodings, word, loaded.tokenizer)
    if not occurrences:
        raise UserError("contextual.word_not_found", word=word)
    prepared = Prepared(sentences, labels, encodings, occurrences)
    missing = sorted(set(range(len(sentences))) - {o.sentence for o in occurrences})
    if missing:
        shown = ", ".join(str(i + 1) for i in missing[:20]) + (", …" if len(missing) > 20 else "")
        prepared.notices.append(Notice("contextual.word_missing", word=word, sentences=shown))
    limit = get_settings().lab_max_sentences
    if len(occurrences) > limit:  # a sentence may repeat the word: the matrices stay bounded
        prepared.notices.append(Notice("contextual.too_many_occurrences", word=word, count=len(occurrences),
                                       limit=limit))
        prepared.occurrences = occurrences[:limit]
    return prepared


# ---------------------------------------------------------------------------- forward


def _pooling_matrix(picks: list[list[list[int]]], width: int) -> torch.Tensor:
    """``[item, batch * width]`` weights that average each item's token positions."""
    rows = [(b, positions) for b, items in enumerate(picks) for positions in items]
    weights = torch.zeros(len(rows), len(picks) * width)
    for row, (b, positions) in enumerate(rows):
        weights[row, [b * width + p for p in positions]] = 1.0 / len(positions)
    return weights


def _forward(loaded: LoadedModel, encodings: list[dict], picks: list[list[list[int]]],
             layers: Sequence[int] | None = None, progress: Progress | None = None,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Mean hidden state over each item's token positions, at each kept layer: ``[item, layer, hidden]``.

    ``picks[i]`` lists, for sentence ``i``, the token positions of each item (a word's pieces).
    Items come out in sentence order. Batches are sorted by length and padded to their own longest
    sentence; the model's lock is held per batch, so other requests interleave.
    """
    model_keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encodings[0]]
    config = loaded.model.config
    kept = list(layers) if layers is not None else list(range(config.num_hidden_layers + 1))
    first_item = np.cumsum([0] + [len(p) for p in picks])
    out = torch.empty(int(first_item[-1]), len(kept), config.hidden_size, dtype=dtype)
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]["input_ids"]), reverse=True)
    if progress:
        progress(0, len(order))
    size = BATCH_SIZE if loaded.tokenizer.pad_token_id is not None else 1  # GPT-2-like: no padding, one at a time
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        with loaded.lock:
            items = [{k: encodings[i][k] for k in model_keys} for i in chunk]
            batch = (loaded.tokenizer.pad(items, return_tensors="pt") if len(items) > 1
                     else {k: torch.tensor([v]) for k, v in items[0].items()})
            with torch.inference_mode():
                states = loaded.model(**{k: v.to(loaded.device) for k, v in batch.items()},
                                      output_hidden_states=True).hidden_states
                stacked = torch.stack([states[layer] for layer in kept]).float()  # [layer, batch, token, hidden]
                width = stacked.shape[2]
                weights = _pooling_matrix([picks[i] for i in chunk], width).to(stacked.device)
                pooled = torch.einsum("ik,lkh->ilh", weights, stacked.reshape(len(kept), -1, stacked.shape[-1]))
        pooled = pooled.cpu().to(dtype)
        row = 0
        for i in chunk:
            count = len(picks[i])
            out[first_item[i]:first_item[i] + count] = pooled[row:row + count]
            row += count
        if progress:
            progress(min(start + size, len(order)), len(order))
    return out


def _load(model: str | None) -> LoadedModel:
    return get_manager().get(model, "base", task="contextual")


def _occurrence_vectors(loaded: LoadedModel, prepared: Prepared, progress: Progress | None) -> np.ndarray:
    picks: list[list[list[int]]] = [[] for _ in prepared.sentences]
    for occurrence in prepared.occurrences:
        picks[occurrence.sentence].append(occurrence.positions)
    return _forward(loaded, prepared.encodings, picks, progress=progress).numpy()


# ---------------------------------------------------------------------------- postprocess


def occurrence_record(prepared: Prepared, index: int) -> dict:
    """Plain description of occurrence ``index``: sentence, span, pieces and sense label."""
    o = prepared.occurrences[index]
    return {"index": index, "sentence": o.sentence, "nth": o.nth, "start": o.start, "end": o.end,
            "text": prepared.sentences[o.sentence][o.start:o.end], "tokens": o.tokens,
            "label": prepared.labels[o.sentence] if prepared.labels else None}


def _labels_of(prepared: Prepared) -> list[str | None] | None:
    return [prepared.labels[o.sentence] for o in prepared.occurrences] if prepared.labels else None


def _sentence_groups(prepared: Prepared) -> list[str]:
    """Each occurrence's sentence, case and spacing ignored: the probe keeps a sentence (and its repeats)
    on one side of every split, or it would be tested on what it was trained on."""
    return [" ".join(prepared.sentences[o.sentence].lower().split()) for o in prepared.occurrences]


def _run(sentences: Sequence[str] | str, word: str, model: str | None, labels: Sequence[str | None] | None,
         progress: Progress | None = None) -> tuple[LoadedModel, Prepared, np.ndarray]:
    loaded = _load(model)
    prepared = prepare(loaded, sentences, word, labels)
    return loaded, prepared, _occurrence_vectors(loaded, prepared, progress)


def _header(loaded: LoadedModel, prepared: Prepared, word: str, vectors: np.ndarray) -> dict:
    return {"model": loaded.checkpoint, "word": word.strip(), "num_layers": int(vectors.shape[1]),
            "hidden_size": int(vectors.shape[2]), "sentences": prepared.sentences,
            "occurrences": [occurrence_record(prepared, i) for i in range(len(prepared.occurrences))],
            "notices": list(prepared.notices)}


def word_vectors(sentences: Sequence[str] | str, word: str, model: str | None = None) -> dict:
    """The vector of every whole-word occurrence of ``word`` at every layer.

    Returns ``{"model", "word", "num_layers", "hidden_size", "sentences", "occurrences": [{"index",
    "sentence", "nth", "start", "end", "text", "tokens", "label", "vectors": [[float] * hidden] *
    num_layers}], "notices"}``; layer 0 is the embedding output, layer ``l`` the output of
    transformer layer ``l`` (``output_hidden_states``); a word of several pieces is their mean.
    """
    loaded, prepared, vectors = _run(sentences, word, model, None)
    result = _header(loaded, prepared, word, vectors)
    for record, vector in zip(result["occurrences"], vectors):
        record["vectors"] = vector.tolist()
    return result


def similarity_by_layer(sentences: Sequence[str] | str, word: str, model: str | None = None,
                        labels: Sequence[str | None] | None = None) -> dict:
    """Cosine similarity of every pair of occurrences of ``word``, layer by layer.

    Returns the header of :func:`word_vectors` (without vectors) and ``"layers": [{"layer",
    "matrix": [[float]], "all", "within", "between"}]``: ``within``/``between`` are the mean
    similarity of pairs with the same / different sense labels (None without labels).
    """
    loaded, prepared, vectors = _run(sentences, word, model, labels)
    matrices = analysis.cosine_matrices(vectors)
    stats = analysis.sense_similarity(matrices, _labels_of(prepared))
    return {**_header(loaded, prepared, word, vectors),
            "layers": [{**s, "matrix": m.tolist()} for s, m in zip(stats, matrices)]}


def sense_probe(sentences: Sequence[str] | str, word: str, labels: Sequence[str | None],
                model: str | None = None, folds: int = analysis.MAX_FOLDS, seed: int = 0) -> dict:
    """Held-out accuracy of a logistic-regression probe of the sense labels at every layer.

    Returns the header of :func:`word_vectors` and ``"probe"`` (see
    :func:`model_utils.contextual_analysis.probe_by_layer`; occurrences of one sentence, or of repeated
    sentences, stay in one fold). UserError without two senses of at least two different sentences each.
    """
    loaded, prepared, vectors = _run(sentences, word, model, labels)
    probe = analysis.probe_by_layer(vectors, _labels_of(prepared) or [None] * len(vectors),
                                    groups=_sentence_groups(prepared), folds=folds, seed=seed)
    return {**_header(loaded, prepared, word, vectors), "probe": probe}


def explore_word(sentences: Sequence[str] | str, word: str, model: str | None = None,
                 labels: Sequence[str | None] | None = None, progress: Progress | None = None) -> dict:
    """Everything the lab tab shows, from one forward pass.

    The header of :func:`word_vectors` and ``"layers": [{"layer", "matrix", "all", "within",
    "between", "points": [[x, y]], "explained"}]`` (similarities rounded to 5 decimals; PCA per
    layer), ``"probe"`` (None without usable labels) and ``"probe_note"`` (why there is no probe).
    """
    loaded, prepared, vectors = _run(sentences, word, model, labels, progress)
    occurrence_labels = _labels_of(prepared)
    matrices = analysis.cosine_matrices(vectors)
    stats = analysis.sense_similarity(matrices, occurrence_labels)
    layers = [{**stat, "matrix": np.round(matrix, 5).tolist(), **analysis.project_2d(vectors[:, layer])}
              for layer, (stat, matrix) in enumerate(zip(stats, matrices))]
    probe, note = None, None
    if occurrence_labels:
        try:
            probe = analysis.probe_by_layer(vectors, occurrence_labels, groups=_sentence_groups(prepared))
        except UserError as err:  # labels that cannot be probed still give the similarity views
            note = Notice(err.code, **err.params)
    return {**_header(loaded, prepared, word, vectors), "layers": layers, "probe": probe, "probe_note": note}


# ---------------------------------------------------------------------------- sentences


def sentence_similarity(sentences: Sequence[str] | str, model: str | None = None, pooling: str = "mean",
                        progress: Progress | None = None) -> dict:
    """Cosine similarity of sentence embeddings taken from the last layer.

    ``pooling="mean"``: the mean of every token's vector under the attention mask, [CLS] and [SEP]
    included (sentence-transformers' mean pooling, used by all-MiniLM-L6-v2); ``"cls"``: the
    [CLS] vector. Returns ``{"model", "pooling", "sentences", "matrix"}``.
    """
    if pooling not in POOLINGS:
        raise UserError("contextual.bad_pooling", choices=", ".join(POOLINGS))
    sentences, _ = check_sentences(sentences, minimum=2)
    loaded = _load(model)
    with loaded.lock:
        encodings = encode(loaded, sentences)
    picks = [[[0]] if pooling == "cls" else [list(range(len(e["input_ids"])))] for e in encodings]
    last = loaded.model.config.num_hidden_layers
    embeddings = _forward(loaded, encodings, picks, layers=[last], progress=progress).numpy()
    matrix = analysis.cosine_matrices(embeddings)[0]
    return {"model": loaded.checkpoint, "pooling": pooling, "sentences": sentences, "matrix": matrix.tolist()}


# ---------------------------------------------------------------------------- nearest neighbours


def _check_layer(layer: Any, top: int) -> int:
    if layer is None:
        return top
    if isinstance(layer, bool) or not isinstance(layer, (int, float)) or int(layer) != layer or not 0 <= layer <= top:
        raise UserError("contextual.bad_layer", layer=layer, top=top)
    return int(layer)


def _corpus_words(loaded: LoadedModel) -> tuple[list[corpus.CorpusSentence], list[dict], list[list[list[int]]], list[tuple]]:
    """The corpus sentences searched, their encodings, each word's token positions and (sentence, start, end)."""
    sentences = corpus.corpus_sentences()[:get_settings().lab_corpus_sentences]
    with loaded.lock:
        encodings = encode(loaded, [s.sentence for s in sentences], truncate=True)
    picks, words = [], []
    for index, (item, encoding) in enumerate(zip(sentences, encodings)):
        spans = [(span, piece_positions(encoding["offset_mapping"], *span)) for span in corpus.word_spans(item.sentence)]
        spans = [(span, positions) for span, positions in spans if positions]  # cut off by truncation: left out
        picks.append([positions for _, positions in spans])
        words.extend((index, *span) for span, _ in spans)
    return sentences, encodings, picks, words


def _corpus_vectors(loaded: LoadedModel, layer: int, progress: Progress | None) -> tuple[np.ndarray, list, list]:
    """Unit-length vectors of every corpus word at ``layer`` (cached with neighbouring layers that fit)."""
    sentences, encodings, picks, words = _corpus_words(loaded)
    group = (loaded.checkpoint, id(loaded.model), corpus.corpus_key(), len(sentences), token_limit(loaded))
    top = loaded.model.config.num_hidden_layers

    def build() -> dict[tuple, np.ndarray]:
        per_layer = max(1, len(words) * loaded.model.config.hidden_size * 2)
        room = max(1, get_settings().lab_cache_bytes // per_layer)
        layers = sorted(range(top + 1), key=lambda other: (abs(other - layer), other))[:room]
        pooled = _forward(loaded, encodings, picks, layers=layers, progress=progress, dtype=torch.float16)
        return {(*group, other): corpus.unit_rows(pooled[:, k].numpy()) for k, other in enumerate(layers)}

    return corpus.VECTORS.fetch((*group, layer), group, build), sentences, words


def nearest_neighbours(sentence: str, word: str, model: str | None = None, *, layer: int | None = None,
                       occurrence: int = 0, top_k: int = 10, progress: Progress | None = None) -> dict:
    """The words of the corpus sample whose vectors at ``layer`` are closest to one occurrence of ``word``.

    ``occurrence`` picks the word's occurrence in ``sentence`` (0 = the first); ``layer=None`` is the
    last layer. Returns ``{"model", "word", "layer", "query": {"sentence", "start", "end", "text"},
    "neighbours": [{"word", "sentence", "start", "end", "similarity", "source", "id"}],
    "searched_words", "searched_sentences"}``; the occurrence itself is never its own neighbour.
    The corpus vectors are computed once per (model, layer) and cached (``PLM_LAB_CACHE_MB``).
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_NEIGHBOURS:
        raise UserError("contextual.bad_top_k", limit=MAX_NEIGHBOURS)
    sentence = check_text(sentence, "text")
    loaded = _load(model)
    layer = _check_layer(layer, loaded.model.config.num_hidden_layers)
    prepared = prepare(loaded, [sentence], word)
    chosen = next((o for o in prepared.occurrences if o.nth == occurrence and not isinstance(occurrence, bool)), None)
    if chosen is None:
        raise UserError("contextual.bad_occurrence", count=len(prepared.occurrences), word=word.strip())
    query = _forward(loaded, prepared.encodings, [[chosen.positions]], layers=[layer])[0, 0].numpy()
    vectors, sentences, words = _corpus_vectors(loaded, layer, progress)
    scores = vectors.astype(np.float32) @ corpus.unit_rows(query).astype(np.float32)
    text = prepared.sentences[0]
    neighbours = []
    for k in np.argsort(-scores, kind="stable"):
        index, start, end = words[k]
        item = sentences[index]
        if item.sentence == text and (start, end) == (chosen.start, chosen.end):
            continue  # the query itself, when it comes from the corpus
        neighbours.append({"word": item.sentence[start:end], "sentence": item.sentence, "start": start, "end": end,
                           "similarity": float(scores[k]), "source": item.source, "id": item.id})
        if len(neighbours) == top_k:
            break
    return {"model": loaded.checkpoint, "word": word.strip(), "layer": layer,
            "query": {"sentence": text, "start": chosen.start, "end": chosen.end, "text": text[chosen.start:chosen.end]},
            "neighbours": neighbours, "searched_words": len(words), "searched_sentences": len(sentences)}


def find_examples(word: str, limit: int = 20) -> dict:
    """Sentences of the bundled corpus sample containing ``word``; see :func:`contextual_corpus.find_examples`."""
    limit = max(1, min(int(limit), get_settings().lab_max_sentences))
    return corpus.find_examples(check_word(word), limit)
