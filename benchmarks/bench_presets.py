"""The training presets' real duration against the estimate the app shows before they start.

Each preset of the Fine-tune tab (on the bundled sample reviews, bundled MiniLM base) and of the Pretrain tab
(on the bundled corpus sample) is planned exactly as the app plans it, its estimate printed (what a fresh app
shows: the calibration's defaults), then run from start to end (loading, tokenising, training, evaluating,
saving into a scratch checkpoints folder) and timed. The ratio measured / estimated is the reference check;
``pace`` is the seconds per GFLOP times CPU threads that this run implies on free cores (its time divided
by the contention the estimate assumed from the load average), the figure ``model_utils.duration.DEFAULTS``
holds.

    python benchmarks/bench_presets.py                       # both tabs' quick presets (a few minutes)
    python benchmarks/bench_presets.py --presets quick full  # and the full ones (tens of minutes on 2 cores)
    python benchmarks/bench_presets.py --tabs finetune
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def finetune_plan(name: str):
    """The Fine-tune tab's plan of preset ``name`` on the bundled sample (as demo.finetune_tab builds it)."""
    from demo import finetune_tab

    return finetune_tab.plan_of(finetune_tab.preset_form(name, use_sample=True))


def pretrain_plan(name: str):
    """The Pretrain tab's plan of preset ``name`` on the bundled corpus sample (as demo.pretrain_tab builds it)."""
    from demo import pretrain_tab

    return pretrain_tab.plan_of(pretrain_tab.preset_form(name, use_bundled=True))


def run(tab: str, name: str) -> dict:
    """Plan, estimate and run one preset; returns the figures printed."""
    from model_utils import duration, finetune, pretrain_session

    duration._calibration = duration.Calibration()  # the estimate a fresh app shows
    checked = finetune_plan(name) if tab == "finetune" else pretrain_plan(name)
    estimate = checked.estimate()
    shown = estimate.seconds
    load = os.getloadavg()[0]
    started = time.perf_counter()
    if tab == "finetune":
        with tempfile.TemporaryDirectory() as scratch:
            result = finetune.run_plan(checked, scratch)
        quality = f"validation accuracy {result['metrics'].get('accuracy', float('nan')):.3f}"
    else:
        result = pretrain_session.run_plan(checked)
        quality = f"held-out MLM loss {result['before']['metrics']['mlm_loss']:.3f} -> " \
                  f"{result['after']['metrics']['mlm_loss']:.3f}"
    seconds = time.perf_counter() - started
    checked.release()
    pace, fixed = duration.DEFAULTS[(checked.workload.kind, "cpu")]
    threads = duration.where()[1]
    implied = (seconds - fixed) / checked.workload.gflop * threads / estimate.contention  # on free cores
    return {"tab": tab, "preset": name, "steps": checked.workload.steps, "shown": shown, "measured": seconds,
            "load": (load, os.getloadavg()[0]), "contention": estimate.contention, "pace": implied, "default_pace": pace, "quality": quality}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", nargs="+", default=["finetune", "pretrain"], choices=["finetune", "pretrain"])
    parser.add_argument("--presets", nargs="+", default=["quick"], choices=["quick", "full"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as checkpoints:
        os.environ["PLM_CHECKPOINTS_DIR"] = checkpoints  # saved checkpoints go to a scratch folder
        for name in args.presets:
            for tab in args.tabs:
                r = run(tab, name)
                print(f"{r['tab']:9s} {r['preset']:6s} {r['steps']:5d} steps: measured {r['measured']:7.1f} s, "
                      f"estimate shown {r['shown']:7.1f} s, ratio {r['measured'] / r['shown']:.2f}; implied pace "
                      f"{r['pace']:.4f} (default {r['default_pace']:.4f}); load {r['load'][0]:.1f}->{r['load'][1]:.1f} "
                      f"(estimate stretched x{r['contention']:.2f}); "
                      f"{r['quality']}", flush=True)


if __name__ == "__main__":
    main()
