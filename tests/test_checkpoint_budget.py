"""The checkpoints folder's disk budget, ownership and deletion (issue 20, item 3)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from model_utils import checkpoints as C
from model_utils.errors import UserError

MB = 2**20


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(folder))
    monkeypatch.setenv("PLM_CHECKPOINTS_MAX_MB", "10")
    monkeypatch.setenv("PLM_CHECKPOINTS_MAX_COUNT", "3")
    monkeypatch.setenv("PLM_ADMIN_TOKEN", "s3cret")
    return folder


def make(root: Path, name: str, megabytes: float, owner: str | None = "session-a", age: float = 0.0) -> Path:
    """A checkpoint folder of about ``megabytes``, marked as made from the app by ``owner`` (None: the CLI,
    "hand": no marker at all), created ``age`` seconds ago."""
    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * int(megabytes * MB))
    if owner != "hand":
        C.write_marker(folder, owner, "fine-tune")
        marker = json.loads((folder / C.MARKER).read_text())
        marker["created"] = time.time() - age
        (folder / C.MARKER).write_text(json.dumps(marker))
    return folder


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_oldest_app_checkpoints_make_room_and_others_are_never_removed(root: Path) -> None:
    make(root, "by-hand", 2, owner="hand", age=500)
    make(root, "from-cli", 2, owner=None, age=400)
    make(root, "old", 2, age=300)
    make(root, "middle", 2, age=200)
    make(root, "new", 1, age=100)
    assert C.make_room(1 * MB) == ["old"]  # 9 MB used: 1 MB more needs 1 MB freed
    assert names(root) == ["by-hand", "from-cli", "middle", "new"]
    assert C.make_room(int(5.5 * MB)) == ["middle", "new"]  # only app-made ones go, oldest first
    assert names(root) == ["by-hand", "from-cli"]


def test_the_count_limit_keeps_at_most_n_app_checkpoints(root: Path) -> None:
    for i, age in enumerate((30, 20, 10)):
        make(root, f"c{i}", 0.1, age=age)
    make(root, "from-cli", 0.1, owner=None, age=40)
    assert C.make_room(0) == ["c0"]  # a fourth app checkpoint is coming: three at most
    assert names(root) == ["c1", "c2", "from-cli"]


def test_a_run_that_could_never_fit_is_refused_before_it_starts(root: Path) -> None:
    make(root, "by-hand", 7, owner="hand")
    make(root, "app", 2)
    C.check_budget(int(2.9 * MB))  # fits once the app's own checkpoint is removed
    with pytest.raises(UserError) as caught:
        C.check_budget(4 * MB)
    assert caught.value.code == "checkpoints.too_big" and "PLM_CHECKPOINTS_MAX_MB" in str(caught.value)
    assert names(root) == ["app", "by-hand"]  # a refusal removes nothing


def test_publishing_marks_the_checkpoint_and_reports_what_was_removed(root: Path) -> None:
    make(root, "old", 6, age=100)
    removed: list[str] = []
    with C.atomic_checkpoint("fresh", owner="session-b", kind="pretrain", removed=removed) as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_bytes(b"\0" * 5 * MB)
    assert removed == ["old"] and names(root) == ["fresh"]
    marker = json.loads((root / "fresh" / C.MARKER).read_text())
    assert marker["origin"] == "app" and marker["kind"] == "pretrain"
    assert marker["owner"] == C.owner_tag("session-b") != "session-b"  # the session id itself is not stored


def test_a_checkpoint_too_big_for_the_budget_is_not_published(root: Path) -> None:
    with pytest.raises(UserError):
        with C.atomic_checkpoint("huge", owner="s") as tmp:
            (tmp / "model.safetensors").write_bytes(b"\0" * 11 * MB)
    assert names(root) == []  # no leftover, hidden or not


def test_sessions_delete_their_own_checkpoints_and_admins_any_app_made_one(root: Path) -> None:
    make(root, "mine", 0.1, owner="session-a")
    make(root, "theirs", 0.1, owner="session-b")
    make(root, "by-hand", 0.1, owner="hand")
    assert C.deletable_by("session-a") == ["mine"]
    assert C.deletable_by(None) == [] and C.deletable_by("session-c") == []
    with pytest.raises(UserError, match="not made in this browser session"):
        C.delete_checkpoint("theirs", "session-a")
    with pytest.raises(UserError, match="not made from the app"):
        C.delete_checkpoint("by-hand", "session-a", admin=True)
    with pytest.raises(UserError, match="no checkpoint named"):
        C.delete_checkpoint("missing", "session-a")
    with pytest.raises(ValueError, match="Invalid checkpoint name"):
        C.delete_checkpoint("../mine", "session-a")
    assert C.delete_checkpoint("local:mine", "session-a") == "mine"
    assert C.delete_checkpoint("theirs", None, admin=C.is_admin("s3cret")) == "theirs"
    assert names(root) == ["by-hand"]


def test_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_ADMIN_TOKEN", "s3cret")
    assert C.is_admin("s3cret") and not C.is_admin("s3cre") and not C.is_admin("") and not C.is_admin(None)
    monkeypatch.delenv("PLM_ADMIN_TOKEN")
    assert not C.is_admin("") and not C.is_admin(None) and not C.is_admin("anything")


def test_hidden_leftovers_do_not_count_and_sizes_are_read(root: Path) -> None:
    (root / ".incomplete-x-123").mkdir()
    (root / ".incomplete-x-123" / "w").write_bytes(b"\0" * 9 * MB)
    make(root, "app", 1)
    assert [(c.name, round(c.bytes / MB), c.from_app) for c in C.saved_checkpoints()] == [("app", 1, True)]
    C.check_budget(8 * MB)


def test_estimates_before_a_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from model_utils.delta_checkpoints import DELTA_ESTIMATE_BYTES, estimate_checkpoint_bytes
    from model_utils.adapters import minilm_dir

    full = sum(p.stat().st_size for p in minilm_dir().glob("*.safetensors"))
    assert estimate_checkpoint_bytes("bundled", "bundled:minilm-pretrained", delta=False) == full > 80 * MB
    assert estimate_checkpoint_bytes("bundled", "bundled:minilm-pretrained", delta=True) == DELTA_ESTIMATE_BYTES
    (tmp_path / "model.safetensors").write_bytes(b"\0" * MB)
    assert estimate_checkpoint_bytes("local", str(tmp_path), delta=False) == MB
    assert estimate_checkpoint_bytes("hub", "org/not-cached-anywhere", delta=False) == 0
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
