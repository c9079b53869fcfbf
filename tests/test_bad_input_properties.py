"""Bad input on the pure validators, property-based (fast tier, no server).

Arbitrary text never makes the model-name validation, the Fill-Mask request check or the
paragraph splitter raise anything but ``ValueError`` with a short message; a ``local:`` name
never resolves outside the checkpoints folder (not through ``..``, an absolute path or a
symlink); non-text model choices are refused clearly; sentence splitting stays linear on long
runs of punctuation; user-visible error messages are bounded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from model_utils import registry
from model_utils.next_sentence import split_sentences

FIXTURE_SETTINGS = settings(max_examples=120, deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture])
MAX_MESSAGE = 2000

# Pieces that hostile names are made of: traversal, absolute paths, URLs, NUL/newline, prefixes.
NAME_PIECES = ["local:", "bundled:", "http://", "file://", "/", "\\", "..", ".", "~", "%2e", "%2F", "\x00",
               "\n", " ", ":", "etc", "passwd", "good", "link", "plain.txt", "no-config", "tiny", "-", "_",
               "org", "x" * 120, "猫", "🐱"]
NAMES = st.one_of(st.text(max_size=60),
                  st.lists(st.sampled_from(NAME_PIECES), max_size=8).map("".join))


@pytest.fixture
def hostile_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkpoints folder with a real checkpoint, a symlink to one outside, a file and an empty folder."""
    config = json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]})
    root, outside = tmp_path / "checkpoints", tmp_path / "outside"
    for folder in (root / "good", outside / "secret"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(config)
    (root / "link").symlink_to(outside / "secret", target_is_directory=True)
    (root / "plain.txt").write_text("not a checkpoint")
    (root / "no-config").mkdir()
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(root))
    return root


def check_message(err: ValueError) -> None:
    text = str(err)
    assert text.strip() and len(text) < MAX_MESSAGE and "Traceback" not in text


@FIXTURE_SETTINGS
@given(name=NAMES)
def test_any_model_name_resolves_inside_or_fails_clearly(hostile_checkpoints: Path, name: str) -> None:
    root = hostile_checkpoints.resolve()
    try:
        info = registry.resolve(name)
    except ValueError as err:
        check_message(err)
        return
    if info.source == "local":
        assert Path(info.location) == root / "good"  # never the symlink's target, never outside
    elif info.source == "hub":
        location = info.location
        assert not Path(location).is_absolute() and ".." not in location and not Path(location).exists()
    else:
        assert info.source == "bundled" and info.name in registry._bundled_models()


def test_known_hostile_names_are_refused(hostile_checkpoints: Path) -> None:
    assert registry.resolve("local:good").source == "local"
    for name in ["../../etc/passwd", "local:../x", "local:/etc", "local:link", "local:plain.txt", "local:no-config",
                 "http://evil.example/x", "file:///etc/passwd", "x" * 5000, "local:" + "x" * 5000,
                 "bert\x00base", "bert\nbase", "local:good\x00", "/etc", "~/.ssh/id_rsa", "bundled:../../x"]:
        with pytest.raises(ValueError) as caught:
            registry.resolve(name)
        check_message(caught.value)
        assert len(str(caught.value)) < 400, "a long name is not repeated back in full"


NOT_TEXT = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                     st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=3), st.integers()))


@settings(max_examples=60, deadline=None)
@given(value=NOT_TEXT)
def test_a_model_choice_that_is_not_text_is_refused_clearly(value: object) -> None:
    from model_utils.manager import ModelManager

    for resolve in (registry.resolve, lambda v: ModelManager().resolve_checkpoint(v, "fill-mask", "masked-lm")):
        with pytest.raises(ValueError, match="chosen by its name"):
            resolve(value)


# ---- Fill-Mask request check on a tiny model ----

MASK_TEXT = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(["[MASK]", "<mask>", "[mask]", "[MASK", "MASK]", "the", "cat", " ", "\n", "\x00",
                              "\x1b[31m", "\u200b", "猫", "🐱", "القط", ".", "##s", "[CLS]", "[SEP]", "[PAD]"]),
             max_size=30).map("".join))


@FIXTURE_SETTINGS
@given(text=MASK_TEXT, top_k=st.integers(-3, 60), targets=st.one_of(st.none(), st.text(max_size=30)))
def test_fill_mask_requests_answer_every_request_with_a_record(tiny_env: Path, text: str, top_k: int,
                                                               targets: str | None) -> None:
    """Whatever a request holds, the batch answers it with a result or a clear error record, never an exception."""
    from model_utils.fill_mask import fill_mask_requests

    (output,) = fill_mask_requests([{"text": text, "models": ["local:tiny-bert"], "top_k": top_k, "targets": targets}])
    records = [output] if "error" in output else output["results"]
    for record in records:
        if "error" in record:
            check_message(ValueError(record["error"]))
            assert record["code"]  # every user mistake has a code the UI translates


