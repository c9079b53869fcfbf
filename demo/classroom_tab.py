"""Classroom tab: the instructor opens a room and pushes questions; learners predict, then the model reveals.

Two panels. **Join** (learners): the room code (filled from ``/?room=CODE``) and a nickname; then
the current question follows the instructor by polling (``gr.Timer``), with a countdown, and
after the reveal the class's answers beside the model's. **Teach** (instructor): open a room (code,
join link, QR code), push a question built from any tab's task, watch the answers come in,
reveal, export CSV, close. Secrets live in ``gr.State`` (server-side, per browser session), never
in a URL. Everything is stored by :mod:`classroom` in the database, so several app processes can
serve one class. API names: ``classroom_create``, ``classroom_join``, ``classroom_poll``,
``classroom_answer``, ``classroom_status``, ``classroom_push``, ``classroom_reveal``,
``classroom_close``, ``classroom_export``.
"""

from __future__ import annotations

import io
import re
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gradio as gr
import segno
from PIL import Image

from classroom import KINDS, RateLimiter, normalize_code, open_classroom, to_csv
from classroom.kinds import display_answer, normalize_answer
from classroom.schema import ANSWER_CHARS, NICKNAME_CHARS
from demo.classroom_plots import class_vs_model
from demo.common import TabParts, examples, text_limit, user_errors
from demo.i18n import I18N, add_messages, add_strings, text
from demo.messages import markdown_text, say, translate
from model_utils.config import get_settings
from model_utils.errors import UserError

STRINGS = {
    "en": {
        "tab_classroom": "Classroom",
        "cr_intro": "Predict first, then see what the model says. The instructor opens a room and pushes "
                    "questions; everyone answers on their own screen; the reveal shows the class's answers "
                    "beside the model's.",
        "cr_join_tab": "Join (learners)",
        "cr_teach_tab": "Teach (instructor)",
        "cr_code": "Room code",
        "cr_nickname": "Nickname",
        "cr_leaderboard": "Show me on the leaderboard",
        "cr_join": "Join",
        "cr_answer_word": "Your answer (one word)",
        "cr_answer_choice": "Your answer",
        "cr_submit": "Submit",
        "cr_reveal_chart": "The class and the model",
        "cr_create": "Open a new room",
        "cr_qr": "Scan to join",
        "cr_kind": "Question",
        "cr_text": "Text (Fill-Mask: with one [MASK]; Next Sentence: sentence A)",
        "cr_second": "Sentence B (Next Sentence)",
        "cr_word": "Word (Attention: which word does it attend to?)",
        "cr_layer": "Layer (Attention, from 0)",
        "cr_head": "Head (Attention, from 0)",
        "cr_model": "Model (blank = the task's default)",
        "cr_seconds": "Countdown in seconds (0 = none)",
        "cr_push": "Push to the class",
        "cr_reveal": "Reveal",
        "cr_export": "Export CSV",
        "cr_close": "Close the room",
        "cr_export_file": "Items, answers and the model's outputs",
        "kind_fill-mask": "Fill-Mask: which word fills the blank?",
        "kind_next-sentence": "Next Sentence: does B follow A?",
        "kind_classify": "Classify: which label?",
        "kind_attention": "Attention: which word does it attend to most?",
    },
    "zh-CN": {
        "tab_classroom": "课堂",
        "cr_intro": "先预测，再看模型怎么说。老师创建房间并推送问题；每个人在自己的屏幕上作答；"
                    "揭晓时把全班的答案和模型的答案放在一起。",
        "cr_join_tab": "加入（学生）",
        "cr_teach_tab": "授课（老师）",
        "cr_code": "房间码",
        "cr_nickname": "昵称",
        "cr_leaderboard": "在排行榜上显示我",
        "cr_join": "加入",
        "cr_answer_word": "你的答案（一个词）",
        "cr_answer_choice": "你的答案",
        "cr_submit": "提交",
        "cr_reveal_chart": "全班与模型",
        "cr_create": "创建新房间",
        "cr_qr": "扫码加入",
        "cr_kind": "问题类型",
        "cr_text": "文本（掩码填充：含一个 [MASK]；下一句预测：句子 A）",
        "cr_second": "句子 B（下一句预测）",
        "cr_word": "词（注意力：这个词最关注哪个词？）",
        "cr_layer": "层（注意力，从 0 开始）",
        "cr_head": "头（注意力，从 0 开始）",
        "cr_model": "模型（留空 = 该任务的默认模型）",
        "cr_seconds": "倒计时秒数（0 = 不限时）",
        "cr_push": "推送给全班",
        "cr_reveal": "揭晓",
        "cr_export": "导出 CSV",
        "cr_close": "关闭房间",
        "cr_export_file": "问题、答案和模型输出",
        "kind_fill-mask": "掩码填充：哪个词填入空白？",
        "kind_next-sentence": "下一句预测：B 是否接在 A 之后？",
        "kind_classify": "文本分类：哪个标签？",
        "kind_attention": "注意力：这个词最关注哪个词？",
    },
}

