"""Bad input through every API endpoint of the running app (issue 7, item 3), beyond Fill-Mask's texts.

Endpoints: next_sentence, next_sentence_paragraph, classify, classify_explain, classify_columns,
classify_batch, attention, attention_math, next_token, generate, score_text, bert_vs_gpt, finetune_preview, finetune, pretrain_corpus, pretrain,
models_status, unload_models (and fill_mask for model ids, types and batching). Inputs: empty,
blank, 100 kB, control characters, mixed scripts and emoji, hostile model ids, models without
the needed head, wrong types and out-of-range numbers, bad uploads (binary, empty, wrong type,
too many rows, too large, paths the client did not upload), bad hyperparameters.

Each request gets a clear error (no traceback, no file contents, < 2000 characters) or a
correct result within ``TIME_BOUND``; training requests that are bad are refused before a job
is queued; the app answers a normal request afterwards. Cases are grouped so the whole module
makes a few hundred short round trips.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
httpx = pytest.importorskip("httpx")

from test_bad_input import (BIG, CLASSIFIER, LONG, MODEL, TIME_BOUND, assert_clear_error,  # noqa: E402
                            assert_still_serving, call)

pytestmark = pytest.mark.slow
handle_file = gradio_client.handle_file

CAUSAL = "local:tiny-gpt2"
CONTROL = "the \x00cat\x01 sat\x1b[31m on \x7f the mat .\u200b\ufeff"
MIXED = "猫 кошка 🐱 القط the cat sat on the mat . 😀👍🏽 ﷽"
TEXTS = {"empty": "", "blank": " \t\n  ", "huge": BIG, "long": LONG, "control": CONTROL, "mixed": MIXED,
         "none": None, "number": 5}
HOSTILE_IDS = ["../../etc/passwd", "local:../x", "local:/etc", "http://evil.example/x", "file:///etc/passwd",
               "x" * 5000, "bert\x00base", "bert\nbase", "local:tiny-bert\x00", "/etc", "~/.ssh/id_rsa",
               "bundled:../../x", 3, ["local:tiny-bert"]]
FT_KNOBS = dict(epochs=1, batch_size=4, learning_rate=5e-5, warmup=0.0, weight_decay=0.0, max_length=32,
                max_steps=1, seed=1, lora_rank=0)
PT_KNOBS = dict(probe_every=1, steps=1, batch_size=2, learning_rate=5e-4, max_length=32, mlm_probability=0.15,
                nsp=True, example=1)
DOC = "The cat sat on the mat. The dog ran in the park. The bird sang in the tree. It was a sunny day. Then it rained."
CORPUS = "\n\n".join([DOC] * 4)  # enough to train on: 4 documents, 20 sentences


@pytest.fixture(scope="module")
def client(app_server: str):
    return gradio_client.Client(app_server, verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bad (and one good) uploads, by name."""
    root = tmp_path_factory.mktemp("uploads")
    rows = lambda n: "".join(f"the cat sat {i},{'positive' if i % 2 else 'negative'}\n" for i in range(n))  # noqa: E731
    contents: dict[str, bytes] = {
        "binary.csv": bytes(range(256)) * 20, "empty.csv": b"", "header_only.csv": b"text,label\n",
        "wrong.exe": ("text,label\n" + rows(4)).encode(), "many_rows.csv": ("text,label\n" + rows(2500)).encode(),
        "bad.jsonl": b'{"text": "good", "label": "positive"}\n{not json\n',
        "utf16.csv": ("text,label\n" + rows(4)).encode("utf-16"),
        "wide.csv": (",".join(f"c{i}" for i in range(5000)) + "\n" + ",".join("x" * 5000) + "\n").encode(),
        "bigcell.csv": ("text,label\n" + "word " * 40_000 + ",positive\n").encode(),
        "one_class.csv": ("text,label\n" + "".join(f"the cat {i},positive\n" for i in range(20))).encode(),
        "ok.csv": ("text,label\n" + rows(20)).encode(),
        "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 8, "empty.txt": b"",
        "short.txt": b"Hello world.", "corpus.csv": CORPUS.encode(),
    }
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return {name: root / name for name in contents}


def request(client, endpoint: str, *args) -> tuple[str, object]:
    """``call`` plus: an error is clear (no traceback or file contents, < 2000 characters)."""
    status, output = call(client, endpoint, *args)
    if status == "error":
        assert_clear_error(output)
    return status, output


