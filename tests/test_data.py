"""Tests of the offline corpus builders (model_utils.data) on small synthetic inputs."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from model_utils import data

WORDNET_LINE = ('00039297 04 n 01 contact 2 005 @ 00039021 n 0000 + 00743362 v 0104 | close interaction; '
                '"they kept in daily contact"; "they claimed that they had been in contact with aliens"  ')
LICENCE_LINE = "  1 This software and database is being provided to you, the LICENSEE, by  "


def test_parse_wordnet_line_splits_gloss_and_examples():
    lemma, gloss, examples = data.parse_wordnet_line(WORDNET_LINE)
    assert lemma == "contact"
    assert gloss == "close interaction"
    assert examples == ["they kept in daily contact", "they claimed that they had been in contact with aliens"]
    assert data.parse_wordnet_line(LICENCE_LINE) is None


def test_wordnet_documents_one_per_synset(tmp_path: Path):
    for pos in data.WORDNET_POS:
        (tmp_path / f"data.{pos}").write_text(LICENCE_LINE + "\n" + (WORDNET_LINE + "\n" if pos == "noun" else ""))
    docs = data.wordnet_documents(tmp_path)
    assert len(docs) == 1
    assert docs[0].sentences[0] == "contact: close interaction."
    assert docs[0].id == "wordnet:noun:00039297"
    assert len(docs[0].sentences) == 3


def test_group_documents_orders_sentences_by_number():
    rows = [("1_2", 0.1, "second"), ("2_1", 0.0, "other"), ("1_1", 0.3, "first"), ("1_10", 0.0, "tenth")]
    docs = {d.id: d.sentences for d in data.group_documents("reviews", rows)}
    assert docs == {"reviews:1": ("first", "second", "tenth"), "reviews:2": ("other",)}


def test_parse_ground_truth_skips_bad_rows_and_cleans_quotes():
    text = "1\t2.5\tA ''great'' film\r\n2\tnot-a-number\tx\r\n3\t-1.0\t\r\n4\t-3\tawful   stuff\r\n"
    assert list(data.parse_ground_truth(text)) == [("1", 2.5, 'A "great" film'), ("4", -3.0, "awful stuff")]


def test_sentiment_rows_drop_neutral_and_split_stably():
    text = "".join(f"{i}\t{r}\tsentence {i}\n" for i, r in enumerate([2.0, -2.0, 0.1, -0.4, 0.6] * 40))
    rows = data.sentiment_rows(text)
    assert len(rows) == 120  # the 0.1 and -0.4 ratings are inside the neutral band
    assert {r["label"] for r in rows} == {"positive", "negative"}
    assert rows == data.sentiment_rows(text)  # deterministic
    test_share = sum(r["split"] == "test" for r in rows) / len(rows)
    assert 0.0 < test_share < 0.3


def test_split_documents_is_deterministic_and_disjoint():
    docs = [data.Document("s", f"s:{i}", ("a", "b")) for i in range(400)]
    train, held = data.split_documents(docs)
    assert {d.id for d in train}.isdisjoint({d.id for d in held})
    assert len(train) + len(held) == 400
    assert 5 <= len(held) <= 40
    assert data.split_documents(docs) == (train, held)


def test_documents_from_text_blank_lines_separate_documents():
    docs = data.documents_from_text("One. Two!\n\n  \nThree? Four.\n")
    assert [d.sentences for d in docs] == [("One.", "Two!"), ("Three?", "Four.")]


def _fake_sdist(tmp_path: Path) -> Path:
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        for name, body in {"amazonReviewSnippets_GroundTruth.txt": "1_1\t1\tgood\n1_2\t1\tvery good\n",
                           "nytEditorialSnippets_GroundTruth.txt": "7_1\t0\tnews\n",
                           "movieReviewSnippets_GroundTruth.txt": "1\t3\tloved it\n2\t-3\thated it\n",
                           "tweets_GroundTruth.txt": "1\t1\tyay\n", "_README_.txt": "x"}.items():
            info = tarfile.TarInfo(f"hutto_ICWSM_2014/{name}")
            info.size = len(body.encode())
            tar.addfile(info, io.BytesIO(body.encode()))
    outer_path = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    with tarfile.open(outer_path, "w:gz") as tar:
        info = tarfile.TarInfo("vaderSentiment-3.3.2/" + data.HUTTO_MEMBER)
        info.size = len(inner.getvalue())
        tar.addfile(info, io.BytesIO(inner.getvalue()))
    return outer_path


FORTUNES = """\
A clean house is a sign of a broken computer.  I cleaned mine
yesterday, and now nothing works.
		-- Anonymous
%
Q:	What do you get when you cross a dog and a clock?
A:	A watchdog.
%
   /\\_/\\
  ( o.o )
