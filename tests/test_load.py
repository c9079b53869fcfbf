"""A short run of benchmarks/load_test.py against the app on the tiny models: many users at once,
zero failed requests, and every answer belongs to its own request (no cross-talk)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import ROOT

pytest.importorskip("gradio_client")


def load_test_module():
    if "load_test" in sys.modules:
        return sys.modules["load_test"]
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "benchmarks" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["load_test"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_word_pairs_are_distinct() -> None:
    load_test = load_test_module()
    pairs = [load_test.word_pair(i) for i in range(200)]
    assert len(set(pairs)) == 200 and all(a != b for a, b in pairs)


def test_checks_reject_another_users_answer() -> None:
    load_test = load_test_module()
    mine, theirs = load_test.fill_mask_request(0, "m"), load_test.fill_mask_request(1, "m")
    answer = {"text": theirs.args[0], "results": [{"predictions": [[{"sequence": theirs.args[0]}]]}]}
    assert theirs.check(answer) and not mine.check(answer)


@pytest.mark.slow
def test_eight_users_get_their_own_answers(app_server: str) -> None:
    load_test = load_test_module()
    models = {"fill_mask": "local:tiny-bert", "next_sentence": "local:tiny-bert",
              "attention": "local:tiny-bert", "classify": "local:tiny-classifier"}
    report = load_test.run_load(app_server, users=8, requests=4, models=models, deadline_s=240)
    assert report["failures"] == []
    assert report["requests"] == 32
    assert all(row["count"] == 8 for row in report["endpoints"].values())
    assert all(0 < row["p50"] <= row["p95"] <= row["p99"] for row in report["endpoints"].values())


@pytest.mark.slow
def test_benchmark_clients_get_the_same_answers_as_a_plain_gradio_client(app_server: str) -> None:
    """The benchmarks' clients (no CA loading on http://, raw HTTP/SSE) answer like gradio_client."""
    import gradio_client

    load_test_module()  # puts benchmarks/ on sys.path
    from app_client import SseClient, make_client

    args = ("the cat sat on the [MASK] .", ["local:tiny-bert"], 3, "")
    expected = gradio_client.Client(app_server, verbose=False).predict(*args, api_name="/fill_mask")
    assert make_client(app_server).predict(*args, api_name="/fill_mask") == expected
    raw = SseClient(app_server)
    try:
        assert raw.predict(*args, api_name="/fill_mask") == [expected]
        with pytest.raises(RuntimeError, match="MASK"):
            raw.predict("no mask here", ["local:tiny-bert"], 3, "", api_name="/fill_mask")
    finally:
        raw.close()
