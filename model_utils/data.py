"""Offline corpora for the bundled models, built from packages only.

Sources (both redistributable, see README "Data sources and licences"):

* the human-rated sentiment snippets of Hutto & Gilbert (ICWSM 2014), shipped inside the source
  distribution of ``vaderSentiment`` on PyPI (``additional_resources/hutto_ICWSM_2014.tar.gz``, MIT):
  product reviews and NYT editorials carry ``document_sentence`` ids, so consecutive sentences of
  one document are true next-sentence pairs; movie-review snippets and tweets are single sentences;
* WordNet 3.0 glosses and example sentences (Debian ``wordnet-base``, WordNet 3.0 licence): one
  synset is a small document (its gloss, then its examples);
* the fortune cookies of Debian ``fortunes`` and ``fortunes-min`` (BSD licence): quotations,
  anecdotes and jokes, one fortune = one document, split into sentences (attribution lines,
  ASCII art, code and chat logs are dropped);
* everyday narrative: the Project Gutenberg text of *Botchan* (Natsume Soseki, English translation of
  1919, public domain in the USA) that the ``sentencepiece`` source distribution on PyPI ships as
  ``test/botchan.txt``; runs of consecutive sentences are documents;
* everyday dialogue: the English conversations of ``chatterbot-corpus`` on PyPI (BSD 3-clause), one
  conversation = one document, one turn = one sentence (the coding and tech-support files are left out).

``python -m model_utils.data prepare --out data`` writes ``pretrain_train.jsonl`` and
``pretrain_eval.jsonl`` (one document per line: ``{"source", "id", "sentences"}``) and the binary
movie-review sentiment set ``sentiment_movie_reviews.csv`` (``text,label,split``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

VADER_SDIST = "vaderSentiment==3.3.2"
SENTENCEPIECE_SDIST = "sentencepiece==0.2.0"
BOTCHAN_MEMBER = "test/botchan.txt"
CHATTERBOT_WHEEL = "chatterbot-corpus==1.3.3"
# Programming and help-desk transcripts are not everyday English; the rest are small talk and trivia.
CHATTERBOT_SKIP = frozenset({"coding", "tech_support", "computers", "botprofile"})
# Sentences per document cut from a book (each run is split and held out as a unit).
BOOK_CHUNK = 8
HUTTO_MEMBER = "additional_resources/hutto_ICWSM_2014.tar.gz"
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_POS = ("noun", "verb", "adj", "adv")
FORTUNE_DIR = Path("/usr/share/games/fortunes")
# Files that are not English prose (pictures, code, untranslated text) or mostly one-liner slogans.
FORTUNE_SKIP = frozenset({"ascii-art", "translate-me", "perl", "zippy", "linuxcookie"})

# Movie snippets have a mean human rating in [-4, 4]; the near-neutral band is dropped.
NEUTRAL_BAND = 0.5
# Held-out share, by a stable hash of the document id (so splits never depend on file order).
EVAL_PERCENT = 5
SENTIMENT_TEST_PERCENT = 10


@dataclass(frozen=True)
class Document:
    """A run of consecutive sentences from one source document."""

    source: str
    id: str
    sentences: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"source": self.source, "id": self.id, "sentences": list(self.sentences)},
                          ensure_ascii=False)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file (blank lines skipped)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def stable_bucket(key: str, buckets: int = 100) -> int:
    """A platform-independent hash bucket of ``key`` in ``[0, buckets)``."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % buckets


def clean_text(text: str) -> str:
    """Normalise whitespace and the doubled quotes of the snippet files."""
    text = text.replace("''", '"').replace("&amp;", "&")
    return re.sub(r"\s+", " ", text).strip()