%
Mr. Smith went to Washington. He never came back!
%
"""


def _fortune_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "fortunes"
    folder.mkdir()
    (folder / "misc").write_text(FORTUNES)
    (folder / "misc.dat").write_bytes(b"\x00binary index")
    (folder / "ascii-art").write_text("a picture of words that is long enough to pass.\n%\n")
    return folder


def test_fortune_documents_keep_prose_and_drop_attributions_dialogue_and_art(tmp_path: Path):
    docs = data.fortune_documents(_fortune_dir(tmp_path))
    assert [d.sentences for d in docs] == [
        ("A clean house is a sign of a broken computer.", "I cleaned mine yesterday, and now nothing works."),
        ("Mr. Smith went to Washington.", "He never came back!")]
    assert [d.id for d in docs] == ["fortunes:misc:0", "fortunes:misc:3"]
    assert {d.source for d in docs} == {"fortunes"}
    assert data.fortune_documents(tmp_path / "missing") == []


def test_split_sentences_keeps_abbreviations_and_quotes():
    text = 'In 1976 Mr. Barry failed. "It rained," he said. So did Dr. Who! Then e.g. this. Fine?'
    assert data.split_sentences(text) == ["In 1976 Mr. Barry failed.", '"It rained," he said.',
                                          "So did Dr. Who!", "Then e.g. this.", "Fine?"]


def test_cap_source_limits_one_sources_share_and_keeps_order():
    import random

    docs = [data.Document("wordnet" if i % 5 else "fortunes", f"d:{i}", ("x",)) for i in range(500)]
    capped = data.cap_source(docs, "wordnet", 0.4, random.Random(0))
    wordnet = [d for d in capped if d.source == "wordnet"]
    assert len(capped) - len(wordnet) == 100 and len(wordnet) == 66  # 0.4 / 0.6 * 100
    assert [d.id for d in capped] == sorted((d.id for d in capped), key=lambda i: int(i[2:]))
    assert data.cap_source(docs, "wordnet", 1.0, random.Random(0)) == docs


def test_prepare_end_to_end_from_a_fake_sdist(tmp_path: Path):
    (tmp_path / "wn").mkdir()
    for pos in data.WORDNET_POS:
        (tmp_path / "wn" / f"data.{pos}").write_text(WORDNET_LINE + "\n")
    fortunes = _fortune_dir(tmp_path)
    counts = data.prepare(tmp_path / "out", _fake_sdist(tmp_path), tmp_path / "wn", fortunes,
                          sentencepiece_sdist=_fake_sentencepiece(tmp_path), chatterbot_wheel=_fake_chatterbot(tmp_path))
    docs = data.read_documents(tmp_path / "out" / "pretrain_train.jsonl") + \
        data.read_documents(tmp_path / "out" / "pretrain_eval.jsonl")
    assert counts["train_docs"] + counts["eval_docs"] == len(docs) == 1 + 1 + 2 + 1 + 4 + 2 + 2 + 1
    assert counts["docs_fortunes"] == 2 and counts["docs_wordnet"] == 4
    assert counts["docs_botchan"] == 2 and counts["docs_chat"] == 1
    without = data.prepare(tmp_path / "old", _fake_sdist(tmp_path), tmp_path / "wn", fortunes, extra_sources=False)
    assert "docs_botchan" not in without and without["train_docs"] + without["eval_docs"] == 11
    review = next(d for d in docs if d.id == "product_reviews:1")
    assert review.sentences == ("good", "very good")
    assert counts["sentiment_rows"] == 2


@pytest.mark.parametrize("bucket_key", ["a", "movie:1", "wordnet:noun:00001740"])
def test_stable_bucket_is_in_range(bucket_key: str):
    assert 0 <= data.stable_bucket(bucket_key) < 100


BOOK = """\ufeffThe Project Gutenberg EBook of Something
Licence words that are not the book.
*** START OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***
Produced by Some Volunteers
CHAPTER I
I went to the school by the river. The janitor had to carry me
home on his back. My father was angry.
"I'll see I don't get hurt next time," I answered.
CHAPTER II
The next day it rained. R.
*** END OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***
More licence words.
"""


def _fake_sentencepiece(tmp_path: Path) -> Path:
    path = tmp_path / "sentencepiece-0.2.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        raw = BOOK.encode("utf-8")
        info = tarfile.TarInfo("sentencepiece-0.2.0/test/botchan.txt")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    return path


def _fake_chatterbot(tmp_path: Path) -> Path:
    import zipfile

    path = tmp_path / "chatterbot_corpus-1.3.3-py2.py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("chatterbot_corpus/data/english/food.yml",
                         "categories:\n- food\nconversations:\n- - Do you like cake?\n  - Yes, I love chocolate cake.\n"
                         "  - <b>markup</b>\n  - 42\n")
        archive.writestr("chatterbot_corpus/data/english/coding.yml",
                         "conversations:\n- - What is a list?\n  - A Python type.\n")
        archive.writestr("chatterbot_corpus/data/chinese/food.yml", "conversations:\n- - 你好\n  - 你好\n")
    return path


def test_book_documents_cut_the_gutenberg_text_into_runs_of_sentences():
    body = data.gutenberg_body(BOOK)
    assert "Licence words" not in body and "More licence" not in body
    docs = data.book_documents(body, "book", chunk=3)
    assert [d.id for d in docs] == ["book:1:0", "book:1:1", "book:2:0"]
    assert docs[0].sentences == ("I went to the school by the river.", "The janitor had to carry me home on his back.",
                                 "My father was angry.")
    assert docs[1].sentences == ('"I\'ll see I don\'t get hurt next time," I answered.',)
    assert docs[2].sentences == ("The next day it rained.",)  # a one-word fragment is dropped
    assert all("CHAPTER" not in s and "Produced" not in s for d in docs for s in d.sentences)
    with pytest.raises(ValueError, match="Project Gutenberg"):
        data.gutenberg_body("no markers here")


def test_chatterbot_documents_keep_english_small_talk_only(tmp_path: Path):
    docs = data.chatterbot_documents(_fake_chatterbot(tmp_path))
    assert docs == [data.Document("chat", "chat:food:0", ("Do you like cake?", "Yes, I love chocolate cake.", "42"))]