# Texts the server writes into Markdown per request (English, Chinese).
# Texts the server writes (by code, English and Chinese), and the Chinese of the classroom package's codes.
MESSAGES = {
    "en": {
        'classroom.say.joined': 'You are in room **{code}** as **{nickname}**.',
        'classroom.say.waiting': "Waiting for the instructor's first question…",
        'classroom.say.closed': 'The instructor has closed this room. Thank you!',
        'classroom.say.score': 'Your score: **{score}**',
        'classroom.say.your_answer': 'Your answer: **{answer}** (you can change it until the reveal)',
        'classroom.say.no_answer': 'Not answered yet.',
        'classroom.say.seconds_left': '⏱ {seconds} s left',
        'classroom.say.time_up': '⏱ Time is up',
        'classroom.say.question': 'Question {position}',
        'classroom.say.q_fill-mask': 'Which word fills the blank?',
        'classroom.say.q_next-sentence': 'Does sentence B follow sentence A?',
        'classroom.say.q_classify': 'Which label does this text get?',
        'classroom.say.q_attention': 'In layer {layer}, head {head}, which word does **{word}** attend to most?',
        'classroom.say.model_says': 'The model ({model}) says **{best}**.',
        'classroom.say.agreement': '{share:.0%} of the class ({agreeing} of {total}) agreed with the model.',
        'classroom.say.no_answers': 'Nobody answered.',
        'classroom.say.you_agreed': '✅ You agreed with the model.',
        'classroom.say.you_differed': 'You answered {answer}.',
        'classroom.say.special_share': "({share:.0%} of this head's attention went to special tokens such as [CLS] and [SEP]; the chart shares out the rest.)",
        'classroom.say.leaderboard': '**Leaderboard**',
        'classroom.say.room': 'Room **{code}** · join at {link}',
        'classroom.say.live': '{learners} learners · question {position}: **{answers}** answers',
        'classroom.say.live_none': '{learners} learners · no question yet',
        'classroom.say.class': 'Class',
        'classroom.say.model': 'Model',
        'classroom.say.saved': 'Answer saved: **{answer}**',
    },
    "zh-CN": {
        'classroom.say.joined': '你已作为 **{nickname}** 加入房间 **{code}**。',
        'classroom.say.waiting': '等待老师推送第一个问题……',
        'classroom.say.closed': '老师已关闭这个房间。谢谢参与！',
        'classroom.say.score': '你的得分：**{score}**',
        'classroom.say.your_answer': '你的答案：**{answer}**（揭晓前可以修改）',
        'classroom.say.no_answer': '还没有作答。',
        'classroom.say.seconds_left': '⏱ 还剩 {seconds} 秒',
        'classroom.say.time_up': '⏱ 时间到',
        'classroom.say.question': '第 {position} 题',
        'classroom.say.q_fill-mask': '哪个词填入空白？',
        'classroom.say.q_next-sentence': '句子 B 是否紧接在句子 A 之后？',
        'classroom.say.q_classify': '这段文本属于哪个标签？',
        'classroom.say.q_attention': '在第 {layer} 层第 {head} 个头中，**{word}** 最关注哪个词？',
        'classroom.say.model_says': '模型（{model}）的答案是 **{best}**。',
        'classroom.say.agreement': '全班 {share:.0%}（{total} 人中的 {agreeing} 人）与模型一致。',
        'classroom.say.no_answers': '没有人作答。',
        'classroom.say.you_agreed': '✅ 你和模型一致。',
        'classroom.say.you_differed': '你的答案是 {answer}。',
        'classroom.say.special_share': '（这个头有 {share:.0%} 的注意力落在 [CLS]、[SEP] 等特殊词元上；图中是其余部分的分配。）',
        'classroom.say.leaderboard': '**排行榜**',
        'classroom.say.room': '房间 **{code}** · 加入链接 {link}',
        'classroom.say.live': '{learners} 名学生 · 第 {position} 题：已有 **{answers}** 个答案',
        'classroom.say.live_none': '{learners} 名学生 · 还没有问题',
        'classroom.say.class': '全班',
        'classroom.say.model': '模型',
        'classroom.say.saved': '已保存答案：**{answer}**',
        'classroom.no_room': '没有使用这个房间码的开放房间。请向老师核对房间码。',
        'classroom.not_instructor': '只有创建这个房间的老师才能这样做。',
        'classroom.not_joined': '请先加入一个房间。',
        'classroom.closed': '老师已关闭这个房间。',
        'classroom.nickname_bad': '昵称为 1 到 {limit} 个字符，且只占一行。',
        'classroom.nickname_taken': '这个房间里已经有人叫 {nickname}；请换一个昵称。',
        'classroom.room_full': '这个房间已满（{limit} 名学生）。',
        'classroom.no_item': '还没有问题。',
        'classroom.item_gone': '这个问题已经结束：老师已经推送了下一个问题。',
        'classroom.revealed': '这个问题的答案已经揭晓，不能再作答。',
        'classroom.time_up': '这个问题的时间到了。',
        'classroom.answer_bad': '答案为 1 到 {limit} 个字符，且只占一行。',
        'classroom.answer_not_choice': '请从以下选项中选择：{choices}。',
        'classroom.seconds_range': '倒计时为 0（不限时）到 {limit} 秒。',
        'classroom.item_limit': '这个房间已经有 {limit} 个问题了；请创建新房间。',
        'classroom.slow_down': '这个页面的请求太频繁了；请等待 {seconds} 秒再试。',
        'classroom.kind_unknown': '未知的问题类型 {kind}；可选：{kinds}。',
        'classroom.one_mask': '掩码填充题需要恰好一个 [MASK]（现在有 {count} 个）。',
        'classroom.word_missing': '句子中没有 {word} 这个词；句子中的词是：{words}。',
        'classroom.layer_range': '{model} 的层为 0-{last_layer}，头为 0-{last_head}；不存在第 {layer} 层第 {head} 个头。',
        'classroom.too_many_tokens': '这个句子有 {count} 个词元；注意力题最多 {limit} 个。',
        'classroom.no_labels': '{model} 没有可选的标签。',
    },
}
add_strings(STRINGS)
add_messages(MESSAGES)


