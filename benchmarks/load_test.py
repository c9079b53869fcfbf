"""Load test: N simulated users hit the running app at once through ``gradio_client``.

Each user sends a mix of Fill-Mask, Next Sentence, Classify and Attention requests with inputs
no other request shares, and every answer is checked against its own request (no cross-talk):

* Fill-Mask and Attention carry a unique word pair; the answer must echo that pair
  (the filled sequence / the attention tokens at the right positions);
* Next Sentence and Classify answers must equal the answer to the same input measured
  serially before the load starts (each user gets its own input, so a swapped answer differs).

Reports requests/s and p50/p95/p99 latency per endpoint, with the latency of the same requests sent one at
a time before the load (the reference: "alone", and p50/alone), and exits non-zero on any failed or
mismatched request. Bounded: ``--users`` x ``--requests`` requests and a ``--deadline`` in seconds.

Usage::

    python app.py &                                   # or any running instance
    python benchmarks/load_test.py --url http://127.0.0.1:7860/ --users 32 --requests 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_client import make_client  # noqa: E402  (gradio_client set up for a local server)

# Common English words present in both the bundled and the tests' tiny WordPiece vocabularies.
WORDS = ("cat dog bird mat sofa house car park tree paris france london england city country "
         "movie film book food rain sun day night morning dinner capital").split()
ENDPOINTS = ("fill_mask", "next_sentence", "classify", "attention")


@dataclass
class Request:
    """One planned request: its endpoint, arguments and how to check the answer."""

    endpoint: str
    args: tuple
    check: Callable[[Any], bool]


@dataclass
class Results:
    """Latencies and failures collected from all users (thread-safe appends)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {e: [] for e in ENDPOINTS})
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            if error:
                self.failures.append(f"{endpoint}: {error}")


def word_pair(index: int) -> tuple[str, str]:
    """The index-th distinct ordered pair of different words."""
    n = len(WORDS)
    first, second = divmod(index % (n * (n - 1)), n - 1)
    return WORDS[first], WORDS[second + (second >= first)]


def fill_mask_request(index: int, model: str) -> Request:
    first, second = word_pair(index)
    text = f"the {first} and the {second} sat on the [MASK] ."

    def check(output: dict) -> bool:
        sequence = output["results"][0]["predictions"][0][0]["sequence"]
        return output["text"] == text and f"{first} and the {second}" in sequence

    return Request("fill_mask", (text, [model], 3, ""), check)


def attention_request(index: int, model: str) -> Request:
    first, second = word_pair(index)

    def check(outputs: Any) -> bool:
        dumped = json.dumps(outputs)  # the query picker lists "token (position)"
        return f'"{first} (2)"' in dumped and f'"{second} (5)"' in dumped

    return Request("attention", (model, f"the {first} and the {second}", "", 0, 0, "svg"), check)


def reference_requests(client: Any, users: int, models: dict[str, str]) -> list[tuple[Request, Request]]:
    """Per user, a Next Sentence and a Classify request whose expected answers are measured now."""
    planned = []
    for user in range(users):
        first, second = word_pair(user * 7 + 3)
        pair = (f"the {first} sat in the {second} .", f"then the {second} ate dinner .", models["next_sentence"])
        text = (models["classify"], f"a {first} film about a {second} was very good", "")
        expected_pair = client.predict(*pair, api_name="/next_sentence")["is_next"]
        expected_label = client.predict(*text, api_name="/classify")[0]["confidences"]
        planned.append((
            Request("next_sentence", pair, lambda out, e=expected_pair: abs(out["is_next"] - e) < 1e-5),
            Request("classify", text, lambda out, e=expected_label: _same_confidences(out[0]["confidences"], e)),
        ))
    return planned


def _same_confidences(got: list[dict], expected: list[dict]) -> bool:
    want = {c["label"]: c["confidence"] for c in expected}
    return {c["label"] for c in got} == set(want) and all(
        abs(c["confidence"] - want[c["label"]]) < 1e-5 for c in got)


