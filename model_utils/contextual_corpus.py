"""The corpus sample behind the Contextual lab's "find examples" and nearest neighbours.

* :func:`corpus_sentences` reads the bundled corpus sample (one JSON document per line,
  ``{"source", "id", "sentences"}``) through :func:`model_utils.data.read_documents`; it is read on
  first use and re-read when the file changes, so a bigger sample later just works.
* :func:`find_examples` returns the sample's sentences that contain a word (whole words).
* :class:`VectorCache` keeps the corpus's word vectors per (model, layer, corpus), bounded in bytes
  (``PLM_LAB_CACHE_MB``), least recently used first out. Nothing is computed at import.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from model_utils.config import get_settings
from model_utils.inputs import clip_cell

CORPUS_SAMPLE = Path(__file__).resolve().parent / "bundled" / "data" / "pretrain_heldout_sample.jsonl"

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A word of the corpus: a run of letters/digits, or one CJK character (CJK has no spaces between words).
_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph (no word boundaries around it)."""
    return bool(_CJK.fullmatch(char))


def word_pattern(word: str) -> re.Pattern:
    """A case-insensitive pattern of ``word`` as a whole word (a phrase's spaces match any whitespace).

    Latin-script words need a non-word character (or the text's edge) on each side, so "bank"
    does not match inside "banks" or "embankment"; a CJK edge needs none.
    """
    word = unicodedata.normalize("NFC", word.strip())
    body = r"\s+".join(re.escape(part) for part in word.split())
    left = "" if is_cjk(word[0]) else r"(?<!\w)"
    right = "" if is_cjk(word[-1]) else r"(?!\w)"
    return re.compile(left + body + right, re.IGNORECASE)


def word_spans(sentence: str) -> list[tuple[int, int]]:
    """Character spans of every word of ``sentence`` (punctuation left out)."""
    return [match.span() for match in _WORD.finditer(sentence)]


@dataclass(frozen=True)
class CorpusSentence:
    """One sentence of the corpus sample and the document it comes from."""

    sentence: str
    source: str
    id: str


_corpus_lock = threading.Lock()
_corpus_cache: dict[tuple, list[CorpusSentence]] = {}


def corpus_key(path: Path | None = None) -> tuple:
    """Identity of the corpus file's current contents: (path, size, modification time)."""
    path = Path(path or CORPUS_SAMPLE)
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


def corpus_sentences(path: Path | None = None) -> list[CorpusSentence]:
    """Every sentence of the corpus sample, in file order (each cut to ``PLM_MAX_TEXT_CHARS``)."""
    from model_utils.data import read_documents

    key = corpus_key(path)
    with _corpus_lock:
        if key not in _corpus_cache:
            _corpus_cache.clear()  # only the current version of the file is worth keeping
            _corpus_cache[key] = [CorpusSentence(clip_cell(text)[0], doc.source, doc.id)
                                  for doc in read_documents(Path(key[0])) for text in doc.sentences if text.strip()]
        return _corpus_cache[key]


def find_examples(word: str, limit: int = 20, path: Path | None = None) -> dict:
    """Sentences of the corpus sample that contain ``word`` (whole word, any case).

    Returns ``{"word", "sentences": [{"sentence", "source", "id"}], "total"}``: at most ``limit``
    sentences, the shortest first (they show the word's context most plainly), and how many
    sentences match in all.
    """
    pattern = word_pattern(word)
    found = [s for s in corpus_sentences(path) if pattern.search(s.sentence)]
    shown = sorted(found, key=lambda s: len(s.sentence))[:max(0, limit)]
    return {"word": word, "total": len(found),
            "sentences": [{"sentence": s.sentence, "source": s.source, "id": s.id} for s in shown]}


class VectorCache:
    """Unit-length corpus word vectors per (model, layer, corpus), least recently used out first.

    Stored as float16 (cosine rankings need no more) and bounded by ``PLM_LAB_CACHE_MB``; an entry
    larger than the whole budget is returned but not kept.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._build_locks: dict[tuple, threading.Lock] = {}

    def get(self, key: tuple) -> np.ndarray | None:
        """The cached vectors of ``key`` (marked most recently used), or None."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        return None

    def put(self, key: tuple, vectors: np.ndarray) -> None:
        """Keep ``vectors`` under ``key`` and drop the least recently used entries past the budget."""
        budget = get_settings().lab_cache_bytes
        with self._lock:
            self._entries[key] = vectors
            self._entries.move_to_end(key)
            while self._entries and sum(v.nbytes for v in self._entries.values()) > budget:
                self._entries.popitem(last=False)

    def build_lock(self, group: tuple) -> threading.Lock:
        """A lock per (model, corpus), so two requests never compute the same corpus twice at once."""
        with self._lock:
            return self._build_locks.setdefault(group, threading.Lock())

    def fetch(self, key: tuple, group: tuple, build: Callable[[], dict[tuple, np.ndarray]]) -> np.ndarray:
        """The vectors of ``key``, building them (and whatever else ``build`` returns) when missing."""
        found = self.get(key)
        if found is not None:
            return found
        with self.build_lock(group):
            found = self.get(key)
            if found is not None:
                return found
            built = build()
            for other, vectors in built.items():
                if other != key:
                    self.put(other, vectors)
            self.put(key, built[key])  # last, so the one asked for is the most recently used
            return built[key]

    def bytes_used(self) -> int:
        """Bytes held by the cached vectors."""
        with self._lock:
            return sum(v.nbytes for v in self._entries.values())

    def clear(self) -> None:
        """Drop every cached entry."""
        with self._lock:
            self._entries.clear()


VECTORS = VectorCache()


def unit_rows(array: Any) -> np.ndarray:
    """Rows of ``array`` scaled to unit length (zero rows stay zero), as float16."""
    data = np.asarray(array, dtype=np.float32)
    norms = np.linalg.norm(data, axis=-1, keepdims=True)
    return np.divide(data, norms, out=np.zeros_like(data), where=norms > 0).astype(np.float16)
