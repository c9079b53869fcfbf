"""A small class through the app's API (benchmarks/bench_classroom.py, 30 learners instead of 200):
every answer stored exactly once. Latency targets are the benchmark's, not this test's."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_thirty_learners_lose_and_duplicate_nothing(app_server) -> None:
    from bench_classroom import simulate_class

    figures = simulate_class([app_server], 30, spread_s=1.5, think_s=0.5)
    assert figures["errors"] == []
    assert (figures["stored"], figures["lost"], figures["duplicated"]) == (30, 0, 0)
    assert len(figures["submit"]) == 30
