"""Generation speed of the app against ``model.generate`` with its KV cache, same model, prompt and run.

For each model (the bundled ``bundled:minilm-causal`` by default; ``--gpt2-sized`` adds a randomly
initialised GPT-2-small-sized decoder, 12 layers of 768, with the MiniLM vocabulary, which runs at the
speed of ``gpt2`` without the Hub), greedy, ``--new-tokens`` tokens every time (the end-of-text token is
forbidden until then on both sides: ``min_new_tokens``), after a warm-up that loads the model:

1. the reference: ``model.generate(ids, do_sample=False, max_new_tokens=N, min_new_tokens=N)``;
2. ``model_utils.generate`` (what the Generate tab runs: our KV-cached loop, which also records each token's
   probability, rank and the model's top alternatives), checked to give the very same tokens;
3. ``model_utils.generate_stream``: seconds until the first token is yielded (prompt included), against
   ``model.generate(max_new_tokens=1)``.

The contenders run in turn (A B A B ...), so a change of load on shared CPUs hits both. It prints the best
and median tokens/s of each, the ratio app / reference (target >= 0.9: the median over rounds of the ratio within
a round, robust to load that comes and goes)
and the first-token latency. ``--app`` also starts ``python app.py`` and measures the same generation
streamed through the ``/generate`` event, as the browser receives it (the first streamed update and the
end, HTTP and queue included), against ``model.generate`` in this process called in turn with it.

    python3 benchmarks/bench_generate.py [--new-tokens 64] [--repeat 5] [--threads 2] [--gpt2-sized] [--app]
    python3 benchmarks/bench_generate.py --model gpt2          # a Hub model in the local cache
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "The weather was lovely this morning, so we walked to the old harbour and"
TARGET = 0.9


def timings(fn, repeat: int) -> tuple[float, float, object]:
    """Best and median seconds of ``repeat`` calls, and the last call's result."""
    return interleaved([fn], repeat)[0][:3]


def interleaved(fns: list, repeat: int) -> list[tuple[float, float, object, list[float]]]:
    """``timings`` of each of ``fns`` and its seconds per call, called in turn ``repeat`` times (A B A B ...):
    on shared CPUs a change of load then hits every contender alike, so their ratio stays fair."""
    walls: list[list[float]] = [[] for _ in fns]
    results: list[object] = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            walls[i].append(time.perf_counter() - start)
    return [(min(w), statistics.median(w), r, w) for w, r in zip(walls, results)]


def paired_ratio(reference_walls: list[float], walls: list[float]) -> float:
    """Median over the rounds of (reference seconds / contender seconds) in the same round: the speed ratio,
    robust to load that comes and goes between rounds (best-of ratios are not: one quiet moment decides)."""
    return statistics.median(r / w for r, w in zip(reference_walls, walls))