def user_plan(user: int, requests: int, references: tuple[Request, Request],
              models: dict[str, str]) -> list[Request]:
    """The ``requests`` requests of one user, cycling through the four endpoints."""
    plan = []
    for step in range(requests):
        kind = ENDPOINTS[(user + step) % len(ENDPOINTS)]
        index = user * requests + step
        if kind == "fill_mask":
            plan.append(fill_mask_request(index, models["fill_mask"]))
        elif kind == "attention":
            plan.append(attention_request(index, models["attention"]))
        else:
            plan.append(references[0] if kind == "next_sentence" else references[1])
    return plan


def run_user(url: str, plan: list[Request], results: Results, deadline: float) -> None:
    """Send one user's requests in turn, recording latency and any failure or mismatch."""
    client = make_client(url)
    for request in plan:
        if time.monotonic() > deadline:
            results.failures.append(f"{request.endpoint}: not sent, deadline passed")
            continue
        start = time.perf_counter()
        error = None
        try:
            output = client.predict(*request.args, api_name=f"/{request.endpoint}")
            if not request.check(output):
                error = f"answer does not belong to request {request.args!r}"
        except Exception as err:  # noqa: BLE001 - every failure is counted and reported
            error = f"{type(err).__name__}: {err}"
        results.record(request.endpoint, time.perf_counter() - start, error)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q) - 1))]


def unloaded_latency(url: str, plans: list[list[Request]], rounds: int = 3) -> dict[str, float]:
    """Median seconds of each endpoint's requests sent one at a time before the load: the reference."""
    client = make_client(url)
    samples: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
    for request in (r for plan in plans for r in plan):
        if len(samples[request.endpoint]) < rounds:
            start = time.perf_counter()
            client.predict(*request.args, api_name=f"/{request.endpoint}")
            samples[request.endpoint].append(time.perf_counter() - start)
    return {e: statistics.median(v) if v else 0.0 for e, v in samples.items()}


def run_load(url: str, users: int, requests: int, models: dict[str, str], deadline_s: float = 600) -> dict:
    """Run the load test; returns {"wall_s", "requests", "rps", "failures", "endpoints": {...}}."""
    references = reference_requests(make_client(url), users, models)
    plans = [user_plan(u, requests, references[u], models) for u in range(users)]
    alone = unloaded_latency(url, plans)
    results = Results()
    deadline = time.monotonic() + deadline_s
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=users) as pool:
        for future in as_completed([pool.submit(run_user, url, p, results, deadline) for p in plans]):
            future.result()
    wall = time.perf_counter() - start
    total = sum(len(v) for v in results.latencies.values())
    endpoints = {name: {"count": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95),
                        "p99": percentile(v, 99), "rps": len(v) / wall, "alone": alone[name]}
                 for name, v in results.latencies.items()}
    return {"wall_s": wall, "requests": total, "rps": total / wall, "failures": results.failures,
            "endpoints": endpoints}


def print_report(report: dict, users: int) -> None:
    print(f"{users} users, {report['requests']} requests in {report['wall_s']:.1f} s "
          f"= {report['rps']:.2f} requests/s, {len(report['failures'])} failed")
    print(f"{'endpoint':<15}{'count':>6}{'req/s':>8}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'alone s':>9}"
          f"{'p50/alone':>10}")
    for name, row in report["endpoints"].items():
        ratio = row["p50"] / row["alone"] if row["alone"] else float("nan")
        print(f"{name:<15}{row['count']:>6}{row['rps']:>8.2f}{row['p50']:>8.2f}{row['p95']:>8.2f}{row['p99']:>8.2f}"
              f"{row['alone']:>9.2f}{ratio:>9.1f}x")
    for failure in report["failures"][:20]:
        print("FAILED", failure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860/", help="running app")
    parser.add_argument("--users", type=int, default=32, help="simultaneous simulated users")
    parser.add_argument("--requests", type=int, default=4, help="requests per user")
    parser.add_argument("--deadline", type=float, default=600, help="seconds before unsent requests fail")
    parser.add_argument("--model", default="", help="checkpoint for Fill-Mask/Next Sentence/Attention "
                        "('' = the app's default)")
    parser.add_argument("--classifier", default="", help="checkpoint for Classify ('' = the app's default)")
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    args = parser.parse_args()
    models = {"fill_mask": args.model, "next_sentence": args.model, "attention": args.model,
              "classify": args.classifier}
    report = run_load(args.url, args.users, args.requests, models, args.deadline)
    print_report(report, args.users)
    if args.json:
        print(json.dumps(report))
    raise SystemExit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