def check_result(endpoint: str, output) -> None:
    """A successful answer is a real, well-formed result."""
    if endpoint == "next_sentence":
        assert 0 <= output["is_next"] <= 1 and abs(output["is_next"] + output["not_next"] - 1) < 1e-6
    elif endpoint == "next_sentence_paragraph":
        assert 2 <= len(output["sentences"]) <= 32
        assert len(output["pairs"]) == len(output["control"]) == len(output["sentences"]) - 1
        assert all(0 <= p["is_next"] <= 1 for p in output["pairs"] + output["control"])
    elif endpoint == "classify":
        confidences = output[0]["confidences"]
        assert {c["label"] for c in confidences} == {"negative", "positive"}
        assert abs(sum(c["confidence"] for c in confidences) - 1) < 1e-4
    elif endpoint == "classify_explain":
        spans, note = output
        assert spans and all(set(s) == {"token", "class_or_confidence"} for s in spans) and "positive" in note
    elif endpoint == "attention":
        assert len(output) == 12 and output[1]["maximum"] == 1 and output[2]["maximum"] == 3  # 2 layers, 4 heads
        assert 2 <= len(output[3]["choices"]) <= 64  # query tokens, within the tiny model's 64 positions
        assert output[8]["type"] == "plotly"  # the open view (the heatmap); the others are drawn when opened
        assert output[4] is output[5] is output[6] is output[9] is output[10] is output[11] is None
        assert output[7]["data"] == []  # the head summary table, filled when its sub-tab is opened
    elif endpoint == "next_token":
        assert output["candidates"] and 0.99 < sum(c["after_top_p"] for c in output["candidates"]) < 1.01
    elif endpoint == "generate":
        record = output[-1]
        assert record["finished"] and 1 <= record["generated"] <= 3
    elif endpoint == "score_text":
        assert output["scored"] >= 1 and output["perplexity"] >= 1
    elif endpoint == "bert_vs_gpt":
        assert output["words"] and output["masks"]["causal"]["causal"]


def text_requests(text) -> dict[str, tuple]:
    """One request per text endpoint with ``text`` in its main field."""
    return {
        "next_sentence": ("next_sentence", text, "So I cooked dinner.", MODEL),
        "next_sentence B": ("next_sentence", "I was hungry.", text, MODEL),
        "next_sentence_paragraph": ("next_sentence_paragraph", text, MODEL, 0),
        "classify": ("classify", CLASSIFIER, text, ""),
        "classify pair": ("classify", CLASSIFIER, "a good film", text),
        "classify_explain": ("classify_explain", CLASSIFIER, text, "", "positive", "gradient-x-input"),
        "attention": ("attention", MODEL, text, "", 0, 0, "png"),
        "attention pair": ("attention", MODEL, "the cat sat .", text, 0, 0, "png"),
        "next_token": ("next_token", CAUSAL, text, 1.0, 10, 1.0),
        "generate": ("generate", CAUSAL, text, 1.0, 10, 1.0, "greedy", 0, 3),
        "score_text": ("score_text", MODEL, text, "auto"),
        "bert_vs_gpt": ("bert_vs_gpt", MODEL, CAUSAL, text),
    }


@pytest.mark.parametrize("name", TEXTS)
def test_text_endpoints_answer_bad_text_clearly(client, name: str) -> None:
    for label, (endpoint, *args) in text_requests(TEXTS[name]).items():
        status, output = request(client, endpoint, *args)
        if status == "ok":
            check_result(endpoint, output)
        if name in ("empty", "blank", "none") and "pair" not in label:  # a pair's second text is optional
            assert status == "error", f"{label} accepted {name} text"
        if name == "huge":  # past PLM_MAX_TEXT_CHARS: refused before any tokenizer sees it
            assert status == "error" and "the limit is 20,000 characters" in output, (label, output)
        if name in ("long", "control", "mixed") and endpoint != "next_sentence_paragraph":
            assert status == "ok", f"{label} refused {name} text: {output}"  # truncated or read as it is
    assert_still_serving(client)


