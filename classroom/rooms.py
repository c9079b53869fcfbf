"""Rooms, items, answers, scores: the classroom's logic over its database (no Gradio, no torch).

:class:`Classroom` is what the UI (``demo/classroom_tab.py``) and the benchmark call. Every method
takes plain values and returns plain dicts, and every check is done against the database, so any
number of app processes sharing one PostgreSQL database serve the same rooms:

* the instructor's methods take the room code and the instructor's secret (held in the
  instructor's browser session, never in a URL) and refuse anything else;
* the learner's methods take the learner's token (from :meth:`Classroom.join`), which names one
  room: a learner cannot reach another room, nor see other answers before the reveal;
* an answer is one row per (item, learner): a second submit replaces the first; answers stop at
  the reveal (atomically: an answer is either counted in the reveal or refused);
* the model's answer is computed once per reveal by the item's kind (``classroom.kinds``) and
  stored with the item together with the class's summary, so every process shows the same reveal.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import unicodedata
from typing import Any, Callable

from sqlalchemy import Engine, delete, exists, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from classroom.kinds import ItemKind, get_kind, normalize_answer
from classroom.schema import ANSWER_CHARS, NICKNAME_CHARS, Answer, Item, Learner, Room
from model_utils.errors import UserError, define

define({
    "classroom.no_room": "No open room has that code. Check it with your instructor.",
    "classroom.not_instructor": "Only the instructor who opened this room can do that.",
    "classroom.not_joined": "Join a room first.",
    "classroom.closed": "The instructor has closed this room.",
    "classroom.nickname_bad": "A nickname is 1 to {limit} characters on one line.",
    "classroom.nickname_taken": "Someone in this room is already called {nickname}; choose another nickname.",
    "classroom.room_full": "This room is full ({limit} learners).",
    "classroom.no_item": "There is no question yet.",
    "classroom.item_gone": "That question is closed: the instructor has moved on.",
    "classroom.revealed": "The answers to this question have been revealed; no more answers.",
    "classroom.time_up": "Time is up for this question.",
    "classroom.answer_bad": "An answer is 1 to {limit} characters on one line.",
    "classroom.answer_not_choice": "Choose one of: {choices}.",
    "classroom.seconds_range": "The countdown is 0 (none) to {limit} seconds.",
    "classroom.item_limit": "This room already has {limit} questions; open a new room.",
})

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud and typed on phones
CODE_LENGTH = 10  # 31**10 ≈ 2**49.5 codes
MAX_SECONDS = 600  # longest countdown
GRACE_S = 1.0  # an answer sent as the countdown ends still counts
MAX_ITEMS = 200  # questions per room
LEADERBOARD_SIZE = 10


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_room_code() -> str:
    """A random room code from ``secrets`` (about 49.5 bits), shown as ``ABCDE-FGHJK``."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalize_code(value: Any) -> str:
    """A typed or scanned code in its stored form: letters and digits upper-cased, dashes put back."""
    raw = "".join(c for c in str(value or "")[:64].upper() if c.isascii() and c.isalnum())
    return f"{raw[:5]}-{raw[5:]}" if len(raw) == CODE_LENGTH else raw


def _one_line(value: Any, limit: int, code: str) -> str:
    """``value`` trimmed, spaces collapsed; UserError(code) unless 1..limit printable characters."""
    text = " ".join(value.split()) if isinstance(value, str) else ""
    if not text or len(text) > limit or any(unicodedata.category(c).startswith("C") for c in text):
        raise UserError(code, limit=limit)
    return text