def download_package(spec: str, cache_dir: Path, pattern: str, source: bool = True) -> Path:
    """Fetch ``spec`` with pip (source distribution, or the wheel when ``source`` is false) into ``cache_dir``
    once; returns the newest file there matching ``pattern``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(cache_dir.glob(pattern))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache_dir),
                        *(["--no-binary", ":all:"] if source else ["--only-binary", ":all:"]), spec], check=True)
        found = sorted(cache_dir.glob(pattern))
    return found[-1]


def download_vader_sdist(cache_dir: Path) -> Path:
    """Fetch the vaderSentiment source distribution with pip (from the package index) into ``cache_dir``."""
    return download_package(VADER_SDIST, cache_dir, "vaderSentiment-*.tar.gz")


def read_hutto_files(sdist: Path) -> dict[str, str]:
    """Return ``{file name: text}`` of the ``*_GroundTruth.txt`` files inside the vader sdist."""
    with tarfile.open(sdist) as outer:
        member = next(m for m in outer.getmembers() if m.name.endswith(HUTTO_MEMBER))
        inner_bytes = outer.extractfile(member).read()
    files = {}
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for m in inner.getmembers():
            if m.isfile() and m.name.endswith("_GroundTruth.txt"):
                files[Path(m.name).name] = inner.extractfile(m).read().decode("utf-8", "replace")
    return files


def parse_ground_truth(text: str) -> Iterator[tuple[str, float, str]]:
    """Yield ``(id, mean rating, sentence)`` rows of a Hutto ``*_GroundTruth.txt`` file."""
    for line in text.splitlines():
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) < 3 or not parts[2].strip():
            continue
        try:
            rating = float(parts[1])
        except ValueError:
            continue
        yield parts[0].strip(), rating, clean_text("\t".join(parts[2:]))


def group_documents(source: str, rows: Iterable[tuple[str, float, str]]) -> list[Document]:
    """Group ``doc_sentence`` ids into documents in sentence order; plain ids become one-sentence docs."""
    docs: dict[str, list[tuple[int, str]]] = {}
    for row_id, _, sentence in rows:
        doc_id, _, sent_no = row_id.partition("_")
        order = int(sent_no) if sent_no.isdigit() else 0
        docs.setdefault(doc_id, []).append((order, sentence))
    return [Document(source, f"{source}:{doc_id}", tuple(s for _, s in sorted(items)))
            for doc_id, items in docs.items()]


def parse_wordnet_line(line: str) -> tuple[str, str, list[str]] | None:
    """Parse one ``data.<pos>`` line into ``(lemma, gloss, examples)``; None for licence lines."""
    if line.startswith(" ") or "|" not in line:
        return None
    head, _, gloss_part = line.partition("|")
    fields = head.split()
    lemma = fields[4].replace("_", " ")
    examples = [clean_text(e) for e in re.findall(r'"([^"]+)"', gloss_part)]
    gloss = clean_text(re.sub(r'"[^"]*"', "", gloss_part)).strip(" ;")
    return lemma, gloss, [e for e in examples if e]


def wordnet_documents(wordnet_dir: Path = WORDNET_DIR) -> list[Document]:
    """One document per synset: ``"<lemma>: <gloss>."`` followed by the synset's example sentences."""
    docs = []
    for pos in WORDNET_POS:
        path = wordnet_dir / f"data.{pos}"
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parsed = parse_wordnet_line(line)
            if parsed is None:
                continue
            lemma, gloss, examples = parsed
            offset = line.split()[0]
            first = f"{lemma}: {gloss}." if gloss else lemma
            docs.append(Document("wordnet", f"wordnet:{pos}:{offset}", (first, *examples)))
    return docs


ABBREVIATIONS = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|vs|etc|e\.g|i\.e|No|Mt|U\.S)\.$")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences at end punctuation followed by white space (not after "Mr." etc.)."""
    sentences: list[str] = []
    for part in re.split(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])", text):
        part = part.strip()
        if sentences and ABBREVIATIONS.search(sentences[-1]):
            sentences[-1] += " " + part
        elif part:
            sentences.append(part)
    return sentences


def fortune_text(entry: str) -> str | None:
    """One fortune as a single line of prose, or None when it is not plain English prose.

    Attribution lines (``-- Author``) are dropped; entries with chat/code/table layout, many
    non-letters or non-ASCII text are refused.
    """
    lines = [ln for ln in entry.splitlines() if not re.match(r"\s*(--|~~)", ln)]
    body = clean_text(" ".join(lines))
    if len(body) < 20 or len(body) > 1200 or not body.isascii():
        return None
    letters = sum(c.isalpha() or c.isspace() for c in body)
    if letters / len(body) < 0.85 or re.search(r"[<>{}|\\_=#@*]|:\s*$|^\S+:", body):
        return None
    if any(ln.startswith(("\t\t", "    ")) and not ln.strip().startswith("--") for ln in lines[1:]):
        return None  # verse, dialogue or an indented layout: not running prose
    return body


def fortune_documents(fortune_dir: Path = FORTUNE_DIR) -> list[Document]:
    """One document per fortune of every plain-text fortune file (``%``-separated entries)."""
    docs = []
    for path in sorted(fortune_dir.iterdir()) if fortune_dir.is_dir() else []:
        if path.suffix or not path.is_file() or path.name in FORTUNE_SKIP:
            continue
        entries = re.split(r"^%\s*$", path.read_text(encoding="latin-1"), flags=re.M)
        for i, entry in enumerate(entries):
            body = fortune_text(entry)
            if body:
                docs.append(Document("fortunes", f"fortunes:{path.name}:{i}", tuple(split_sentences(body))))
    return docs


