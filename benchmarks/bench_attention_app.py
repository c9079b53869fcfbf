"""The Attention tab's answer as a user gets it: server time, bytes on the wire, time through ``gradio_client``.

At ``--tokens`` tokens (128 by default) on the default Attention model (bundled MiniLM), in one run:

1. server time of the tab's handler for the default view (heatmap of one head), each input new (the forward
   pass included) and the same input again (the cached forward pass reused), against the eager forward pass
   with attentions alone (the reference: what no answer can be faster than);
2. bytes of the ``/attention`` answer read off the event stream the browser reads, against the full attention
   weights as JSON (the reference: what the answer carried before it became light, 12.8 MB at 128 tokens);
3. time of ``/attention`` through ``gradio_client`` (warm: model loaded, new input each call) and of one full
   bertviz model view drawn on demand by the handler that runs when its sub-tab is opened.

    python benchmarks/bench_attention_app.py [--tokens 128] [--repeat 8] [--url http://127.0.0.1:7860/]

Without ``--url`` it starts ``python app.py`` on a free port (offline) and stops it at the end.
Targets (issue 18): server time <= 250 ms, answer <= 1 MB, <= 0.6 s through gradio_client.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from app_client import api_indexes, make_client  # noqa: E402

WORDS = "cat dog bird mat sofa house car park tree city country movie film book food rain sun day night".split()


def text_of_tokens(tokenizer, tokens: int, variant: int) -> str:
    """A text of exactly ``tokens`` tokens (special tokens included), different for each ``variant``."""
    first, second, third = (WORDS[(variant // len(WORDS) ** k) % len(WORDS)] for k in range(3))
    sentence = f"the {first} and the {second} with a {third} " \
               f"watched the quick brown fox jump over the lazy dog near the warm window . "
    ids = tokenizer(sentence * (tokens // 8 + 2), add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[: tokens - 2])


def load_attention_model(checkpoint: str | None):
    """The Attention tab's model (eager attention) from the app's model cache."""
    from model_utils.manager import get_manager

    return get_manager().get(checkpoint, "base", task="attention", attn_implementation="eager")


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def server_side(texts: list[str]) -> dict[str, float]:
    """Median ms of the handler (default view) on new inputs, on a repeated input, and the forward alone."""
    import torch

    from demo import attention_tab as tab
    from model_utils.attention import FORWARD_CACHE

    def handler(text: str) -> float:
        start = time.perf_counter()
        tab.run_attention("", text, "", 0, 0, "png", tab.DEFAULT_VIEW)
        return time.perf_counter() - start

    handler(texts[-1])  # loads the model
    new = [handler(text) for text in texts[:-1]]
    cached = [handler(texts[0]) for _ in texts[:-1]]
    loaded = load_attention_model(None)
    forward = []
    for text in texts[:-1]:
        enc = loaded.tokenizer(text, return_tensors="pt")
        start = time.perf_counter()
        with torch.inference_mode():
            loaded.model(**enc, output_attentions=True)
        forward.append(time.perf_counter() - start)
    FORWARD_CACHE.clear()
    return {"new": median_ms(new), "cached": median_ms(cached), "forward": median_ms(forward)}


def answer_bytes(url: str, text: str) -> int:
    """Bytes of the ``/attention`` completion message on the queue's event stream (what the browser reads)."""
    with httpx.Client(timeout=300) as http:
        index = api_indexes(http, url)["attention"]
        session = os.urandom(6).hex()
        # every input of the event, the view state (kept by the server) as None
        body = {"data": ["", text, "", 0, 0, "png", None], "fn_index": index, "session_hash": session}
        http.post(url.rstrip("/") + "/gradio_api/queue/join", json=body).raise_for_status()
        with http.stream("GET", url.rstrip("/") + "/gradio_api/queue/data", params={"session_hash": session}) as s:
            for line in s.iter_lines():
                if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                    return len(line.encode())
    raise RuntimeError("no answer")


def client_times(url: str, texts: list[str]) -> list[float]:
    client = make_client(url)
    client.predict("", texts[-1], "", 0, 0, "png", api_name="/attention")  # session and model warm
    times = []
    for text in texts[:-1]:
        start = time.perf_counter()
        client.predict("", text, "", 0, 0, "png", api_name="/attention")
        times.append(time.perf_counter() - start)
    return times


def full_weights_bytes(text: str) -> int:
    from model_utils.attention import attention

    return len(json.dumps(attention(text)).encode())


def model_view_ms(text: str) -> float:
    """The full bertviz model view drawn on demand (its sub-tab opened) after a run, in ms."""
    from demo import attention_tab as tab

    outputs = tab.run_attention("", text, "", 0, 0, "png", tab.DEFAULT_VIEW)
    state = outputs[0]
    start = time.perf_counter()
    tab.open_view("attn-model-view")(state, 0, 0, "png")
    return (time.perf_counter() - start) * 1000


@contextlib.contextmanager
def app_url(url: str | None, tokens: int):
    if url:
        yield url
        return
    from conftest import running_app  # tests/conftest.py: python app.py on a free port

    with running_app(Path("/tmp/bench-attention-app.log"), PLM_MAX_ATTENTION_TOKENS=str(tokens)) as (started, _):
        yield started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--url", default=None, help="a running app (else one is started)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["PLM_MAX_ATTENTION_TOKENS"] = str(max(args.tokens, 128))
    sys.path.insert(0, str(ROOT / "tests"))

    tokenizer = load_attention_model(None).tokenizer
    texts = [text_of_tokens(tokenizer, args.tokens, i) for i in range(args.repeat + 1)]
    assert len(tokenizer(texts[0])["input_ids"]) == args.tokens
    server = server_side(texts)
    reference_bytes = full_weights_bytes(texts[0])
    view_ms = model_view_ms(texts[1])
    with app_url(args.url, args.tokens) as url:
        size = answer_bytes(url, texts[0])
        # inputs the server has not seen (its forward cache would answer them at once)
        client = client_times(url, [text_of_tokens(tokenizer, args.tokens, i + os.getpid()) for i in
                                    range(args.repeat + 1)])
    print(f"{args.tokens} tokens, model {load_attention_model(None).checkpoint}")
    print(f"server time, default view, new input:    {server['new']:7.1f} ms  "
          f"({server['new'] / server['forward']:.2f}x the forward pass, {server['forward']:.1f} ms; target 250 ms)")
    print(f"server time, default view, cached input: {server['cached']:7.1f} ms")
    print(f"/attention answer: {size / 1e6:.3f} MB; full weights as JSON {reference_bytes / 1e6:.2f} MB "
          f"(answer is {size / reference_bytes:.3f}x of it; target 1 MB)")
    print(f"/attention via gradio_client, warm, new input: median {statistics.median(client):.2f} s, "
          f"best {min(client):.2f} s ({statistics.median(client) * 1000 / server['new']:.1f}x the server time; "
          f"target 0.6 s)")
    print(f"full bertviz model view on demand (sub-tab opened): {view_ms:.0f} ms")


if __name__ == "__main__":
    main()