def _upsert_answer(dialect: str, item_id: int, learner_id: int, answer: str, now: float) -> Any:
    """INSERT the answer only while the item is unrevealed; replace this learner's earlier answer."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    still_open = exists().where(Item.id == item_id, Item.revealed_at.is_(None))
    row = select(literal(item_id), literal(learner_id), literal(answer), literal(now)).where(still_open)
    statement = insert(Answer).from_select(["item_id", "learner_id", "answer", "answered_at"], row)
    return statement.on_conflict_do_update(
        index_elements=["item_id", "learner_id"],
        set_={"answer": statement.excluded.answer, "answered_at": statement.excluded.answered_at}
    ).returning(Answer.id)


class Classroom:
    """Rooms, items and answers stored in ``engine``'s database (see the module docstring)."""

    def __init__(self, engine: Engine, *, ttl_s: float = 12 * 3600, max_learners: int = 500,
                 clock: Callable[[], float] = time.time, default_model: Callable[[str], str | None] | None = None
                 ) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.max_learners = max_learners
        self.clock = clock
        self.default_model = default_model or (lambda _task: None)

    def _session(self) -> Session:
        # Objects stay readable after commit: views are built from them once the transaction is over.
        return Session(self.engine, expire_on_commit=False)

    # ------------------------------------------------------------------ rooms

    def create_room(self) -> dict:
        """Open a room: ``{"code", "secret", "expires_at"}``; the secret is shown to nobody but its holder."""
        now = self.clock()
        secret = secrets.token_urlsafe(32)
        self.purge_expired()
        with self._session() as session, session.begin():
            while True:  # a clash of two random 49-bit codes is astronomically rare; retry anyway
                code = new_room_code()
                if session.scalar(select(Room.id).where(Room.code_key == _digest(code))) is None:
                    break
            session.add(Room(code=code, code_key=_digest(code), instructor_hash=_digest(secret),
                             created_at=now, expires_at=now + self.ttl_s))
        return {"code": code, "secret": secret, "expires_at": now + self.ttl_s}

    def purge_expired(self) -> int:
        """Delete rooms past their expiry, with their learners, items and answers; returns how many."""
        with self._session() as session, session.begin():
            return session.execute(delete(Room).where(Room.expires_at < self.clock())).rowcount

    def _find_room(self, session: Session, code: Any) -> Room | None:
        """The unexpired room with ``code``: looked up by its hash, confirmed in constant time."""
        code = normalize_code(code)
        room = session.scalar(select(Room).where(Room.code_key == _digest(code)))
        if room is None or not hmac.compare_digest(room.code.encode(), code.encode()) \
                or room.expires_at < self.clock():
            return None
        return room

    def _instructor_room(self, session: Session, code: Any, secret: Any, *, open_only: bool = True) -> Room:
        room = self._find_room(session, code)
        if room is None or not isinstance(secret, str) or \
                not hmac.compare_digest(_digest(secret).encode(), room.instructor_hash.encode()):
            raise UserError("classroom.not_instructor")
        if open_only and room.closed_at is not None:
            raise UserError("classroom.closed")
        return room

    def close(self, code: str, secret: str) -> None:
        """Close the room: no more joins, answers or questions; the instructor can still export it."""
        with self._session() as session, session.begin():
            room = self._instructor_room(session, code, secret, open_only=False)
            room.closed_at = room.closed_at or self.clock()

    # ------------------------------------------------------------------ learners

    def join(self, code: Any, nickname: Any, leaderboard: bool = False) -> dict:
        """Join the open room ``code``: ``{"code", "nickname", "token"}``; the token is the learner's key."""
        nickname = _one_line(nickname, NICKNAME_CHARS, "classroom.nickname_bad")
        token = secrets.token_urlsafe(24)
        with self._session() as session:
            with session.begin():
                room = self._find_room(session, code)
                if room is None or room.closed_at is not None:  # one answer for wrong, expired, closed
                    raise UserError("classroom.no_room")
                count = session.scalar(select(func.count(Learner.id)).where(Learner.room_id == room.id))
                if count >= self.max_learners:
                    raise UserError("classroom.room_full", limit=self.max_learners)
                room_code = room.code
                session.add(Learner(room_id=room.id, nickname=nickname, nickname_key=nickname.casefold(),
                                    token_hash=_digest(token), on_leaderboard=bool(leaderboard),
                                    joined_at=self.clock()))
                try:
                    session.flush()
                except IntegrityError:
                    raise UserError("classroom.nickname_taken", nickname=nickname) from None
        return {"code": room_code, "nickname": nickname, "token": token}

    def _learner(self, session: Session, token: Any) -> tuple[Learner, Room]:
        """The learner holding ``token`` and their room (unexpired); UserError otherwise."""
        if not isinstance(token, str) or not token:
            raise UserError("classroom.not_joined")
        learner = session.scalar(select(Learner).where(Learner.token_hash == _digest(token)))
        room = session.get(Room, learner.room_id) if learner is not None else None
        if room is None or room.expires_at < self.clock():
            raise UserError("classroom.no_room")
        return learner, room

    def answer(self, token: str, item_id: Any, answer: Any) -> dict:
        """Record ``answer`` to item ``item_id`` (the one on the learner's screen): ``{"item_id", "answer"}``."""
        now = self.clock()
        with self._session() as session, session.begin():
            learner, room = self._learner(session, token)
            if room.closed_at is not None:
                raise UserError("classroom.closed")
            # FOR SHARE (PostgreSQL): a reveal waits for answers in flight, and answers after it see it.
            item = session.scalar(select(Item).where(Item.id == _as_id(item_id), Item.room_id == room.id)
                                  .with_for_update(read=True))
            if item is None or item.id != room.current_item_id:
                raise UserError("classroom.item_gone")
            if item.revealed_at is not None:
                raise UserError("classroom.revealed")
            if item.deadline is not None and now > item.deadline + GRACE_S:
                raise UserError("classroom.time_up")
            value = self._checked_answer(item, answer)
            statement = _upsert_answer(self.engine.dialect.name, item.id, learner.id, value, now)
            if session.execute(statement).first() is None:  # revealed between the check and the insert
                raise UserError("classroom.revealed")
        return {"item_id": item.id, "answer": value}

    @staticmethod
    def _checked_answer(item: Item, answer: Any) -> str:
        value = normalize_answer(_one_line(answer, ANSWER_CHARS, "classroom.answer_bad"))
        if item.choices and value not in {normalize_answer(c) for c in item.choices}:
            raise UserError("classroom.answer_not_choice", choices=", ".join(item.choices))
        return value

    # ------------------------------------------------------------------ items

    def push(self, code: str, secret: str, kind: str, fields: dict, model: str | None = None,
             seconds: Any = 0) -> dict:
        """Put a new question on every learner's screen; returns the item as learners see it.

        ``fields`` are the kind's inputs (``text``, ``second``, ``word``, ``layer``, ``head``); the
        choices offered to learners are worked out now (a classifier's labels, a sentence's words).
        """
        with self._session() as session, session.begin():
            self._instructor_room(session, code, secret)  # refuse before any model is loaded
        item_kind = get_kind(kind)
        seconds = _seconds(seconds)
        payload = item_kind.build(fields or {})
        model = (model or "").strip() or self.default_model(item_kind.task)
        choices = item_kind.choices(payload, model)
        now = self.clock()
        with self._session() as session, session.begin():
            room = self._instructor_room(session, code, secret)
            last = session.scalar(select(func.max(Item.position)).where(Item.room_id == room.id)) or 0
            if last >= MAX_ITEMS:
                raise UserError("classroom.item_limit", limit=MAX_ITEMS)
            item = Item(room_id=room.id, position=last + 1, kind=item_kind.name, payload=payload,
                        choices=choices, model=model, pushed_at=now, deadline=now + seconds if seconds else None)
            session.add(item)
            session.flush()
            room.current_item_id = item.id
            return self._item_view(item, now)

    def _item_view(self, item: Item, now: float) -> dict:
        left = None if item.deadline is None else max(0.0, item.deadline - now)
        return {"id": item.id, "position": item.position, "kind": item.kind, "payload": dict(item.payload),
                "choices": list(item.choices) if item.choices else None, "model": item.model,
                "seconds_left": left, "revealed": item.revealed_at is not None}

    def reveal(self, code: str, secret: str, model_answer: Callable[[ItemKind, dict, str | None], dict] | None = None
               ) -> dict:
        """Stop answers to the current item and show the model's answer beside the class's.

        Returns ``{"item", "model" (the kind's model answer), "summary"}``; a second reveal (from any
        process) returns what the first stored. ``model_answer`` replaces the kind's (tests).
        """
        with self._session() as session:
            room = self._instructor_room(session, code, secret)
            item = session.get(Item, room.current_item_id) if room.current_item_id else None
            if item is None:
                raise UserError("classroom.no_item")
            if item.summary is not None:
                return self._reveal_view(item)
            kind, payload, model, item_id = get_kind(item.kind), dict(item.payload), item.model, item.id
        # The model runs outside any transaction: answers keep coming in meanwhile.
        answer = (model_answer or (lambda k, p, m: k.model_answer(p, m)))(kind, payload, model)
        with self._session() as session, session.begin():
            best = normalize_answer(answer["best"])[:ANSWER_CHARS]
            stored = session.execute(update(Item).where(Item.id == item_id, Item.revealed_at.is_(None))
                                     .values(revealed_at=self.clock(), model_best=best, model_answer=answer))
            item = session.get(Item, item_id)
            if stored.rowcount == 1:  # this call revealed it: summarise the answers, frozen from now on
                session.refresh(item)
                item.summary = self._summary(session, item)
        with self._session() as session:
            return self._reveal_view(session.get(Item, item_id))

    def _summary(self, session: Session, item: Item) -> dict:
        counts = dict(session.execute(select(Answer.answer, func.count(Answer.id))
                                      .where(Answer.item_id == item.id).group_by(Answer.answer)).all())
        total = sum(counts.values())
        return {"counts": counts, "total": total,
                "agreement": counts.get(item.model_best, 0) / total if total else None,
                "leaderboard": self._leaderboard(session, item.room_id)}

    @staticmethod
    def _scores(session: Session, room_id: int, learner_id: int | None = None) -> dict[int, int]:
        """Learner id -> answers that agreed with the model, over the room's revealed items."""
        query = (select(Answer.learner_id, func.count(Answer.id)).join(Item, Item.id == Answer.item_id)
                 .where(Item.room_id == room_id, Item.model_best == Answer.answer).group_by(Answer.learner_id))
        if learner_id is not None:
            query = query.where(Answer.learner_id == learner_id)
        return dict(session.execute(query).all())

    def _leaderboard(self, session: Session, room_id: int) -> list[dict]:
        """The best scores of the learners who asked to be on the leaderboard."""
        scores = self._scores(session, room_id)
        shown = session.execute(select(Learner.id, Learner.nickname)
                                .where(Learner.room_id == room_id, Learner.on_leaderboard)).all()
        board = sorted(({"nickname": name, "score": scores.get(i, 0)} for i, name in shown),
                       key=lambda r: (-r["score"], r["nickname"].casefold()))
        return board[:LEADERBOARD_SIZE]

    def _reveal_view(self, item: Item) -> dict:
        return {"item": self._item_view(item, self.clock()), "model": item.model_answer, "summary": item.summary}

    # ------------------------------------------------------------------ what each screen shows

    def learner_view(self, token: str) -> dict:
        """What a learner's screen shows: the current item, their own answer and score, and the reveal.

        Other learners' answers appear only in the reveal (the class's counts); never before.
        """
        now = self.clock()
        with self._session() as session:
            learner, room = self._learner(session, token)
            view = {"code": room.code, "nickname": learner.nickname, "closed": room.closed_at is not None,
                    "score": self._scores(session, room.id, learner.id).get(learner.id, 0),
                    "item": None, "your_answer": None, "reveal": None}
            item = session.get(Item, room.current_item_id) if room.current_item_id else None
            if item is not None:
                view["item"] = self._item_view(item, now)
                view["your_answer"] = session.scalar(select(Answer.answer).where(
                    Answer.item_id == item.id, Answer.learner_id == learner.id))
                if item.summary is not None:
                    view["reveal"] = {"model": item.model_answer, "summary": item.summary}
            return view

    def instructor_view(self, code: str, secret: str) -> dict:
        """What the instructor's screen shows: learners, the current item, the live count of answers."""
        now = self.clock()
        with self._session() as session:
            room = self._instructor_room(session, code, secret, open_only=False)
            view = {"code": room.code, "closed": room.closed_at is not None, "expires_at": room.expires_at,
                    "learners": session.scalar(select(func.count(Learner.id)).where(Learner.room_id == room.id)),
                    "items": session.scalar(select(func.count(Item.id)).where(Item.room_id == room.id)),
                    "item": None, "answers": 0, "reveal": None}
            item = session.get(Item, room.current_item_id) if room.current_item_id else None
            if item is not None:
                view["item"] = self._item_view(item, now)
                view["answers"] = session.scalar(select(func.count(Answer.id)).where(Answer.item_id == item.id))
                if item.summary is not None:
                    view["reveal"] = {"model": item.model_answer, "summary": item.summary}
            return view

    def records(self, code: str, secret: str) -> list[dict]:
        """Every item of the room with its answers, for the export: one dict per (item, answer)."""
        with self._session() as session:
            room = self._instructor_room(session, code, secret, open_only=False)
            items = session.scalars(select(Item).where(Item.room_id == room.id).order_by(Item.position)).all()
            rows = session.execute(select(Answer.item_id, Learner.nickname, Answer.answer, Answer.answered_at)
                                   .join(Learner, Learner.id == Answer.learner_id)
                                   .join(Item, Item.id == Answer.item_id).where(Item.room_id == room.id)
                                   .order_by(Answer.answered_at)).all()
            by_item: dict[int, list] = {}
            for item_id, nickname, answer, when in rows:
                by_item.setdefault(item_id, []).append({"learner": nickname, "answer": answer, "answered_at": when})
            return [{"room": room.code, "item": self._item_view(item, self.clock()), "model": item.model_answer,
                     "model_best": item.model_best, "answers": by_item.get(item.id, [])} for item in items]


def _as_id(value: Any) -> int:
    """An item id from the API (a number), or -1 (no such item) for anything else."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return -1
    return number if 0 < number < 2**31 else -1


def _seconds(value: Any) -> int:
    try:
        seconds = int(float(value or 0))
    except (TypeError, ValueError):
        seconds = -1
    if not 0 <= seconds <= MAX_SECONDS:
        raise UserError("classroom.seconds_range", limit=MAX_SECONDS)
    return seconds
