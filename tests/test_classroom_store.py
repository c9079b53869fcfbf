"""Classroom storage and room logic against SQLite and PostgreSQL (no model, no Gradio).

The model's answer is a stub here (tests/test_classroom_kinds.py checks the real ones); every
test runs on both databases, the PostgreSQL one skipped with its reason when no server is set up.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import math
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from classroom import Classroom, RateLimiter, make_engine, new_room_code, normalize_code, to_csv
from classroom.rooms import CODE_ALPHABET, CODE_LENGTH, GRACE_S
from classroom.schema import Answer, Item, Learner, Room
from classroom_helpers import BACKENDS, fresh_database
from model_utils.errors import UserError


class Clock:
    """A settable clock, so countdowns and expiry are tested without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def model_stub(best: str, top: list[tuple[str, float]] | None = None):
    """A model answer with ``best`` first, counting its calls."""
    calls = []

    def answer(kind, payload, model):
        calls.append((kind.name, payload, model))
        ranked = top or [(best, 0.9)]
        return {"model": model or "stub", "top": [{"answer": a, "score": s} for a, s in ranked], "best": best}

    answer.calls = calls
    return answer


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def room_service(database, clock):
    engine = make_engine(database)
    yield Classroom(engine, ttl_s=3600, max_learners=5, clock=clock)
    engine.dispose()