def test_punctuation_run_does_not_freeze_the_app(client, app_server: str) -> None:
    """100 kB of dots used to hold the GIL in the sentence splitter for minutes: nobody got an answer (20 kB,
    the most a text box takes now, took seconds)."""
    other = gradio_client.Client(app_server, verbose=False)
    job = client.submit("." * 19_999 + "x", MODEL, 0, api_name="/next_sentence_paragraph")  # the most allowed
    time.sleep(0.5)
    answer = other.submit("I was hungry.", "So I ate.", MODEL, api_name="/next_sentence").result(timeout=30)
    assert answer["model"] == MODEL
    with pytest.raises(gradio_client.exceptions.AppError, match="at least two sentences"):
        job.result(timeout=TIME_BOUND)


def test_hostile_model_ids_are_refused_by_every_endpoint(client, files: dict[str, Path],
                                                         tiny_checkpoints_dir: Path) -> None:
    before = sorted(p.name for p in tiny_checkpoints_dir.iterdir())
    for model in HOSTILE_IDS:  # every id on one endpoint...
        status, output = request(client, "next_sentence", "I was hungry.", "So I ate.", model)
        assert status == "error" and len(str(output)) < 400, (model, output)
    ok = handle_file(str(files["ok.csv"]))
    for model in ["../../etc/passwd", "x" * 5000, 3]:  # ...and a few on every endpoint that takes a model
        single = [model] if isinstance(model, str) else model
        requests = [
            ("fill_mask", "the [MASK] sat .", [model], 5, ""), ("fill_mask", "the [MASK] sat .", single, 5, ""),
            ("next_sentence_paragraph", "I was hungry. So I ate. Then I slept.", model, 0),
            ("classify", model, "a good film", ""),
            ("classify_explain", model, "a good film", "", "positive", "gradient-x-input"),
            ("attention", model, "the cat sat .", "", 0, 0, "png"),
            ("classify_batch", model, ok, "text", "label", ""),
            ("finetune", ok, False, "text", "label", model, f"bi-{uuid.uuid4().hex[:8]}", *FT_KNOBS.values(), False),
            ("pretrain", CORPUS, None, False, model, f"bi-{uuid.uuid4().hex[:8]}", "", *PT_KNOBS.values()),
        ]
        for endpoint, *args in requests:
            status, output = request(client, endpoint, *args)
            assert status == "error" and len(str(output)) < 400, (endpoint, str(model)[:20], output)
            assert not str(output).startswith(("Fine-tuning failed", "Pretraining failed")), "refused before queueing"
    assert sorted(p.name for p in tiny_checkpoints_dir.iterdir()) == before
    assert_still_serving(client)


def test_models_without_the_needed_head_are_refused(client, files: dict[str, Path]) -> None:
    requests = [
        ("fill_mask", "the [MASK] sat .", [CLASSIFIER], 5, ""),
        ("next_sentence", "I was hungry.", "So I ate.", CLASSIFIER),
        ("next_sentence", "I was hungry.", "So I ate.", "local:tiny-mlm"),
        ("next_sentence", "I was hungry.", "So I ate.", "local:tiny-distilbert"),
        ("next_sentence_paragraph", "I was hungry. So I ate.", CLASSIFIER, 0),
        ("classify", MODEL, "a good film", ""),
        ("classify", "local:tiny-distilbert", "a good film", ""),
        ("classify_explain", MODEL, "a good film", "", "positive", "integrated-gradients"),
        ("classify_batch", MODEL, handle_file(str(files["ok.csv"])), "text", "label", ""),
        ("pretrain", CORPUS, None, False, CLASSIFIER, f"bi-{uuid.uuid4().hex[:8]}", "", *PT_KNOBS.values()),
    ]
    for endpoint, *args in requests:
        status, output = request(client, endpoint, *args)
        assert status == "error" and "head" in str(output), (endpoint, args[:4], output)
        assert not str(output).startswith("Pretraining failed"), "refused before queueing"
    status, output = request(client, "attention", CLASSIFIER, "the cat sat .", "", 0, 0, "png")
    assert status == "ok"  # attention needs only the encoder
    check_result("attention", output)
    assert_still_serving(client)


