"""Classroom load: N simulated learners join one room and answer one question, through the app's API.

Each learner is one browser-like session (the queue API the page uses, :class:`app_client.SseClient`):
it opens the page (its first request), types a nickname, joins, "thinks" for a moment and submits. Learners arrive spread over ``--spread`` seconds, all
at once in threads. Printed: how many answers were stored (from the instructor's CSV export: 0
lost, 0 duplicated is the target), the wall time, p50/p95 latency of joins and submits, and the
same number of submits made directly on the storage layer in this process, on the same database,
as the reference (``ratio`` = app p95 / direct p95).

    python benchmarks/bench_classroom.py --learners 200                       # one process, SQLite
    python benchmarks/bench_classroom.py --learners 200 --processes 2 \\
        --db postgresql://plm_test:plm_test@127.0.0.1/plm_test               # two processes, PostgreSQL

Targets (issue 19): 200 learners within 10 s, p95 submit ≤ 1 s on 2 cores, in both set-ups.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import csv
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
from app_client import SseClient, api_indexes, make_client  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_apps(count: int, env: dict[str, str], log_dir: Path) -> Iterator[list[str]]:
    """``count`` app processes (``python app.py``) with ``env`` added; yields their URLs; stops them."""
    procs, urls = [], []
    try:
        for index in range(count):
            port = free_port()
            log = (log_dir / f"app-{index}.log").open("w")
            procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "app.py")], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                     "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **env}))
            urls.append(f"http://127.0.0.1:{port}/")
        for url, proc in zip(urls, procs):
            _wait(url, proc)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "gradio_api/info", timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not start in {timeout} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def simulate_class(urls: list[str], learners: int, spread_s: float = 3.0, think_s: float = 1.0,
                   seed: int = 0) -> dict:
    """One room on ``urls[0]``'s instructor, ``learners`` learners spread over ``urls``; returns the figures."""
    teacher = make_client(urls[0])
    room, _, _ = teacher.predict(api_name="/classroom_create")
    item = teacher.predict("next-sentence", "I was hungry.", "So I cooked dinner.", "", 0, 0, "", 0,
                           api_name="/classroom_push")
    with httpx.Client() as http:
        indexes = {url: api_indexes(http, url) for url in urls}
    rng = random.Random(seed)
    plan = [(i, urls[i % len(urls)], rng.uniform(0, spread_s), rng.uniform(0, think_s)) for i in range(learners)]
    start = time.perf_counter()

    def learner(args: tuple[int, str, float, float]) -> tuple[float, float, float, str | None]:
        index, url, arrive, think = args
        time.sleep(max(0.0, arrive - (time.perf_counter() - start)))
        client = SseClient(url, timeout=120, fn_index=indexes[url])
        try:
            # Opening the page: the browser's first request creates the Gradio session (and its state),
            # then the learner types a nickname.
            t0 = time.perf_counter()
            client.predict(None, None, api_name="classroom_poll")
            opened = time.perf_counter() - t0
            time.sleep(think)
            t0 = time.perf_counter()
            client.predict(room["code"], f"learner {index}", False, api_name="classroom_join")
            joined = time.perf_counter() - t0
            time.sleep(think)
            t0 = time.perf_counter()
            client.predict(rng.choice(["IsNext", "NotNext"]), item["id"], None, api_name="classroom_answer")
            return opened, joined, time.perf_counter() - t0, None
        except Exception as err:  # noqa: BLE001 - counted and shown
            return float("nan"), float("nan"), float("nan"), str(err)[:200]
        finally:
            client.close()

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    with concurrent.futures.ThreadPoolExecutor(learners) as pool:
        results = list(pool.map(learner, plan))
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = sum(getattr(cpu_after, f) - getattr(cpu_before, f) for f in ("ru_utime", "ru_stime"))
    exported = teacher.predict(api_name="/classroom_export")
    rows = [r for r in csv.DictReader(open(exported, encoding="utf-8")) if r["learner"]]
    names = [r["learner"] for r in rows]
    errors = [e for *_, e in results if e]
    return {"code": room["code"], "item": item["id"], "learners": learners, "wall_s": wall, "client_cpu_s": client_cpu,
            "stored": len(rows), "duplicated": len(names) - len(set(names)),
            "lost": learners - len(set(names)), "errors": errors,
            "open": [o for o, _, _, e in results if not e], "join": [j for _, j, _, e in results if not e],
            "submit": [s for _, _, s, e in results if not e]}


def direct_submits(database: str, learners: int, threads: int = 32) -> list[float]:
    """Reference: the same number of answers through the storage layer in this process (same database)."""
    from classroom import Classroom, make_engine

    engine = make_engine(database)
    service = Classroom(engine, max_learners=learners)
    room = service.create_room()
    tokens = [service.join(room["code"], f"direct {i}")["token"] for i in range(learners)]
    item = service.push(room["code"], room["secret"], "next-sentence", {"text": "A.", "second": "B."}, "stub")

    def submit(token: str) -> float:
        t0 = time.perf_counter()
        service.answer(token, item["id"], "IsNext")
        return time.perf_counter() - t0

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        latencies = list(pool.map(submit, tokens))
    engine.dispose()
    return latencies


def report(figures: dict, direct: list[float], label: str) -> None:
    submit = figures["submit"]
    print(f"== {label}: {figures['learners']} learners, one room, one question")
    print(f"answers stored {figures['stored']} · lost {figures['lost']} · duplicated {figures['duplicated']}"
          f" · failed requests {len(figures['errors'])} {figures['errors'][:3]}")
    print(f"wall time (first arrival to last answer) {figures['wall_s']:.2f} s; the simulated learners "
          f"themselves used {figures['client_cpu_s']:.1f} CPU-s of it, load average {os.getloadavg()[0]:.1f}")
    for step, what in (("open", "page opened (new session)"), ("join", "join")):
        values = figures[step]
        print(f"{what}: p50 {statistics.median(values) * 1000:.0f} ms · p95 {percentile(values, .95) * 1000:.0f} ms")
    print(f"submit: p50 {statistics.median(submit) * 1000:.0f} ms · p95 {percentile(submit, .95) * 1000:.0f} ms"
          f" · max {max(submit) * 1000:.0f} ms")
    print(f"direct storage submit (reference, same database) p50 {statistics.median(direct) * 1000:.1f} ms"
          f" · p95 {percentile(direct, .95) * 1000:.1f} ms")
    print(f"ratio app/direct p95 submit: {percentile(submit, .95) / percentile(direct, .95):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=200)
    parser.add_argument("--processes", type=int, default=1, help="app processes; learners alternate between them")
    parser.add_argument("--db", default="", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--spread", type=float, default=8.0, help="seconds over which learners arrive")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-classroom-") as tmp:
        database = args.db or f"sqlite:///{tmp}/classroom.sqlite3"
        env = {"PLM_CLASSROOM_DB": database, "PLM_DATA_DIR": tmp, "PLM_QUEUE_MAX_SIZE": str(4 * args.learners),
               "PLM_CLASSROOM_MAX_LEARNERS": str(args.learners + 10)}
        with running_apps(args.processes, env, Path(tmp)) as urls:
            simulate_class(urls, 5, spread_s=0.5, think_s=0.1)  # warm-up: first requests, connections
            figures = simulate_class(urls, args.learners, spread_s=args.spread)
        direct = direct_submits(database, args.learners)
    kind = database.split(":", 1)[0].split("+")[0]
    report(figures, direct, f"{args.processes} process(es), {kind}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