POLL_SECONDS = 2.0  # learners' and instructor's screens follow the room this often
PUSH_EXAMPLES = [
    ["fill-mask", "Paris is the [MASK] of France.", "", "", 0, 0, 20],
    ["next-sentence", "I was very hungry after work.", "So I cooked a big dinner.", "", 0, 0, 20],
    ["classify", "The film was a complete waste of time.", "", "", 0, 0, 20],
    ["attention", "The animal didn't cross the street because it was too tired.", "", "it", 5, 3, 30],
]
_MASK = re.compile(r"\[mask\]|<mask>", re.IGNORECASE)
_limiter: RateLimiter | None = None
_limiter_lock = threading.Lock()


def _say(key: str, **params: Any) -> str:
    return say(f"classroom.say.{key}", **params)


def limiter() -> RateLimiter:
    """The process's per-session rate limiter (``PLM_CLASSROOM_RATE_PER_MIN``, ``PLM_CLASSROOM_BURST``)."""
    global _limiter
    with _limiter_lock:
        if _limiter is None:
            settings = get_settings()
            _limiter = RateLimiter(settings.classroom_rate_per_min, settings.classroom_burst)
        return _limiter


def _limit(request: gr.Request | None) -> None:
    limiter().check(getattr(request, "session_hash", None) or "anonymous")


def _instructor(state: dict | None) -> tuple[str, str]:
    state = state or {}
    return state.get("code", ""), state.get("secret", "")


# ------------------------------------------------------------------ join link and QR code


def join_link(code: str, request: gr.Request | None) -> str:
    """``<the page's address>?room=CODE``: the page the instructor is on (its Referer), else the request's host."""
    headers = getattr(request, "headers", None) or {}
    page = headers.get("referer") or ""
    parts = urlsplit(page)
    if not (parts.scheme in ("http", "https") and parts.netloc):
        host = headers.get("x-forwarded-host") or headers.get("host") or "127.0.0.1:7860"
        parts = urlsplit(f"{headers.get('x-forwarded-proto') or 'http'}://{host}/")
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", f"room={code}", ""))