def test_wrong_types_and_out_of_range_values(client, app_server: str) -> None:
    errors = [
        *[("fill_mask", "the [MASK] sat .", [MODEL], k, "") for k in (-1, 0, 10**9, "abc", 1e300)],
        ("fill_mask", "the [MASK] sat .", 3, 5, ""), ("fill_mask", "the [MASK] sat .", [3], 5, ""),
        ("fill_mask", "the [MASK] sat .", {"a": 1}, 5, ""), ("fill_mask", 5, [MODEL], 5, ""),
        ("fill_mask", ["the [MASK] ."], [MODEL], 5, ""), ("fill_mask", "the [MASK] sat .", [MODEL], 5, 3),
        *[("attention", MODEL, "the cat sat .", "", layer, head, "png")
          for layer, head in ((-1, 0), (10**9, 0), (0, -5), ("abc", 0), (1e300, 1e300))],
        ("attention", MODEL, "the cat sat .", "", 0, 0, "gif"),
        ("classify_explain", CLASSIFIER, "a good film", "", "nope", "gradient-x-input"),
        ("classify_explain", CLASSIFIER, "a good film", "", "x" * 5000, "gradient-x-input"),
        ("classify_explain", CLASSIFIER, "a good film", "", 3, "gradient-x-input"),
        ("classify_explain", CLASSIFIER, "a good film", "", "positive", "evil"),
        ("next_sentence_paragraph", "I was hungry. So I ate.", MODEL, -1),
        ("next_sentence_paragraph", "I was hungry. So I ate.", MODEL, "abc"),
    ]
    for endpoint, *args in errors:
        status, output = request(client, endpoint, *args)
        assert status == "error", (endpoint, args, str(output)[:200])
    for endpoint, *args in [("fill_mask", "the [MASK] sat .", [MODEL], 2.5, ""),
                            ("fill_mask", "the [MASK] sat .", [MODEL] * 20, 2, ""),
                            ("next_sentence_paragraph", "I was hungry. So I ate.", MODEL, 10**9),
                            ("classify_explain", CLASSIFIER, "a good film", "", "", "gradient-x-input"),
                            ("classify_explain", CLASSIFIER, "a good film", "", "positive", None)]:  # defaults
        status, output = request(client, endpoint, *args)
        assert status == "ok", (endpoint, output)
    fresh = gradio_client.Client(app_server, verbose=False)  # attention_math before any Run in this session
    status, output = request(fresh, "attention_math", 0, 0, None, "png")
    assert status == "error" and "Run" in str(output)
    assert request(client, "attention", MODEL, "the cat sat .", "", 0, 0, "png")[0] == "ok"
    for query in (-1, 10**9, "abc"):
        assert request(client, "attention_math", 0, 0, query, "png")[0] == "error"
    status, output = request(client, "attention_math", 1, 3, 2, "svg")
    assert status == "ok" and "layer 1, head 3" in output[0]
    assert_still_serving(client)


def test_a_bad_fill_mask_request_does_not_fail_the_batch_it_joins(app_server: str) -> None:
    """Gradio preprocessed a batch as one: a top-k out of the slider's range failed everyone's request."""
    clients = [gradio_client.Client(app_server, verbose=False) for _ in range(6)]
    text = LONG[:-8] + " [MASK] ."  # a long first request lets the next ones queue into one batch
    for bad_models, bad_top_k in (([MODEL], 10**9), ([MODEL], "abc"), ([3], 3)):
        jobs = []
        for i, member in enumerate(clients):
            models, top_k = (bad_models, bad_top_k) if i % 2 else ([MODEL], 3)
            jobs.append((i % 2 == 1, member.submit(text, models, top_k, "", api_name="/fill_mask")))
        for is_bad, job in jobs:
            try:
                output = job.result(timeout=TIME_BOUND)
            except gradio_client.exceptions.AppError as err:
                assert is_bad, f"a good request failed beside a bad one ({bad_models}, {bad_top_k}): {err}"
                assert_clear_error(err)
                continue
            if is_bad:
                assert output["error"] and not output["results"]
            else:
                assert len(output["results"][0]["predictions"][0]) == 3