def hutto_documents(files: dict[str, str]) -> list[Document]:
    """All four Hutto sets as documents (reviews/editorials multi-sentence, the rest single)."""
    sources = {"amazonReviewSnippets_GroundTruth.txt": "product_reviews",
               "nytEditorialSnippets_GroundTruth.txt": "nyt_editorials",
               "movieReviewSnippets_GroundTruth.txt": "movie_reviews",
               "tweets_GroundTruth.txt": "tweets"}
    docs = []
    for name, source in sources.items():
        docs.extend(group_documents(source, parse_ground_truth(files[name])))
    return docs


def gutenberg_body(text: str) -> str:
    """The text of a Project Gutenberg e-book between its ``*** START`` and ``*** END`` lines."""
    start = re.search(r"^\*\*\* ?START OF .*$", text, flags=re.M)
    end = re.search(r"^\*\*\* ?END OF .*$", text, flags=re.M)
    if not start or not end:
        raise ValueError("not a Project Gutenberg text: no START/END lines")
    return text[start.end():end.start()]


def book_documents(text: str, source: str, chunk: int = BOOK_CHUNK) -> list[Document]:
    """A book (one paragraph per line or hard-wrapped) as documents of ``chunk`` consecutive sentences.

    Headings in capitals (``CHAPTER I``) end a run and are dropped, as are "Produced by" credits.
    """
    runs: list[list[str]] = [[]]
    for line in text.splitlines():
        line = line.strip().lstrip("\ufeff")
        if not line or line.startswith("Produced by"):
            continue
        if line.upper() == line and any(c.isalpha() for c in line):
            runs.append([])  # a heading: the next sentences start a new passage
        else:
            runs[-1].append(line)
    docs = []
    for r, lines in enumerate(runs):
        sentences = [clean_text(s) for s in split_sentences(clean_text(" ".join(lines)))]
        sentences = [s for s in sentences if len(s.split()) >= 2 and any(c.isalpha() for c in s)]
        for i in range(0, len(sentences), chunk):
            docs.append(Document(source, f"{source}:{r}:{i // chunk}", tuple(sentences[i:i + chunk])))
    return docs


def read_botchan(sdist: Path) -> str:
    """``test/botchan.txt`` from the sentencepiece source distribution."""
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(BOTCHAN_MEMBER))
        return tar.extractfile(member).read().decode("utf-8-sig")


def chatterbot_documents(wheel: Path) -> list[Document]:
    """The English conversations of the chatterbot-corpus wheel, one document each (turns as sentences)."""
    import zipfile

    import yaml

    docs = []
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            topic = Path(name).stem
            if "/data/english/" not in name or not name.endswith(".yml") or topic in CHATTERBOT_SKIP:
                continue
            data = yaml.safe_load(archive.read(name).decode("utf-8"))
            for i, turns in enumerate(data.get("conversations") or []):
                turns = [clean_text(str(t)) for t in turns if isinstance(t, (str, int, float))]
                turns = [t for t in turns if t and t.isascii() and not re.search(r"[<>{}|\\_=#@*]", t)]
                if turns:
                    docs.append(Document("chat", f"chat:{topic}:{i}", tuple(turns)))
    return docs


def split_documents(docs: list[Document], eval_percent: int = EVAL_PERCENT) -> tuple[list[Document], list[Document]]:
    """Deterministic train/eval split by the hash of each document id."""
    train, held_out = [], []
    for doc in docs:
        (held_out if stable_bucket(doc.id) < eval_percent else train).append(doc)
    return train, held_out


def cap_source(docs: Sequence[Document], source: str, share: float, rng: random.Random) -> list[Document]:
    """``docs`` with the documents of ``source`` subsampled to at most ``share`` of the result (order kept).

    WordNet's 118k one-synset glosses would otherwise make up 80% of the corpus.
    """
    if share >= 1.0:
        return list(docs)
    others = sum(d.source != source for d in docs)
    capped = [i for i, d in enumerate(docs) if d.source == source]
    keep = set(rng.sample(capped, min(len(capped), int(share / max(1e-9, 1 - share) * others))))
    return [d for i, d in enumerate(docs) if d.source != source or i in keep]


def parse_upsample(spec: str) -> dict[str, int]:
    """``'botchan=3,chat=2'`` -> ``{'botchan': 3, 'chat': 2}`` (passes over each source's examples, 1-20)."""
    out = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        source, _, passes = item.partition("=")
        if not source.strip() or not passes.strip().isdigit() or not 1 <= int(passes) <= 20:
            raise ValueError(f"--upsample wants source=N with N from 1 to 20, comma-separated; got {item!r}")
        out[source.strip()] = int(passes)
    return out