def qr_image(link: str) -> Image.Image:
    """The join link as a QR code image (segno), large enough to scan from the back of a room."""
    buffer = io.BytesIO()
    segno.make(link, error="m").save(buffer, kind="png", scale=8, border=2)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


# ------------------------------------------------------------------ instructor events


@user_errors
def create_room(request: gr.Request) -> tuple[dict, dict, str, Image.Image]:
    """API ``classroom_create``: open a room. Returns (instructor state, ``{"code", "link"}``, Markdown, QR)."""
    _limit(request)
    room = open_classroom().create_room()
    link = join_link(room["code"], request)
    state = {"code": room["code"], "secret": room["secret"]}
    shown = _say("room", code=room["code"], link=markdown_text(link))
    return state, {"code": room["code"], "link": link}, shown, qr_image(link)


def push_item(values: dict, request: gr.Request | None = None) -> dict:
    """Put a question on every learner's screen; ``values`` by name (state, kind, text, second, word,
    layer, head, model, seconds). Returns the question as learners see it."""
    _limit(request)
    code, secret = _instructor(values["state"])
    fields = {k: values[k] for k in ("text", "second", "word", "layer", "head")}
    return open_classroom().push(code, secret, values["kind"], fields, values["model"], values["seconds"])


def _push_event(components: dict) -> Any:
    """API ``classroom_push``: the form's values (a dict keyed by component) by name, to :func:`push_item`."""
    names = {component: name for name, component in components.items()}

    @user_errors
    def classroom_push(values: dict, request: gr.Request) -> dict:
        return push_item({names[c]: v for c, v in values.items()}, request)

    return classroom_push


@user_errors
def reveal_item(state: dict | None, request: gr.Request) -> dict:
    """API ``classroom_reveal``: stop answers, run the model once, return ``{"item", "model", "summary"}``."""
    _limit(request)
    return open_classroom().reveal(*_instructor(state))


@user_errors
def close_room(state: dict | None, request: gr.Request) -> dict:
    """API ``classroom_close``: close the room (no more joins or answers); returns the room's status."""
    _limit(request)
    service = open_classroom()
    service.close(*_instructor(state))
    return service.instructor_view(*_instructor(state))


@user_errors
def export_room(state: dict | None, request: gr.Request) -> str:
    """API ``classroom_export``: the room's items, answers and model outputs as a CSV file."""
    _limit(request)
    code, secret = _instructor(state)
    records = open_classroom().records(code, secret)
    path = Path(tempfile.mkdtemp(prefix="plm-classroom-")) / f"classroom-{normalize_code(code)}.csv"
    path.write_text(to_csv(records), encoding="utf-8")
    return str(path)


def _view_or_problem(get_view: Any, *args: Any) -> dict:
    """A screen's view, or ``{"problem": message}`` when the room is gone (said once, not a toast per poll)."""
    try:
        return get_view(*args)
    except UserError as err:
        return {"problem": translate(err)}


@user_errors
def instructor_status(state: dict | None) -> dict:
    """API ``classroom_status``: learners, the current question, the live count of answers, the reveal."""
    if not state:
        return {}
    return _view_or_problem(open_classroom().instructor_view, *_instructor(state))


# ------------------------------------------------------------------ learner events


@user_errors
def join_room(code: str, nickname: str, leaderboard: bool, request: gr.Request) -> tuple[dict, str, dict]:
    """API ``classroom_join``: join with a code and a nickname. Returns (learner state, Markdown, timer)."""
    _limit(request)
    joined = open_classroom().join(code, nickname, bool(leaderboard))
    state = {"token": joined["token"]}
    return state, _say("joined", code=joined["code"], nickname=markdown_text(joined["nickname"])), gr.Timer(active=True)


@user_errors
def submit_answer(answer: str, item_id: float | None, state: dict | None, request: gr.Request) -> str:
    """API ``classroom_answer``: answer question ``item_id`` (the one on screen); a new answer replaces the last."""
    _limit(request)
    saved = open_classroom().answer((state or {}).get("token"), item_id, answer)
    return _say("saved", answer=markdown_text(saved["answer"]))


