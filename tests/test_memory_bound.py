"""Memory bound: five different checkpoints requested in turn with PLM_CACHE_MAX_MODELS=2 keep
two loaded, the evicted models are freed, the process RSS stays within a stated bound, and
unloading frees the rest.

Two views: the model manager in a fresh subprocess (so the RSS belongs to this scenario only,
and weak references prove the evicted models are gone), and the running app through its API
(Fill-Mask on each checkpoint, the Models panel's status and its Unload button).

Stated bound: once the cache is full, loading three more ~50 MB models adds less than one
model's size to the RSS, and unloading gives back at least half of the two models' size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ADMIN_TOKEN, ROOT, build_tiny_model, running_app

pytestmark = pytest.mark.slow

SCENARIO = r"""
import gc, json, resource, sys, weakref
import psutil
from model_utils.manager import get_manager

def rss_mb():
    return psutil.Process().memory_info().rss / 2**20

manager, refs, rss = get_manager(), [], {}
for i in range(5):
    loaded = manager.get(f"local:m{i}", "masked-lm")
    refs.append(weakref.ref(loaded.model))
    del loaded
    gc.collect()
    rss[i] = rss_mb()
report = {"rss": rss, "loaded": [m["checkpoint"] for m in manager.loaded()],
          "model_mb": manager.loaded()[0]["approx_mb"], "alive_before_unload": [r() is not None for r in refs]}
manager.unload()
gc.collect()
report["alive_after_unload"] = [r() is not None for r in refs]
report["rss_after_unload"] = rss_mb()
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def five_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("five")
    for i in range(5):
        build_tiny_model(folder / f"m{i}", "bert-mlm", seed=i, hidden_size=512, num_hidden_layers=4,
                         num_attention_heads=8, intermediate_size=2048)  # ~50 MB: measurable RSS
    return folder


def test_five_checkpoints_with_a_cache_of_two(five_checkpoints: Path) -> None:
    pytest.importorskip("psutil")
    tmp_path = five_checkpoints
    env = dict(os.environ, PLM_CHECKPOINTS_DIR=str(tmp_path), PLM_CACHE_MAX_MODELS="2",
               PLM_DEVICE="cpu", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", SCENARIO], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    rss = {int(k): v for k, v in report["rss"].items()}
    model_mb = report["model_mb"]
    assert model_mb > 40
    assert report["loaded"] == ["local:m3", "local:m4"]
    assert report["alive_before_unload"] == [False, False, False, True, True]
    assert report["alive_after_unload"] == [False] * 5
    # Stated bound: after the cache is full (2 models), three more loads add < 1 model of RSS.
    assert rss[4] - rss[1] < model_mb, rss
    assert report["rss_after_unload"] < rss[4], (report["rss_after_unload"], rss)


def test_app_memory_stays_bounded_and_unload_frees_it(five_checkpoints: Path, tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    gradio_client = pytest.importorskip("gradio_client")
    with running_app(tmp_path / "app.log", PLM_CHECKPOINTS_DIR=str(five_checkpoints),
                     PLM_CACHE_MAX_MODELS="2", PLM_DEFAULT_FILL_MASK="local:m0",
                     PLM_ADMIN_TOKEN=ADMIN_TOKEN) as (url, proc):
        server = psutil.Process(proc.pid)
        client = gradio_client.Client(url, verbose=False)
        rss = {}
        for i in range(5):
            output = client.predict("the cat sat on the [MASK] .", [f"local:m{i}"], 3, "",
                                    api_name="/fill_mask")
            assert output["results"][0]["model"] == f"local:m{i}"
            rss[i] = server.memory_info().rss / 2**20
        status, table, _ = client.predict(api_name="/models_status")
        loaded = [row[0] for row in table["data"]]
        assert sorted(loaded) == ["local:m3", "local:m4"]
        assert "2 of at most 2 models" in status
        model_mb = float(table["data"][0][4])
        assert model_mb > 40
        assert rss[4] - rss[1] < model_mb, rss
        status, table, _ = client.predict("", ADMIN_TOKEN, api_name="/unload_models")
        assert not [row for row in table["data"] if row and row[0]], table
        rss_after = server.memory_info().rss / 2**20
        assert rss[4] - rss_after > model_mb, (rss, rss_after)
        print(f"\nRSS MB after each load: {rss}; after unload: {rss_after:.0f}; one model {model_mb} MB")