def sentiment_rows(movie_text: str, band: float = NEUTRAL_BAND) -> list[dict[str, str]]:
    """Binary movie-review sentiment rows ``{text, label, split}`` (near-neutral ratings dropped)."""
    rows = []
    for row_id, rating, sentence in parse_ground_truth(movie_text):
        if abs(rating) < band:
            continue
        split = "test" if stable_bucket(f"movie:{row_id}") < SENTIMENT_TEST_PERCENT else "train"
        rows.append({"text": sentence, "label": "positive" if rating > 0 else "negative", "split": split})
    return rows


def read_documents(path: Path) -> list[Document]:
    """Read a ``.jsonl`` file written by :func:`prepare`."""
    with open(path, encoding="utf-8") as fh:
        return [Document(d["source"], d["id"], tuple(d["sentences"])) for d in map(json.loads, fh)]


def documents_from_text(text: str, source: str = "user") -> list[Document]:
    """Split plain text into documents (blank lines) and sentences (end punctuation)."""
    docs = []
    for i, block in enumerate(re.split(r"\n\s*\n", text)):
        sentences = [s.strip() for s in re.split(r"(?<=[.!?。！？])\s+", block.strip()) if s.strip()]
        if sentences:
            docs.append(Document(source, f"{source}:{i}", tuple(clean_text(s) for s in sentences)))
    return docs


def write_jsonl(docs: Iterable[Document], path: Path) -> int:
    """Write documents as JSON lines; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(doc.to_json() + "\n")
            n += 1
    return n


def write_sentiment_csv(rows: list[dict[str, str]], path: Path) -> None:
    """Write sentiment rows as a UTF-8 CSV with a header ``text,label,split``."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)


def prepare(out: Path, vader_sdist: Path | None = None, wordnet_dir: Path = WORDNET_DIR,
            fortune_dir: Path = FORTUNE_DIR, extra_sources: bool = True, sentencepiece_sdist: Path | None = None,
            chatterbot_wheel: Path | None = None) -> dict[str, int]:
    """Build the pretraining corpus and the sentiment set under ``out``; returns counts.

    ``extra_sources`` adds the book and the dialogues (downloaded from the package index unless given)."""
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.gettempdir()) / "plm-playground-sdists"  # packages fetched once, kept for rebuilds
    sdist = vader_sdist or download_vader_sdist(cache)
    files = read_hutto_files(sdist)
    docs = hutto_documents(files) + wordnet_documents(wordnet_dir) + fortune_documents(fortune_dir)
    if extra_sources:
        sp_sdist = sentencepiece_sdist or download_package(SENTENCEPIECE_SDIST, cache, "sentencepiece-*.tar.gz")
        docs += book_documents(gutenberg_body(read_botchan(sp_sdist)), "botchan")
        wheel = chatterbot_wheel or download_package(CHATTERBOT_WHEEL, cache, "chatterbot_corpus-*.whl", source=False)
        docs += chatterbot_documents(wheel)
    train, held_out = split_documents(docs)
    counts = {"train_docs": write_jsonl(train, out / "pretrain_train.jsonl"),
              "eval_docs": write_jsonl(held_out, out / "pretrain_eval.jsonl")}
    for source in sorted({d.source for d in docs}):
        counts[f"docs_{source}"] = sum(d.source == source for d in docs)
    rows = sentiment_rows(files["movieReviewSnippets_GroundTruth.txt"])
    write_sentiment_csv(rows, out / "sentiment_movie_reviews.csv")
    counts["sentiment_rows"] = len(rows)
    counts["sentiment_test_rows"] = sum(r["split"] == "test" for r in rows)
    return counts


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m model_utils.data prepare --out data``."""
    parser = argparse.ArgumentParser(prog="python -m model_utils.data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="build the offline corpora from packages")
    prep.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: data)")
    prep.add_argument("--vader-sdist", type=Path, default=None,
                      help="path to vaderSentiment-3.3.2.tar.gz (default: download it with pip)")
    prep.add_argument("--wordnet-dir", type=Path, default=WORDNET_DIR,
                      help="folder with WordNet's data.noun etc. (Debian package wordnet-base)")
    prep.add_argument("--fortune-dir", type=Path, default=FORTUNE_DIR,
                      help="folder of fortune files (Debian packages fortunes, fortunes-min)")
    prep.add_argument("--no-extra-sources", action="store_true",
                      help="leave out Botchan (sentencepiece sdist) and chatterbot-corpus (the corpus before 2026-12-01 evening)")
    args = parser.parse_args(argv)
    counts = prepare(args.out, args.vader_sdist, args.wordnet_dir, args.fortune_dir, not args.no_extra_sources)
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