@user_errors
def learner_status(state: dict | None) -> dict:
    """API ``classroom_poll``: what this learner's screen shows (no other learner's answer before the reveal)."""
    if not state:
        return {}
    return _view_or_problem(open_classroom().learner_view, state.get("token"))


# ------------------------------------------------------------------ rendering


def question_markdown(item: dict) -> str:
    """The question as learners read it (user text escaped; the mask shown as a blank)."""
    payload, kind = item["payload"], item["kind"]
    title = f"### {_say('question', position=item['position'])}: {_say('q_' + kind, **_question_params(payload))}"
    if kind == "fill-mask":
        body = " **\\_\\_\\_\\_\\_** ".join(markdown_text(part) for part in _MASK.split(payload["text"]))
    elif kind == "next-sentence":
        body = f"**A:** {markdown_text(payload['first'])}\n\n**B:** {markdown_text(payload['second'])}"
    else:
        body = markdown_text(payload["text"])
    return f"{title}\n\n> {body}"


def _question_params(payload: dict) -> dict:
    return {"layer": payload.get("layer", 0), "head": payload.get("head", 0),
            "word": markdown_text(str(payload.get("word", "")))}


def reveal_markdown(item: dict, reveal: dict, your_answer: str | None = None) -> str:
    """What the reveal says: the model's answer, the share of the class that agreed, the leaderboard."""
    model, summary = reveal["model"], reveal["summary"]
    best = markdown_text(display_answer(model["best"], item["choices"]) or "")
    lines = [_say("model_says", model=markdown_text(model["model"] or ""), best=best)]
    if summary["total"]:
        agreeing = round(summary["agreement"] * summary["total"])
        lines.append(_say("agreement", share=summary["agreement"], agreeing=agreeing, total=summary["total"]))
    else:
        lines.append(_say("no_answers"))
    if model.get("special_share"):
        lines.append(_say("special_share", share=model["special_share"]))
    lines.extend(f"⚠️ {markdown_text(translate(n))}" for n in model.get("notices", []))
    if your_answer is not None:
        agreed = your_answer == normalize_answer(model["best"])
        lines.append(_say("you_agreed") if agreed else _say("you_differed", answer=markdown_text(
            display_answer(your_answer, item["choices"]))))
    if summary.get("leaderboard"):
        board = "\n".join(f"{i}. {markdown_text(r['nickname'])}: {r['score']}"
                          for i, r in enumerate(summary["leaderboard"], start=1))
        lines.append(f"{_say('leaderboard')}\n\n{board}")
    return "\n\n".join(lines)


def reveal_chart(item: dict, reveal: dict) -> Any:
    return class_vs_model(reveal["model"], reveal["summary"], item["choices"], (_say("class"), _say("model")))


def _countdown(item: dict | None) -> str:
    if not item or item["seconds_left"] is None or item["revealed"]:
        return ""
    left = int(item["seconds_left"] + 0.999)
    return _say("seconds_left", seconds=left) if left > 0 else _say("time_up")


def render_learner(view: dict) -> tuple:
    """(item id, status, question, countdown, choice radio, word box, submit button, chart, reveal text)
    of a learner view."""
    hidden = gr.update(visible=False)
    if not view:
        return None, gr.skip(), "", "", hidden, hidden, hidden, hidden, ""
    if "problem" in view:
        return None, markdown_text(view["problem"]), "", "", hidden, hidden, hidden, hidden, ""
    status = _say("score", score=view["score"])
    item = view["item"]
    if view["closed"]:
        return None, _say("closed") + "\n\n" + status, "", "", hidden, hidden, hidden, hidden, ""
    if item is None:
        return None, status, _say("waiting"), "", hidden, hidden, hidden, hidden, ""
    return (item["id"], *_render_item(view, item, status))


def _render_item(view: dict, item: dict, status: str) -> tuple:
    hidden = gr.update(visible=False)
    mine = view["your_answer"]
    status += "\n\n" + (_say("your_answer", answer=markdown_text(display_answer(mine, item["choices"])))
                        if mine else _say("no_answer"))
    open_ = not item["revealed"]
    choices = item["choices"] or []
    radio = gr.update(visible=bool(choices), choices=choices, interactive=open_,
                      value=display_answer(mine, choices) if mine and choices else None)
    word = gr.update(visible=not choices, interactive=open_)
    button = gr.update(visible=not choices and open_)
    if view["reveal"]:
        return (status, question_markdown(item), "", radio, word, button,
                gr.update(visible=True, value=reveal_chart(item, view["reveal"])),
                reveal_markdown(item, view["reveal"], mine))
    return status, question_markdown(item), _countdown(item), radio, word, button, hidden, ""


