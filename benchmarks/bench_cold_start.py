"""Cold start and memory: import time of ``app.py``, first answer after launch, RSS with every default model.

Measured in one run, each against a reference from the same run:

1. import time of ``app.py`` (fresh interpreter, median of ``--imports``) against importing the libraries it
   stands on (``gradio``, ``torch``, ``transformers``) alone: the app's own share is the difference;
2. ``python app.py`` launched with ``PLM_WARM_START=1`` (the default: the first tab's models load in the
   background) and ``PLM_WARM_START=0`` (lazy loading, the reference): seconds until the server answers and
   from then until the first Fill-Mask answer through ``gradio_client`` (target: <= 5 s after the server is up);
3. resident memory (RSS) of a process that built the whole UI and loaded the default model of every serving
   task (Fill-Mask, Next Sentence, Attention's eager encoder, Contextual, Classify, text generation) and ran one
   forward pass through each, against the same process before loading any model (target: <= 1.5 GB).

    python benchmarks/bench_cold_start.py [--imports 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from app_client import make_client  # noqa: E402

# task -> (head, attn_implementation) of the models the app serves by default
SERVING = {"fill-mask": ("masked-lm", None), "next-sentence": ("next-sentence", None),
           "attention": ("base", "eager"), "contextual": ("base", None),
           "text-classification": ("sequence-classification", None), "text-generation": ("causal-lm", None)}
MEMORY_SCRIPT = """
import json, resource, sys
sys.path.insert(0, {root!r})
import torch
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
import app
app.build_demo()
before = rss_mb()
from model_utils.manager import get_manager
for task, (head, attn) in {serving!r}.items():
    loaded = get_manager().get(None, head, task=task, attn_implementation=attn)
    with torch.inference_mode():
        loaded.model(**loaded.tokenizer("The cat sat on the mat.", return_tensors="pt"))
after = rss_mb()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"before": before, "after": after, "peak": peak, "models": get_manager().loaded()}}))
"""


def import_seconds(statement: str, repeat: int) -> float:
    """Median wall seconds of ``python -c statement`` in a fresh interpreter."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def launch(warm: bool) -> tuple[float, float]:
    """(seconds until the server answers, seconds from then to the first Fill-Mask answer)."""
    from conftest import free_port

    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", PLM_WARM_START="1" if warm else "0")
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(url + "gradio_api/info", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        up = time.perf_counter()
        make_client(url).predict("Paris is the [MASK] of France.", [""], 5, "", api_name="/fill_mask")
        return up - start, time.perf_counter() - up
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def memory() -> dict:
    import json

    script = MEMORY_SCRIPT.format(root=str(ROOT), serving=SERVING)
    # every model held at once (the default cache keeps 4 (checkpoint, head) pairs)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PLM_WARM_START="0", PLM_CACHE_MAX_MODELS=str(len(SERVING)))
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imports", type=int, default=3, help="fresh-interpreter imports timed")
    parser.add_argument("--only-memory", action="store_true")
    args = parser.parse_args()
    if args.only_memory:
        return print_memory()
    libraries = import_seconds("import gradio, torch, transformers", args.imports)
    app_import = import_seconds("import app", args.imports)
    print(f"import app.py: {app_import:.1f} s; gradio+torch+transformers alone {libraries:.1f} s "
          f"(ratio {app_import / libraries:.2f}x; the app's own modules {app_import - libraries:+.1f} s)")
    for warm in (False, True):
        up, first = launch(warm)
        print(f"PLM_WARM_START={int(warm)}: server up after {up:.1f} s, first Fill-Mask answer {first:.1f} s later"
              f"{'' if not warm else ' (target <= 5 s)'}")
    print_memory()


def print_memory() -> None:
    mem = memory()
    models = ", ".join(f"{m['checkpoint']} {m['head']} {m['approx_mb']} MB" for m in mem["models"])
    print(f"RSS: UI built, no model {mem['before']:.0f} MB; every default model loaded {mem['after']:.0f} MB "
          f"(+{mem['after'] - mem['before']:.0f} MB, ratio {mem['after'] / mem['before']:.2f}x; peak {mem['peak']:.0f} MB;"
          f" target 1536 MB): {models}")


if __name__ == "__main__":
    main()