def gpt2_sized_checkpoint(root: Path) -> str:
    """Save a random GPT-2-small-sized decoder with the MiniLM WordPiece vocabulary as local:gpt2-sized."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from model_utils.bundled import load_tokenizer

    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, bos_token_id=tokenizer.cls_token_id,
                        eos_token_id=tokenizer.sep_token_id)
    GPT2LMHeadModel(config).eval().save_pretrained(root / "gpt2-sized")
    tokenizer.save_pretrained(root / "gpt2-sized")
    return "local:gpt2-sized"


def bench_model(name: str, new_tokens: int, repeat: int) -> dict:
    """Tokens/s of model.generate and of model_utils.generate on ``name``, and the first-token latencies."""
    import torch

    import model_utils
    from model_utils.generate import encode_prompt, eos_token_ids
    from model_utils.manager import get_manager

    loaded = get_manager().get(name, "causal-lm", task="text-generation")
    ids = torch.tensor([encode_prompt(loaded, PROMPT).ids], device=loaded.device)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    eos = sorted(eos_token_ids(loaded))  # the same end token on both sides (generation_config may not name it)

    def reference(count: int = new_tokens):
        with torch.inference_mode():
            return loaded.model.generate(ids, do_sample=False, max_new_tokens=count, min_new_tokens=count,
                                         pad_token_id=pad, eos_token_id=eos)[0, ids.shape[1]:].tolist()

    def ours():
        return model_utils.generate(PROMPT, name, new_tokens, "greedy", min_new_tokens=new_tokens)

    def first_token():
        stream = model_utils.generate_stream(PROMPT, name, new_tokens, "greedy", min_new_tokens=new_tokens)
        next(stream)
        stream.close()

    reference(), ours()  # warm-up: caches, allocator, lazy imports
    (ref_best, ref_median, expected, ref_walls), (app_best, app_median, record, app_walls) = interleaved(
        [reference, ours], repeat)
    if [t["token_id"] for t in record["tokens"]] != expected:
        raise SystemExit(f"{name}: model_utils.generate and model.generate disagree")
    (first_ref, _, _, _), (first_app, first_median, _, _) = interleaved([lambda: reference(1), first_token], repeat)
    return {"model": name, "params_m": sum(p.numel() for p in loaded.model.parameters()) / 1e6,
            "reference": (new_tokens / ref_best, new_tokens / ref_median),
            "app": (new_tokens / app_best, new_tokens / app_median),
            "first": (first_app, first_median, first_ref), "reference_fn": reference,
            "ratio": paired_ratio(ref_walls, app_walls)}


def start_app(env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False", **env_extra)
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/gradio_api/info", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)


def streamed_generation(url: str, model: str, new_tokens: int) -> tuple[float, float, int]:
    """(seconds to the first streamed update, seconds to the end, tokens) of one ``/generate`` call, read from
    the event stream the way the browser reads it."""
    import httpx

    http = httpx.Client(timeout=300)
    config = http.get(url + "/config").raise_for_status().json()
    event = next(d for d in config["dependencies"] if d.get("api_name") == "generate")
    by_id = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    values = {"gen-model": model, "gen-prompt": PROMPT, "gen-temperature": 1.0, "gen-top-k": 10, "gen-top-p": 1.0,
              "gen-strategy": "greedy", "gen-seed": 0, "gen-max-new": new_tokens}
    session = uuid.uuid4().hex[:11]
    body = {"data": [values.get(by_id.get(i)) for i in event["inputs"]], "fn_index": event["id"],
            "session_hash": session, "event_data": None, "trigger_id": None}
    start = time.perf_counter()
    http.post(url + "/gradio_api/queue/join", json=body).raise_for_status()
    first = None
    with http.stream("GET", url + "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_generating" and first is None:
                first = time.perf_counter() - start
            if message.get("msg") == "process_completed":
                if not message.get("success"):
                    raise SystemExit(f"/generate failed: {message.get('output')}")
                total = time.perf_counter() - start
                record = message["output"]["data"][-1] or {}
                return first or total, total, int(record.get("generated") or new_tokens)
    raise SystemExit("the event stream ended without a result")


def bench_app(model: str, new_tokens: int, repeat: int, env_extra: dict[str, str], reference) -> None:
    """Print tokens/s and the first update of ``/generate`` streamed by a running app, with the ratio against
    ``reference()`` (model.generate in this process, called in turn with the app's requests)."""
    proc, url = start_app({**env_extra, "PLM_DEFAULT_TEXT_GENERATION": model})
    runs: list[tuple[float, float, int]] = []
    try:
        streamed_generation(url, model, new_tokens)  # loads the model
        (ref_best, _, _, ref_walls), _ = interleaved(
            [reference, lambda: runs.append(streamed_generation(url, model, new_tokens))], repeat)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    best = min(runs, key=lambda r: r[1])
    speed = best[2] / best[1]  # the whole request: queue, HTTP and the streamed updates included
    # per token: the app's run may end early at the end-of-text token (the API has no min_new_tokens)
    ratio = paired_ratio([wall / new_tokens for wall in ref_walls], [total / count for _, total, count in runs])
    print(f"  through the app (/generate, streamed): {speed:.1f} tokens/s best, "
          f"{statistics.median(r[2] / r[1] for r in runs):.1f} median; model.generate in turn with it "
          f"{new_tokens / ref_best:.1f} best -> ratio {ratio:.2f} ({'meets' if ratio >= TARGET else 'misses'} the "
          f"{TARGET} target); first update after {min(r[0] for r in runs) * 1000:.0f} ms best, "
          f"{statistics.median(r[0] for r in runs) * 1000:.0f} ms median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled:minilm-causal")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--gpt2-sized", action="store_true", help="also a random GPT-2-small-sized decoder")
    parser.add_argument("--app", action="store_true", help="also through a running app (streamed /generate)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoints = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    os.environ.setdefault("PLM_CHECKPOINTS_DIR", str(checkpoints))
    os.environ.setdefault("PLM_DEVICE", "cpu")
    models = [args.model] + ([gpt2_sized_checkpoint(Path(os.environ["PLM_CHECKPOINTS_DIR"]))] if args.gpt2_sized
                             else [])
    print(f"greedy, {args.new_tokens} new tokens, prompt of {len(PROMPT)} characters, best of {args.repeat}, "
          f"{torch.get_num_threads()} torch threads")
    for name in models:
        result = bench_model(name, args.new_tokens, args.repeat)
        ratio = result["ratio"]
        first_app, first_median, first_ref = result["first"]
        print(f"{name} ({result['params_m']:.0f}M parameters)")
        print(f"  model.generate (KV cache): {result['reference'][0]:.1f} tokens/s best, "
              f"{result['reference'][1]:.1f} median")
        print(f"  model_utils.generate:      {result['app'][0]:.1f} tokens/s best, {result['app'][1]:.1f} median "
              f"-> ratio {ratio:.2f} ({'meets' if ratio >= TARGET else 'misses'} the {TARGET} target)")
        print(f"  first streamed token: {first_app * 1000:.0f} ms best, {first_median * 1000:.0f} ms median "
              f"(model.generate of 1 token: {first_ref * 1000:.0f} ms)")
        if args.app:
            env = {"PLM_CHECKPOINTS_DIR": os.environ["PLM_CHECKPOINTS_DIR"]}
            if args.threads:
                env["OMP_NUM_THREADS"] = str(args.threads)  # the app's torch threads
            bench_app(name, args.new_tokens, args.repeat, env, result["reference_fn"])


if __name__ == "__main__":
    main()