def test_bad_uploads_are_refused_by_every_upload_endpoint(client, files: dict[str, Path]) -> None:
    refused = ["binary.csv", "empty.csv", "header_only.csv", "wrong.exe", "many_rows.csv", "bad.jsonl", "utf16.csv",
               "bigcell.csv"]
    for name in refused:
        upload = handle_file(str(files[name]))
        for endpoint, *args in [("classify_columns", upload), ("finetune_preview", upload),
                                ("classify_batch", CLASSIFIER, upload, "text", "label", ""),
                                ("finetune", upload, False, "text", "label", MODEL, f"bi-{uuid.uuid4().hex[:8]}",
                                 *FT_KNOBS.values(), False)]:
            status, output = request(client, endpoint, *args)
            assert status == "error", (name, endpoint, str(output)[:200])
            assert not str(output).startswith("Fine-tuning failed")
    many = handle_file(str(files["many_rows.csv"]))
    message = request(client, "classify_batch", CLASSIFIER, many, "text", "", "")[1]
    assert "2500 rows" in message and "PLM_MAX_UPLOAD_ROWS" in message
    wide = handle_file(str(files["wide.csv"]))  # 5,000 columns: listed, but an error message stays short
    assert request(client, "classify_columns", wide)[0] == "ok"
    status, output = request(client, "classify_batch", CLASSIFIER, wide, "text", "", "")
    assert status == "error" and "no column 'text'" in output
    ok = handle_file(str(files["ok.csv"]))
    status, output = request(client, "classify_batch", CLASSIFIER, ok, "x" * 5000, "", "")
    assert status == "error" and len(output) < 1000
    status, output = request(client, "classify_batch", CLASSIFIER, ok, "text", "label", "")
    assert status == "ok" and len(output[0]["data"]) == 20 and 0 <= output[2] <= 1  # predictions table, accuracy
    status, output = request(client, "finetune", handle_file(str(files["one_class.csv"])), False, "text", "label",
                             MODEL, "bi-one-class", *FT_KNOBS.values(), False)
    assert status == "error" and "two classes" in output
    assert_still_serving(client)


def test_pretrain_refuses_too_little_or_binary_text(client, files: dict[str, Path]) -> None:
    for text, uploads in [("", None), (" \n\n ", None), ("Hello world.", None), (BIG, None), (CONTROL, None),
                          (MIXED, None), ("", [files["short.txt"]]), ("", [files["empty.txt"]])]:
        status, info = request(client, "pretrain_corpus", text, [handle_file(str(f)) for f in uploads or []], False)
        assert status == "ok" and "⚠️" in info  # counts, and what is missing
        status, output = request(client, "pretrain", text, [handle_file(str(f)) for f in uploads or []], False, MODEL,
                                 f"bi-{uuid.uuid4().hex[:8]}", "", *PT_KNOBS.values())
        assert status == "error" and ("too small" in output or "empty" in output), output
    for name in ("binary.txt", "corpus.csv"):
        upload = [handle_file(str(files[name]))]
        for endpoint, *args in [("pretrain_corpus", "", upload, False),
                                ("pretrain", "", upload, False, MODEL, "bi-never", "", *PT_KNOBS.values())]:
            status, output = request(client, endpoint, *args)
            assert status == "error" and ("binary" in output or "file type" in output), output
    status, info = request(client, "pretrain_corpus", CORPUS, [], False)
    assert status == "ok" and "4 documents, 20 sentences" in info and "enough" in info
    assert_still_serving(client)


FT_BAD_KNOBS = [dict(epochs=-1), dict(epochs=0), dict(learning_rate=0), dict(batch_size=10**9), dict(batch_size=0),
                dict(max_length=10**6), dict(max_steps=-5), dict(lora_rank=-1), dict(warmup=-1), dict(weight_decay=-1),
                dict(epochs="abc"), dict(epochs=None), dict(seed=-1), dict(seed=2**40), dict(epochs=1e308)]
PT_BAD_KNOBS = [dict(steps=0), dict(steps=10**9), dict(batch_size=10**6), dict(learning_rate=0), dict(max_length=4),
                dict(mlm_probability=0.9), dict(probe_every=0), dict(steps="abc"), dict(steps=None), dict(example=-3)]
# A taken name (local:tiny-bert) is not bad input any more: the run is saved under a free name
# (tests/test_workshop.py), and existing checkpoints are never overwritten.
BAD_NAMES = ["../../x", "x" * 5000, "a/b", "a\x00b", ".hidden", "/etc/x"]