def render_instructor(view: dict) -> tuple:
    """(live status, question, countdown, chart, reveal text) of the instructor's view."""
    hidden = gr.update(visible=False)
    if not view:
        return "", "", "", hidden, ""
    if "problem" in view:
        return markdown_text(view["problem"]), "", "", hidden, ""
    item = view["item"]
    if item is None:
        return _say("live_none", learners=view["learners"]), "", "", hidden, ""
    live = _say("live", learners=view["learners"], position=item["position"], answers=view["answers"])
    if view["closed"]:
        live = _say("closed") + "\n\n" + live
    if view["reveal"]:
        return (live, question_markdown(item), "", gr.update(visible=True, value=reveal_chart(item, view["reveal"])),
                reveal_markdown(item, view["reveal"]))
    return live, question_markdown(item), _countdown(item), hidden, ""


def _follow(status_fn: Any, render_fn: Any) -> Any:
    """A poll handler: the view (for API clients) and the rendered screen, skipped while nothing changed."""

    def poll(state: dict | None, shown: Any) -> tuple:
        view = status_fn(state)
        fingerprint = repr(view)
        if fingerprint == shown:
            return (view, gr.skip(), *[gr.skip()] * len(render_fn({})))
        return (view, fingerprint, *render_fn(view))

    return poll


# ------------------------------------------------------------------ layout


def fill_from_url(request: gr.Request) -> Any:
    """On page load and tab open: ``/?room=CODE`` fills the room code (nothing else is read from the URL)."""
    room = normalize_code((getattr(request, "query_params", None) or {}).get("room", ""))
    return room or gr.skip()


def _learner_panel() -> dict:
    state = gr.State(None)
    shown = gr.State(None)
    with gr.Row():
        code = gr.Textbox(label=I18N("cr_code"), max_length=32, elem_id="cr-code")
        nickname = gr.Textbox(label=I18N("cr_nickname"), max_length=NICKNAME_CHARS, elem_id="cr-nickname")
        board = gr.Checkbox(label=I18N("cr_leaderboard"), value=False, elem_id="cr-board")
    join = gr.Button(I18N("cr_join"), variant="primary", elem_id="cr-join")
    status = gr.Markdown(elem_id="cr-learner-status")
    question = gr.Markdown(elem_id="cr-question")
    countdown = gr.Markdown(elem_id="cr-countdown")
    radio = gr.Radio(label=I18N("cr_answer_choice"), visible=False, elem_id="cr-choice")
    with gr.Row():
        word = gr.Textbox(label=I18N("cr_answer_word"), visible=False, max_length=ANSWER_CHARS, elem_id="cr-word")
        submit = gr.Button(I18N("cr_submit"), visible=False, elem_id="cr-submit")
    saved = gr.Markdown(elem_id="cr-saved")
    chart = gr.Plot(label=I18N("cr_reveal_chart"), visible=False, elem_id="cr-learner-chart")
    reveal = gr.Markdown(elem_id="cr-learner-reveal")
    view = gr.JSON(visible=False)
    item_id = gr.Number(visible=False, precision=0)
    timer = gr.Timer(POLL_SECONDS, active=False)
    join.click(join_room, [code, nickname, board], [state, status, timer], api_name="classroom_join",
               concurrency_limit=16)
    screen = [item_id, status, question, countdown, radio, word, submit, chart, reveal]
    timer.tick(_follow(learner_status, render_learner), [state, shown], [view, shown, *screen],
               api_name="classroom_poll", concurrency_limit=16, show_progress="hidden")
    gr.on([submit.click, word.submit], submit_answer, [word, item_id, state], saved, api_name="classroom_answer",
          concurrency_limit=16)
    radio.input(submit_answer, [radio, item_id, state], saved, api_visibility="private", concurrency_limit=16)
    return {"code": code}