def error_code(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    return caught.value.code


def nsp_item(service: Classroom, room: dict, seconds: int = 0) -> dict:
    return service.push(room["code"], room["secret"], "next-sentence",
                        {"text": "I was hungry.", "second": "So I ate."}, model="stub", seconds=seconds)


# ---------------------------------------------------------------- codes


def test_room_codes_are_random_unguessable_and_forgiving_to_type() -> None:
    codes = {new_room_code() for _ in range(2000)}
    assert len(codes) == 2000  # no repeats in 2000 draws of a 49-bit code
    assert CODE_LENGTH * math.log2(len(CODE_ALPHABET)) >= 40
    code = next(iter(codes))
    raw = code.replace("-", "")
    assert len(raw) == CODE_LENGTH and set(raw) <= set(CODE_ALPHABET)
    # all 31 symbols appear over 2000 codes (a biased generator would miss some)
    assert set("".join(codes).replace("-", "")) == set(CODE_ALPHABET)
    for typed in (raw.lower(), f" {raw[:5]} {raw[5:]} ", f"{raw[:3]}-{raw[3:]}"):
        assert normalize_code(typed) == code


# ---------------------------------------------------------------- joining


def test_join_refuses_wrong_closed_and_expired_rooms_with_one_message(room_service, clock) -> None:
    room = room_service.create_room()
    messages = {error_code(lambda: room_service.join(new_room_code(), "Ann"))}
    closed = room_service.create_room()
    room_service.close(closed["code"], closed["secret"])
    messages.add(error_code(lambda: room_service.join(closed["code"], "Ann")))
    clock.now += 3601
    messages.add(error_code(lambda: room_service.join(room["code"], "Ann")))
    assert messages == {"classroom.no_room"}  # no oracle: a closed or expired room looks like no room


def test_nicknames_are_checked_and_unique_per_room(room_service) -> None:
    room = room_service.create_room()
    other = room_service.create_room()
    assert room_service.join(room["code"], "  Ann   Lee ")["nickname"] == "Ann Lee"
    assert error_code(lambda: room_service.join(room["code"], "ann lee")) == "classroom.nickname_taken"
    assert room_service.join(other["code"], "Ann Lee")["nickname"] == "Ann Lee"  # another room: fine
    for bad in ("", "   ", "x" * 25, "zero\u200bwidth", "bell\x07", "rtl\u202eoverride", None, 42):
        assert error_code(lambda: room_service.join(room["code"], bad)) == "classroom.nickname_bad", bad
    for i in range(4):
        room_service.join(room["code"], f"learner {i}")
    assert error_code(lambda: room_service.join(room["code"], "sixth")) == "classroom.room_full"


# ---------------------------------------------------------------- answering


def test_answers_one_row_per_learner_changeable_until_reveal(room_service) -> None:
    room = room_service.create_room()
    ann, bob = (room_service.join(room["code"], n) for n in ("Ann", "Bob"))
    item = nsp_item(room_service, room)
    assert item["choices"] == ["IsNext", "NotNext"]
    room_service.answer(ann["token"], item["id"], "NotNext")
    room_service.answer(ann["token"], item["id"], " isnext ")  # changed her mind: replaces
    room_service.answer(bob["token"], item["id"], "NOTNEXT")
    assert room_service.instructor_view(room["code"], room["secret"])["answers"] == 2
    assert error_code(lambda: room_service.answer(bob["token"], item["id"], "maybe")) == "classroom.answer_not_choice"
    for bad in ("", "x" * 41, "nul\x00", None):
        assert error_code(lambda: room_service.answer(bob["token"], item["id"], bad)) == "classroom.answer_bad"
    stub = model_stub("IsNext")
    reveal = room_service.reveal(room["code"], room["secret"], stub)
    assert reveal["summary"]["counts"] == {"isnext": 1, "notnext": 1}
    assert reveal["summary"]["agreement"] == 0.5
    assert error_code(lambda: room_service.answer(bob["token"], item["id"], "IsNext")) == "classroom.revealed"
    assert room_service.reveal(room["code"], room["secret"], stub) == reveal and len(stub.calls) == 1


def test_answers_go_to_the_current_item_only(room_service) -> None:
    room = room_service.create_room()
    other = room_service.create_room()
    ann = room_service.join(room["code"], "Ann")
    first = nsp_item(room_service, room)
    second = nsp_item(room_service, room)
    foreign = nsp_item(room_service, other)
    assert second["position"] == 2
    for item_id in (first["id"], foreign["id"], 10**30, "x", None, -1):
        assert error_code(lambda: room_service.answer(ann["token"], item_id, "IsNext")) == "classroom.item_gone"
    assert error_code(lambda: room_service.answer("not-a-token", second["id"], "IsNext")) == "classroom.no_room"
    assert error_code(lambda: room_service.answer(None, second["id"], "IsNext")) == "classroom.not_joined"


def test_countdown_stops_answers_after_the_deadline(room_service, clock) -> None:
    room = room_service.create_room()
    ann, bob = (room_service.join(room["code"], n) for n in ("Ann", "Bob"))
    item = nsp_item(room_service, room, seconds=30)
    assert item["seconds_left"] == 30
    clock.now += 29
    room_service.answer(ann["token"], item["id"], "IsNext")
    assert room_service.learner_view(ann["token"])["item"]["seconds_left"] == pytest.approx(1)
    clock.now += 1 + GRACE_S + 0.01
    assert error_code(lambda: room_service.answer(bob["token"], item["id"], "IsNext")) == "classroom.time_up"
    assert room_service.learner_view(bob["token"])["item"]["seconds_left"] == 0
    for seconds in (-1, 601, "soon"):
        assert error_code(lambda: nsp_item(room_service, room, seconds)) == "classroom.seconds_range"


# ---------------------------------------------------------------- reveal, scores, privacy


def test_reveal_scores_and_opt_in_leaderboard(room_service) -> None:
    room = room_service.create_room()
    learners = {name: room_service.join(room["code"], name, leaderboard=name != "Cy")
                for name in ("Ann", "Bob", "Cy")}
    picks = [{"Ann": "IsNext", "Bob": "NotNext", "Cy": "IsNext"}, {"Ann": "IsNext", "Bob": "IsNext", "Cy": "IsNext"}]
    for round_picks in picks:
        item = nsp_item(room_service, room)
        for name, pick in round_picks.items():
            room_service.answer(learners[name]["token"], item["id"], pick)
        reveal = room_service.reveal(room["code"], room["secret"], model_stub("IsNext"))
    assert reveal["summary"]["agreement"] == 1.0
    board = reveal["summary"]["leaderboard"]
    assert board == [{"nickname": "Ann", "score": 2}, {"nickname": "Bob", "score": 1}]  # Cy did not opt in
    assert room_service.learner_view(learners["Cy"]["token"])["score"] == 2  # but sees her own score


def test_learners_see_nothing_of_others_before_the_reveal(room_service) -> None:
    room = room_service.create_room()
    other = room_service.create_room()
    ann, bob = (room_service.join(room["code"], n) for n in ("Ann", "Bob"))
    stranger = room_service.join(other["code"], "Eve")
    item = nsp_item(room_service, room)
    room_service.answer(ann["token"], item["id"], "NotNext")
    bob_view = room_service.learner_view(bob["token"])
    assert bob_view["your_answer"] is None and bob_view["reveal"] is None
    assert "Ann" not in repr(bob_view) and "counts" not in repr(bob_view)
    assert room_service.learner_view(stranger["token"])["item"] is None  # other room: its own (empty) screen
    assert room_service.learner_view(ann["token"])["your_answer"] == "notnext"


def test_only_the_instructor_secret_drives_the_room(room_service) -> None:
    room = room_service.create_room()
    other = room_service.create_room()
    ann = room_service.join(room["code"], "Ann")
    nsp_item(room_service, room)
    for secret in (other["secret"], ann["token"], "", None, room["secret"][:-1]):
        for call in (lambda: nsp_item(room_service, {"code": room["code"], "secret": secret}),
                     lambda: room_service.reveal(room["code"], secret, model_stub("IsNext")),
                     lambda: room_service.close(room["code"], secret),
                     lambda: room_service.records(room["code"], secret),
                     lambda: room_service.instructor_view(room["code"], secret)):
            assert error_code(call) == "classroom.not_instructor"
    room_service.close(room["code"], room["secret"])
    assert error_code(lambda: nsp_item(room_service, room)) == "classroom.closed"
    assert room_service.learner_view(ann["token"])["closed"] is True
    assert room_service.records(room["code"], room["secret"])  # the export still works once closed


# ---------------------------------------------------------------- concurrency, restart, expiry


def test_concurrent_answers_and_reveal_lose_and_duplicate_nothing(database, clock) -> None:
    engine = make_engine(database)
    service = Classroom(engine, ttl_s=3600, max_learners=100)
    room = service.create_room()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        tokens = list(pool.map(lambda i: service.join(room["code"], f"l{i}")["token"], range(40)))
    item = nsp_item(service, room)
    started = threading.Barrier(17)

    def submit(token: str) -> str:
        if token == "reveal":
            started.wait()
            return service.reveal(room["code"], room["secret"], model_stub("IsNext"))
        if tokens.index(token) < 16:
            started.wait()
        try:
            service.answer(token, item["id"], "IsNext")
            service.answer(token, item["id"], "NotNext")  # a second submit replaces the first
            return "answered"
        except UserError as err:
            return err.code

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        results = list(pool.map(submit, tokens + ["reveal"]))
    reveal = results.pop()
    with Session(engine) as session:
        stored = session.scalar(select(func.count(Answer.id)).where(Answer.item_id == item["id"]))
        distinct = session.scalar(select(func.count(func.distinct(Answer.learner_id))).where(Answer.item_id == item["id"]))
    assert stored == distinct == reveal["summary"]["total"]  # what the reveal counted is what is stored
    assert set(results) <= {"answered", "classroom.revealed"}
    # every learner whose two submits both went through is counted; a revealed refusal may have hit the
    # second submit after the first was stored, so stored lies between the two
    assert results.count("answered") <= stored <= len(tokens)
    engine.dispose()


def test_rooms_survive_a_restart_and_expire(database, clock) -> None:
    engine = make_engine(database)
    service = Classroom(engine, ttl_s=3600, clock=clock)
    room = service.create_room()
    ann = service.join(room["code"], "Ann")
    item = nsp_item(service, room)
    service.answer(ann["token"], item["id"], "IsNext")
    engine.dispose()
    engine = make_engine(database)  # a new process on the same database
    service = Classroom(engine, ttl_s=3600, clock=clock)
    assert service.learner_view(ann["token"])["your_answer"] == "isnext"
    assert service.instructor_view(room["code"], room["secret"])["answers"] == 1
    clock.now += 3601
    assert error_code(lambda: service.learner_view(ann["token"])) == "classroom.no_room"
    assert service.purge_expired() == 1
    with Session(engine) as session:  # learners, items and answers went with the room
        assert [session.scalar(select(func.count()).select_from(t)) for t in (Room, Learner, Item, Answer)] == [0] * 4
    engine.dispose()


# ---------------------------------------------------------------- export, rate limits


def test_export_has_every_answer_and_the_model_output(room_service) -> None:
    room = room_service.create_room()
    ann, bob = (room_service.join(room["code"], n) for n in ("=HYPERLINK(1)", "Bob"))
    item = nsp_item(room_service, room)
    room_service.answer(ann["token"], item["id"], "IsNext")
    room_service.answer(bob["token"], item["id"], "NotNext")
    room_service.reveal(room["code"], room["secret"], model_stub("IsNext", [("IsNext", 0.75), ("NotNext", 0.25)]))
    room_service.push(room["code"], room["secret"], "fill-mask", {"text": "the cat sat on the [MASK]."}, "stub")
    rows = list(csv.DictReader(io.StringIO(to_csv(room_service.records(room["code"], room["secret"])))))
    assert [(r["item"], r["learner"], r["answer"], r["agrees_with_model"]) for r in rows] == [
        ("1", "'=HYPERLINK(1)", "isnext", "true"), ("1", "Bob", "notnext", "false"), ("2", "", "", "")]
    assert rows[0]["model_top"] == "IsNext=0.7500; NotNext=0.2500" and rows[0]["model_answer"] == "IsNext"
    assert rows[0]["question"] == "I was hungry. || So I ate." and rows[2]["kind"] == "fill-mask"


def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("a")
    assert error_code(lambda: limiter.check("a")) == "classroom.slow_down"
    limiter.check("b")  # per session
    clock.now += 1.0
    limiter.check("a")
    assert error_code(lambda: limiter.check("a")) == "classroom.slow_down"


def test_settings_name_the_database_and_the_room_lifetime(monkeypatch, tmp_path) -> None:
    from classroom import database_url
    from classroom.schema import normalize_url
    from model_utils.config import get_settings

    monkeypatch.delenv("PLM_CLASSROOM_DB", raising=False)
    monkeypatch.setenv("PLM_DATA_DIR", str(tmp_path / "data"))
    assert database_url() == f"sqlite:///{(tmp_path / 'data' / 'classroom.sqlite3').resolve()}"
    assert (tmp_path / "data").is_dir()
    monkeypatch.setenv("PLM_CLASSROOM_DB", "postgresql://user:secret@db.example/class")
    monkeypatch.setenv("PLM_ROOM_TTL_HOURS", "0.5")
    settings = get_settings()
    assert settings.room_ttl_s == 1800 and "secret" not in repr(settings)  # the password stays out of logs
    assert normalize_url(database_url()) == "postgresql+psycopg://user:secret@db.example/class"