@pytest.mark.parametrize("models, top_k, text", [
    ([3], 3, "the [MASK] sat ."), (3, 3, "the [MASK] sat ."), ({"a": 1}, 3, "the [MASK] sat ."),
    (["local:tiny-bert"], "abc", "the [MASK] sat ."), (["local:tiny-bert"], 10**9, "the [MASK] sat ."),
    (["local:tiny-bert"], -1, "the [MASK] sat ."), (["local:tiny-bert"], 3, 5), (["local:tiny-bert"], 3, ["x"]),
])
def test_fill_mask_batch_keeps_a_bad_request_to_itself(tiny_env: Path, models, top_k, text) -> None:
    """Raw API values reach the batched handler (no Gradio preprocessing): a bad one fails only itself."""
    from demo.fill_mask_tab import fill_mask_batch

    good = "the cat [MASK] on the mat ."
    (outputs,) = fill_mask_batch([good, text], [["local:tiny-bert"], models], [3, top_k], ["", ""])
    assert len(outputs[0]["results"][0]["predictions"][0]) == 3
    error = outputs[1].get("error") or outputs[1]["results"][0]["error"]  # the request's, or its model's
    check_message(ValueError(error))


# ---- paragraph splitting ----

# The splitter before its lookbehind fix: quadratic on runs of . ! ?, used here as the reference.
REFERENCE = re.compile(r"""\S.*?(?:[.!?]+["'”’)\]]*(?=\s|$)|[。！？]+["'”’)\]]*|$)""", re.S)
# Where the two differ on purpose: a sentence that starts with . ! ? (the old one split "..." off).
STARTS_WITH_STOP = re.compile(r"""(?:^|[\s。！？"'”’)\]])[.!?]""")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab .!?。！\"')\n\t猫🐱", max_size=40))
def test_split_sentences_keeps_every_character_and_matches_the_reference(text: str) -> None:
    sentences = split_sentences(text)
    assert all(s and s == s.strip() for s in sentences)
    assert "".join("".join(s.split()) for s in sentences) == "".join(text.split())
    assume(not STARTS_WITH_STOP.search(text))
    assert sentences == [s.strip() for s in REFERENCE.findall(text) if s.strip()]


LONG_RUNS = ["." * 200_000 + "x", "?." * 100_000 + "x", "a" + "!" * 200_000 + "b", "a." + '"' * 200_000 + "x",
             "end. " * 40_000, "。" * 200_000]
SPLIT_IN_CHILD = """
import json, sys
from model_utils.next_sentence import split_sentences
for text in json.load(sys.stdin):
    kept = "".join("".join(s.split()) for s in split_sentences(text)) == "".join(text.split())
    print(kept, flush=True)
"""


def test_split_sentences_is_linear_on_punctuation_runs() -> None:
    """The regex used to retry a run of dots from each of its characters: 100 kB took minutes.

    It runs in a child process with a time limit: a regex holds the GIL, so a thread could not
    be timed out. The limit is a hang guard (the runs take milliseconds), not a speed target.
    """
    import subprocess
    import sys

    try:
        child = subprocess.run([sys.executable, "-c", SPLIT_IN_CHILD], input=json.dumps(LONG_RUNS), text=True,
                               capture_output=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        pytest.fail("split_sentences did not finish 6 texts of 200 kB within 120 s")
    assert child.stdout.split() == ["True"] * len(LONG_RUNS), child.stderr[-2000:]


# ---- messages shown to users ----

@settings(max_examples=100, deadline=None)
@given(message=st.text(max_size=3000), limit=st.integers(20, 1000))
def test_clip_message_bounds_length_and_keeps_both_ends(message: str, limit: int) -> None:
    from demo.common import clip_message

    clipped = clip_message(message, limit)
    assert len(clipped) <= limit
    if len(message) <= limit:
        assert clipped == message
    else:
        assert message.startswith(clipped[:limit // 2]) and message.endswith(clipped[-(limit // 4):])


@pytest.mark.parametrize("error", [ValueError("No column 'x" + "x" * 10_000 + "'."), RuntimeError("y" * 10_000)])
def test_user_errors_messages_are_bounded(error: Exception) -> None:
    import gradio as gr

    from demo.common import MAX_MESSAGE_CHARS, user_errors

    def fail() -> None:
        raise error

    with pytest.raises(gr.Error) as caught:
        user_errors(fail)()
    assert len(caught.value.message) <= MAX_MESSAGE_CHARS
    if isinstance(error, ValueError):  # the user's input, quoted and clipped
        assert str(error)[:30] in caught.value.message
    else:  # a server fault: an error id, never the exception's text or class
        assert "error id" in caught.value.message and "yyyy" not in caught.value.message
        assert "RuntimeError" not in caught.value.message