def _push_form() -> dict:
    kinds = [(I18N(f"kind_{name}"), name) for name in KINDS]
    kind = gr.Radio(kinds, value="fill-mask", label=I18N("cr_kind"), elem_id="cr-kind")
    text_box = gr.Textbox(label=I18N("cr_text"), value=PUSH_EXAMPLES[0][1], max_length=text_limit(), elem_id="cr-text")
    second = gr.Textbox(label=I18N("cr_second"), max_length=text_limit(), elem_id="cr-second")
    with gr.Row():
        word = gr.Textbox(label=I18N("cr_word"), max_length=ANSWER_CHARS, elem_id="cr-attn-word")
        layer = gr.Number(label=I18N("cr_layer"), value=0, precision=0, minimum=0, elem_id="cr-layer")
        head = gr.Number(label=I18N("cr_head"), value=0, precision=0, minimum=0, elem_id="cr-head")
    with gr.Row():
        model = gr.Textbox(label=I18N("cr_model"), max_length=200, elem_id="cr-model")
        seconds = gr.Slider(0, 120, value=0, step=5, label=I18N("cr_seconds"), elem_id="cr-seconds")
    block = examples(PUSH_EXAMPLES, inputs=[kind, text_box, second, word, layer, head, seconds])
    for shown, raw in zip(block.dataset.samples, block.dataset.raw_samples):  # the table shows the kind's
        shown[0] = text(f"kind_{raw[0]}")  # label in English, like its headers (I18N labels show raw there)
    return {"kind": kind, "text": text_box, "second": second, "word": word, "layer": layer, "head": head,
            "model": model, "seconds": seconds}


def _teach_panel() -> None:
    state = gr.State(None)
    shown = gr.State(None)
    create = gr.Button(I18N("cr_create"), variant="primary", elem_id="cr-create")
    with gr.Row():
        room_md = gr.Markdown(elem_id="cr-room")
        qr = gr.Image(label=I18N("cr_qr"), type="pil", format="png", interactive=False, height=240,
                      elem_id="cr-qr")
    room_json = gr.JSON(visible=False)
    form = _push_form()
    with gr.Row():
        push = gr.Button(I18N("cr_push"), variant="primary", elem_id="cr-push")
        reveal = gr.Button(I18N("cr_reveal"), elem_id="cr-reveal")
        export = gr.Button(I18N("cr_export"), elem_id="cr-export")
        close = gr.Button(I18N("cr_close"), variant="stop", elem_id="cr-close")
    live = gr.Markdown(elem_id="cr-live")
    question = gr.Markdown(elem_id="cr-teach-question")
    countdown = gr.Markdown(elem_id="cr-teach-countdown")
    chart = gr.Plot(label=I18N("cr_reveal_chart"), visible=False, elem_id="cr-teach-chart")
    reveal_md = gr.Markdown(elem_id="cr-teach-reveal")
    csv_file = gr.File(label=I18N("cr_export_file"), interactive=False, elem_id="cr-csv")
    view = gr.JSON(visible=False)
    result = gr.JSON(visible=False)
    timer = gr.Timer(POLL_SECONDS, active=False)
    create.click(create_room, None, [state, room_json, room_md, qr], api_name="classroom_create").success(
        lambda: gr.Timer(active=True), None, timer, api_visibility="private", queue=False)
    push.click(_push_event({"state": state, **form}), {state, *form.values()}, result, api_name="classroom_push")
    reveal.click(reveal_item, state, result, api_name="classroom_reveal")
    close.click(close_room, state, result, api_name="classroom_close")
    export.click(export_room, state, csv_file, api_name="classroom_export")
    screen = [live, question, countdown, chart, reveal_md]
    poll = _follow(instructor_status, render_instructor)
    timer.tick(poll, [state, shown], [view, shown, *screen], api_name="classroom_status",
               concurrency_limit=16, show_progress="hidden")
    # The screen follows a push, a reveal or a close at once, not at the next tick.
    result.change(poll, [state, gr.State(None)], [view, shown, *screen], api_visibility="private",
                  show_progress="hidden")


def build_tab() -> TabParts:
    """Lay out the Classroom tab: Join for learners, Teach for the instructor. A join link (``?room=``)
    opens this tab with the code filled in."""
    gr.Markdown(I18N("cr_intro"))
    with gr.Tabs():
        with gr.Tab(I18N("cr_join_tab"), id="cr-join-tab"):
            learner = _learner_panel()
        with gr.Tab(I18N("cr_teach_tab"), id="cr-teach-tab"):
            _teach_panel()
    return TabParts(on_open=dict(fn=fill_from_url, outputs=[learner["code"]], api_visibility="private", queue=False),
                    opens_from_url="room")
