"""Registry: dropdown choices per task and validation of user-typed checkpoint names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from model_utils import registry
from model_utils.registry import HUB_MODELS, choices, resolve

REQUIRED_HUB = ["bert-base-uncased", "bert-base-cased", "bert-base-chinese", "roberta-base",
                "distilbert-base-uncased", "albert-base-v2",
                "distilbert-base-uncased-finetuned-sst-2-english"]


def test_popular_hub_models_are_known_with_family_and_mask() -> None:
    for name in REQUIRED_HUB:
        assert name in HUB_MODELS
    assert HUB_MODELS["roberta-base"].mask_token == "<mask>"
    assert HUB_MODELS["bert-base-chinese"].family == "bert"


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub within reach (the tests run offline): every Hub model is offered."""
    import model_utils.config

    monkeypatch.setattr(model_utils.config, "hub_offline", lambda *args: False)


def test_offline_choices_list_only_hub_models_in_the_local_cache(tiny_env: Path, monkeypatch) -> None:
    import huggingface_hub

    assert not any(name in HUB_MODELS for name in choices("fill-mask"))  # offline, nothing cached
    cached = {"bert-base-uncased"}
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, filename, **kw: f"/cache/{repo}/{filename}" if repo in cached else None)
    fill = choices("fill-mask")
    assert "bert-base-uncased" in fill and not ({"roberta-base", "bert-base-chinese"} & set(fill))
    assert fill[0] == "bundled:minilm-pretrained" and "local:tiny-bert" in fill


def test_choices_follow_tasks(tiny_env: Path, online: None) -> None:
    fill = choices("fill-mask")
    nsp = choices("next-sentence")
    cls = choices("text-classification")
    assert fill[0] == "bundled:minilm-pretrained" and "roberta-base" in fill
    assert {"local:tiny-bert", "local:tiny-mlm", "local:tiny-distilbert"} <= set(fill)
    assert "local:tiny-classifier" not in fill
    assert "local:tiny-bert" in nsp and "local:tiny-mlm" not in nsp
    assert not {"roberta-base", "distilbert-base-uncased", "albert-base-v2"} & set(nsp)
    assert cls[0] == "bundled:minilm-sentiment" and "local:tiny-classifier" in cls
    with pytest.raises(ValueError, match="Unknown task"):
        choices("translation")


def test_text_generation_choices_are_causal_models(tiny_env: Path, online: None) -> None:
    generate = choices("text-generation")
    assert generate[:3] == ["bundled:minilm-causal", "gpt2", "distilgpt2"]
    assert not {"local:tiny-bert", "bundled:minilm-pretrained", "bert-base-uncased"} & set(generate)
    assert "bundled:minilm-causal" in choices("attention")
    assert "bundled:minilm-causal" not in choices("fill-mask") + choices("next-sentence") + choices("pretrain-base")
    assert resolve("gpt2").tasks == ("text-generation", "attention") and resolve("gpt2").mask_token is None
    assert set(resolve("bundled:minilm-causal").tasks) == {"text-generation", "attention"}


def test_resolve_sources(tiny_env: Path) -> None:
    assert resolve("bert-base-uncased").source == "hub"
    custom = resolve(" someone/my-bert ")
    assert (custom.source, custom.location) == ("hub", "someone/my-bert")
    local = resolve("local:tiny-bert")
    assert local.source == "local" and Path(local.location) == (tiny_env / "tiny-bert").resolve()
    assert local.family == "bert" and "next-sentence" in local.tasks
    sentiment = resolve("bundled:minilm-sentiment")
    assert "text-classification" in sentiment.tasks and "fill-mask" not in sentiment.tasks


@pytest.mark.parametrize("name, message", [
    ("", "choose a model"),
    ("../etc/passwd", "not a valid model id"),
    ("a b", "not a valid model id"),
    ("org/../x", "not a valid model id"),
    ("x" * 200, "not a valid model id"),
    ("local:../secrets", "Invalid local checkpoint"),
    ("local:a/b", "Invalid local checkpoint"),
    ("local:/etc", "Invalid local checkpoint"),
    ("local:missing", "No checkpoint named local:missing"),
    ("bundled:nope", "Unknown bundled model"),
])
def test_resolve_rejects_bad_names(tiny_env: Path, name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve(name)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_resolve_never_escapes_the_checkpoints_dir(text: str) -> None:
    root = registry.get_settings().checkpoints_dir.resolve()
    for name in (text, "local:" + text):
        try:
            info = resolve(name)
        except ValueError:
            continue
        if info.source == "local":
            assert Path(info.location).parent == root
        else:
            assert info.source in {"hub", "bundled"} and not Path(info.location).is_absolute()


def test_hub_ids_that_are_also_local_folders_are_loaded_from_the_hub_cache_only(tiny_env: Path, monkeypatch) -> None:
    """No existence oracle: 'tests' (a folder beside the app) resolves like any Hub id, and loading it
    never reads that folder: offline, it fails exactly as an uncached Hub id does."""
    from model_utils.manager import get_manager

    for name in ("tests", "model_utils/bundled", "no-such-folder-anywhere"):
        info = resolve(name)
        assert (info.source, info.location) == ("hub", name)
    messages = []
    for name in ("tests", "no-such-folder-anywhere"):
        with pytest.raises(ValueError) as caught:
            get_manager().get(name, "masked-lm")
        messages.append(str(caught.value).replace(name, "<id>"))
    assert messages[0] == messages[1] and "Hub is unreachable" in messages[0]


def test_a_hub_model_out_of_reach_is_refused_unless_cached(tiny_env: Path, tmp_path: Path, monkeypatch) -> None:
    """Jobs check this before they are queued: offline, an uncached Hub id is refused; a cached one, a local
    or a bundled model passes."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ValueError, match="Hub is unreachable"):
        registry.check_within_reach(resolve("org/not-cached"))
    snapshot = tmp_path / "hub" / "models--org--cached" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--cached" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--cached" / "refs" / "main").write_text("abc")
    registry.check_within_reach(resolve("org/cached"))
    registry.check_within_reach(resolve("local:tiny-bert"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("model_utils.config.hub_offline", lambda settings=None: False)
    registry.check_within_reach(resolve("org/not-cached"))  # online: the job will download it
