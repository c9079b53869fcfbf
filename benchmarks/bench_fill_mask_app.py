"""Benchmark: Fill-Mask through the running app (gradio_client) vs ``pipeline("fill-mask")``.

Measured in one run on the same model and texts:

* cold start: seconds from ``python app.py`` to the server answering, and to the first
  answered Fill-Mask request (model loaded lazily on that request);
* latency at one client: median app round trip / median direct pipeline call (target <= 1.5);
* throughput: 16 concurrent clients vs one client sending the same requests serially
  (target >= 6x, issue 18; helped by the batched ``fill_mask`` event).

Usage::

    python benchmarks/bench_fill_mask_app.py                  # default model (bundled offline)
    python benchmarks/bench_fill_mask_app.py --model local:my-checkpoint --requests 64
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from app_client import SseClient, make_client  # noqa: E402

TEXTS = [
    "Paris is the [MASK] of France, and it is famous for its museums and cafes.",
    "After a long day at work she was too [MASK] to cook, so we ordered a pizza.",
    "The children played in the [MASK] until the sun went down behind the hills.",
    "He opened the door, looked outside and saw that it was [MASK] heavily again.",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(model: str | None, port: int) -> tuple[subprocess.Popen, float, str]:
    """Launch app.py; returns (process, seconds until the server answers, url)."""
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False")
    if model:
        env["PLM_DEFAULT_FILL_MASK"] = model
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=2):
                return proc, time.perf_counter() - start, url
        except OSError:
            time.sleep(0.2)


def pipeline_latency(model: str | None, rounds: int) -> tuple[float, str]:
    """Median seconds of a direct pipeline call on the same model (loaded the app's way)."""
    from transformers import pipeline

    from model_utils.manager import get_manager

    loaded = get_manager().get(model, "masked-lm", task="fill-mask")
    fill = pipeline("fill-mask", model=loaded.model, tokenizer=loaded.tokenizer, device=loaded.device)
    texts = [t.replace("[MASK]", loaded.tokenizer.mask_token) for t in TEXTS]
    for text in texts:
        fill(text, top_k=5)
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        fill(texts[i % len(texts)], top_k=5)
        times.append(time.perf_counter() - start)
    return statistics.median(times), loaded.checkpoint


def app_latency(url: str, model: str, rounds: int, raw: bool = False) -> list[float]:
    """Seconds of each of ``rounds`` serial requests from one client (raw: :class:`SseClient`)."""
    client = SseClient(url) if raw else make_client(url)
    client.predict(TEXTS[0], [model], 5, "", api_name="/fill_mask")  # creates the server session
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        client.predict(TEXTS[i % len(TEXTS)], [model], 5, "", api_name="/fill_mask")
        times.append(time.perf_counter() - start)
    return times


def concurrent_throughput(url: str, model: str, clients: int, requests: int) -> float:
    """Requests per second with ``clients`` clients sending ``requests`` in total at once."""
    pool = [make_client(url) for _ in range(clients)]
    per_client = max(1, requests // clients)
    errors: list[BaseException] = []
    for client in pool:  # a user's first request creates its server session: not steady state
        client.predict(TEXTS[0], [model], 5, "", api_name="/fill_mask")

    def work(client: Any, offset: int) -> None:
        try:
            for i in range(per_client):
                client.predict(TEXTS[(offset + i) % len(TEXTS)], [model], 5, "", api_name="/fill_mask")
        except BaseException as err:  # reported after the run
            errors.append(err)

    threads = [threading.Thread(target=work, args=(c, n)) for n, c in enumerate(pool)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} concurrent requests failed: {errors[0]}")
    return per_client * clients / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the app's Fill-Mask default)")
    parser.add_argument("--requests", type=int, default=48, help="requests per throughput measurement")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=30, help="latency samples")
    args = parser.parse_args()

    proc, ready_s, url = start_app(args.model, free_port())
    try:
        first_start = time.perf_counter()
        make_client(url).predict(TEXTS[0], [args.model or ""], 5, "", api_name="/fill_mask")
        first_s = ready_s + time.perf_counter() - first_start
        ref_latency, model = pipeline_latency(args.model, args.rounds)
        app_times = app_latency(url, model, args.rounds)
        raw_times = app_latency(url, model, args.rounds, raw=True)
        serial_rps = 1 / statistics.mean(app_times)
        concurrent_rps = concurrent_throughput(url, model, args.clients, args.requests)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    app_median = statistics.median(app_times)
    print(f"model: {model}  ({len(TEXTS)} texts of ~20 tokens, top_k=5, one mask)")
    print(f"cold start: server up after {ready_s:.1f} s, first Fill-Mask answered after {first_s:.1f} s")
    print(f"latency, pipeline('fill-mask') direct: {ref_latency * 1000:.1f} ms (median of {args.rounds})")
    print(f"latency, app via gradio_client:       {app_median * 1000:.1f} ms (median of {args.rounds})")
    print(f"latency, app via the HTTP/SSE queue API (as the browser, no polling): "
          f"{statistics.median(raw_times) * 1000:.1f} ms")
    print(f"latency ratio app / pipeline: {app_median / ref_latency:.2f}x via gradio_client, "
          f"{statistics.median(raw_times) / ref_latency:.2f}x via HTTP/SSE (target <= 1.5x; "
          f"gradio_client polls every 50 ms, see benchmarks/app_client.py)")
    print(f"throughput, 1 client serial:     {serial_rps:.1f} req/s")
    print(f"throughput, {args.clients} concurrent clients: {concurrent_rps:.1f} req/s")
    print(f"throughput ratio concurrent / serial: {concurrent_rps / serial_rps:.2f}x (target >= 6x)")


if __name__ == "__main__":
    main()