def test_bad_training_requests_are_refused_before_a_job_is_queued(client, files: dict[str, Path],
                                                                   tiny_checkpoints_dir: Path) -> None:
    before = sorted(p.name for p in tiny_checkpoints_dir.iterdir())
    ok = handle_file(str(files["ok.csv"]))
    requests = [("finetune", ok, False, "text", "label", MODEL, f"bi-{uuid.uuid4().hex[:8]}",
                 *{**FT_KNOBS, **knobs}.values(), False) for knobs in FT_BAD_KNOBS]
    requests += [("finetune", ok, False, "text", "label", MODEL, name, *FT_KNOBS.values(), False) for name in BAD_NAMES]
    requests += [("finetune", None, False, "text", "label", MODEL, "bi-no-file", *FT_KNOBS.values(), False),
                 ("finetune", ok, False, "nope", "label", MODEL, "bi-no-column", *FT_KNOBS.values(), False),
                 ("finetune", ok, False, "text", "x" * 5000, MODEL, "bi-no-label", *FT_KNOBS.values(), False)]
    requests += [("pretrain", CORPUS, None, False, MODEL, f"bi-{uuid.uuid4().hex[:8]}", "",
                  *{**PT_KNOBS, **knobs}.values()) for knobs in PT_BAD_KNOBS]
    requests += [("pretrain", CORPUS, None, False, MODEL, name, "", *PT_KNOBS.values()) for name in BAD_NAMES]
    requests += [("pretrain", CORPUS, None, False, MODEL, "bi-probe", probe, *PT_KNOBS.values())
                 for probe in ("no mask here", "[MASK] and [MASK]", "x" * 5000)]
    for endpoint, *args in requests:
        started = time.monotonic()
        status, output = request(client, endpoint, *args)
        assert status == "error", (endpoint, str(args)[:300], str(output)[:200])
        assert not str(output).startswith(("Fine-tuning failed", "Pretraining failed")), "refused before queueing"
        assert time.monotonic() - started < 30, "a bad training request is refused at once"
    assert sorted(p.name for p in tiny_checkpoints_dir.iterdir()) == before
    assert_still_serving(client)


def test_models_panel_ignores_hostile_names(client) -> None:
    assert_still_serving(client)  # local:tiny-bert is loaded now
    loaded = lambda output: {row[0] for row in output[1]["data"]}  # noqa: E731
    assert MODEL in loaded(client.predict(api_name="/models_status"))
    for name in ["../../etc/passwd", "x" * 5000, "local:tiny-bert\x00", " ", 3, ["local:tiny-bert"], {"a": 1}]:
        status, output = request(client, "unload_models", name)
        if status == "ok":
            assert MODEL in loaded(output), f"{str(name)[:20]!r} unloaded {MODEL}"
    status, output = request(client, "models_status")
    assert status == "ok" and MODEL in loaded(output) and "Cache:" in output[0]
    assert_still_serving(client)


def raw_call(url: str, endpoint: str, data: list) -> str:
    """The event stream of one request sent as raw JSON (what a client that skips the upload could send)."""
    response = httpx.post(f"{url}gradio_api/call/{endpoint}", json={"data": data}, timeout=30)
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text}"
    event_id = response.json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/{endpoint}/{event_id}", timeout=TIME_BOUND).text


def test_server_side_paths_and_oversize_uploads_are_refused(client, app_server: str, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    file_data = lambda path: {"path": path, "meta": {"_type": "gradio.FileData"}}  # noqa: E731
    for path in ["/etc/passwd", "../../../../etc/passwd", str(root / "demo" / "examples" / "classify_reviews.csv"),
                 str(root / "app.py"), "/proc/self/environ"]:
        for endpoint, data in [("classify_columns", [file_data(path)]), ("finetune_preview", [file_data(path)]),
                               ("pretrain_corpus", ["", [file_data(path)], False])]:
            stream = raw_call(app_server, endpoint, data)
            assert "event: error" in stream and "event: complete" not in stream, (endpoint, path, stream[:300])
            assert "root:x:0:0" not in stream and "import gradio" not in stream and "PATH=" not in stream
    stream = raw_call(app_server, "classify_columns", ["/etc/passwd"])
    assert "event: complete" not in stream and "root:x:0:0" not in stream
    huge = tmp_path / "huge.csv"
    huge.write_bytes(b"text,label\n" + b"the cat sat on the mat and the dog ran,positive\n" * 230_000)  # 11 MB
    with huge.open("rb") as handle:
        response = httpx.post(f"{app_server}gradio_api/upload", files={"files": ("huge.csv", handle, "text/csv")},
                              timeout=60)
    assert response.status_code == 413 and "maximum" in response.text
    assert json.loads(httpx.get(f"{app_server}gradio_api/info", timeout=30).text)
    assert_still_serving(client)
