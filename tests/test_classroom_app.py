"""Classroom mode through the running app: the API with gradio_client, and one instructor with three
learners (one in Chinese) in Chromium."""

from __future__ import annotations

import csv
import re

import pytest
from PIL import Image

from conftest import ARTIFACTS

gradio_client = pytest.importorskip("gradio_client")
MODEL = "local:tiny-bert"
PAIR = ("i was hungry .", "then i ate dinner .")


def client(url: str):
    return gradio_client.Client(url, verbose=False)


def open_room(url: str):
    teacher = client(url)
    room, markdown, qr = teacher.predict(api_name="/classroom_create")
    return teacher, room, markdown, qr


def push_pair(teacher) -> dict:
    return teacher.predict("next-sentence", PAIR[0], PAIR[1], "", 0, 0, MODEL, 0, api_name="/classroom_push")


def poll(learner) -> dict:
    return learner.predict(api_name="/classroom_poll")[0]


def test_api_round_trip_matches_the_model_and_keeps_answers_private(app_server, tiny_env) -> None:
    from model_utils.next_sentence import next_sentence

    teacher, room, markdown, qr = open_room(app_server)
    assert re.fullmatch(r"[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}", room["code"])
    assert room["link"].endswith(f"/?room={room['code']}") and room["code"] in markdown
    image = Image.open(qr)
    assert image.format == "PNG" and image.width == image.height >= 200
    assert sorted(c for _, c in image.convert("L").getcolors()) == [0, 255]  # black modules on white
    learners = [client(app_server) for _ in range(3)]
    for i, learner in enumerate(learners):
        learner.predict(room["code"].lower(), f"learner {i}", i == 0, api_name="/classroom_join")
    item = push_pair(teacher)
    assert item["choices"] == ["IsNext", "NotNext"] and item["model"] == MODEL
    for learner, pick in zip(learners, ("IsNext", "NotNext", "NotNext")):
        learner.predict(pick, item["id"], api_name="/classroom_answer")
    view = poll(learners[2])
    assert view["item"]["id"] == item["id"] and view["your_answer"] == "notnext" and view["reveal"] is None
    assert "learner 0" not in repr(view)
    assert teacher.predict(api_name="/classroom_status")[0]["answers"] == 3
    reveal = teacher.predict(api_name="/classroom_reveal")
    reference = next_sentence(*PAIR, model=MODEL)
    assert {r["answer"]: r["score"] for r in reveal["model"]["top"]} == pytest.approx(
        {"IsNext": reference["is_next"], "NotNext": reference["not_next"]}, abs=1e-5)
    assert reveal["summary"]["counts"] == {"isnext": 1, "notnext": 2}
    best = reveal["model"]["best"].lower()
    assert reveal["summary"]["agreement"] == pytest.approx(reveal["summary"]["counts"][best] / 3)
    assert poll(learners[0])["reveal"]["summary"] == reveal["summary"]
    exported = teacher.predict(api_name="/classroom_export")
    rows = list(csv.DictReader(open(exported, encoding="utf-8")))
    assert sorted((r["learner"], r["answer"]) for r in rows) == [
        ("learner 0", "isnext"), ("learner 1", "notnext"), ("learner 2", "notnext")]


def test_api_learners_cannot_drive_the_room(app_server) -> None:
    teacher, room, _, _ = open_room(app_server)
    learner = client(app_server)
    learner.predict(room["code"], "mallory", False, api_name="/classroom_join")
    for call in (lambda: push_pair(learner), lambda: learner.predict(api_name="/classroom_reveal"),
                 lambda: learner.predict(api_name="/classroom_export"),
                 lambda: learner.predict(api_name="/classroom_close")):
        with pytest.raises(gradio_client.exceptions.AppError, match="Only the instructor"):
            call()
    with pytest.raises(gradio_client.exceptions.AppError, match="No open room"):
        client(app_server).predict("ABCDE-FGHJK", "eve", False, api_name="/classroom_join")
    prober = client(app_server)
    messages = set()
    for _ in range(14):  # a burst of 10 then the rate (PLM_CLASSROOM_BURST): enumeration is throttled
        try:
            prober.predict("ABCDE-FGHJK", "eve", False, api_name="/classroom_join")
        except gradio_client.exceptions.AppError as err:
            messages.add(str(err).split(";")[0].split(".")[0])
    assert messages == {"No open room has that code", "Too many requests from this page"}


def test_every_classroom_message_has_chinese_and_user_text_is_escaped() -> None:
    from classroom import rooms  # noqa: F401 - defines the codes
    from demo import classroom_tab, i18n
    from model_utils.errors import codes

    ours = {c for c in set(codes()) | set(i18n.MESSAGES["en"]) if c.startswith("classroom.")}
    assert len(ours) >= 20 and not ours & set(i18n.untranslated_codes())
    item = {"kind": "fill-mask", "position": 1, "payload": {"text": "<img src=x> [MASK] *bold* https://x.io"}}
    shown = classroom_tab.question_markdown(item)
    assert re.search(r"(?<!\\)[<>\[]", shown.split("\n\n> ", 1)[1]) is None  # every markup character escaped
    assert "\\<img src=x\\>" in shown and "\\*bold\\*" in shown and "\\_\\_" in shown
    assert "https\\://" in shown  # no autolink


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
def test_browser_instructor_and_three_learners(app_server) -> None:
    from playwright.sync_api import expect, sync_playwright

    from test_classify_app import CHROMIUM_ARGS, open_tab

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            teacher = browser.new_context(locale="en-US", viewport={"width": 1200, "height": 1400}).new_page()
            teacher.goto(app_server)
            open_tab(teacher, "Classroom")
            teacher.get_by_role("tab", name="Teach (instructor)").click()
            teacher.locator("#cr-create").click()
            expect(teacher.locator("#cr-room")).to_contain_text("Room", timeout=60_000)
            code = re.search(r"[2-9A-Z]{5}-[2-9A-Z]{5}", teacher.locator("#cr-room").inner_text()).group(0)
            expect(teacher.locator("#cr-qr img")).to_be_visible()
            learners = []
            for name, locale in (("ann", "en-US"), ("bob", "en-US"), ("chen", "zh-CN")):
                page = browser.new_context(locale=locale).new_page()
                page.goto(f"{app_server}?room={code}")
                expect(page.locator("#cr-code textarea, #cr-code input").first).to_have_value(code, timeout=60_000)
                page.locator("#cr-nickname textarea, #cr-nickname input").first.fill(name)
                page.locator("#cr-join").click()
                expect(page.locator("#cr-learner-status")).to_contain_text(code, timeout=30_000)
                learners.append(page)
            expect(learners[2].locator("#cr-question")).to_contain_text("等待老师", timeout=30_000)
            teacher.locator("#cr-kind").get_by_text("Next Sentence").click()
            teacher.locator("#cr-text textarea").fill(PAIR[0])
            teacher.locator("#cr-second textarea").fill(PAIR[1])
            teacher.locator("#cr-model textarea").fill(MODEL)
            teacher.locator("#cr-push").click()
            for page, pick in zip(learners, ("IsNext", "NotNext", "NotNext")):
                expect(page.locator("#cr-question")).to_contain_text(PAIR[1], timeout=30_000)
                page.locator("#cr-choice").get_by_text(pick, exact=True).click()
                expect(page.locator("#cr-saved")).to_contain_text(pick.lower(), timeout=30_000)
            expect(teacher.locator("#cr-live")).to_contain_text("3 answers", timeout=30_000)
            teacher.locator("#cr-reveal").click()
            expect(teacher.locator("#cr-teach-reveal")).to_contain_text("of the class (", timeout=60_000)
            for page in learners:
                expect(page.locator("#cr-learner-chart")).to_be_visible(timeout=30_000)
            expect(learners[0].locator("#cr-learner-reveal")).to_contain_text("The model (local:tiny-bert) says")
            expect(learners[2].locator("#cr-learner-reveal")).to_contain_text("模型（local:tiny-bert）的答案是")
            expect(learners[2].get_by_role("tab", name="课堂")).to_be_visible()
            learners[2].screenshot(path=str(ARTIFACTS / "classroom-learner-zh.png"), full_page=True)
            teacher.screenshot(path=str(ARTIFACTS / "classroom-teacher.png"), full_page=True)
        finally:
            browser.close()


def test_a_screen_whose_room_is_gone_says_so_once_instead_of_failing_every_poll(tmp_path, monkeypatch) -> None:
    from demo import classroom_tab

    monkeypatch.setenv("PLM_DATA_DIR", str(tmp_path))
    view = classroom_tab.learner_status({"token": "expired-or-unknown"})
    assert view == {"problem": "No open room has that code. Check it with your instructor."}
    assert classroom_tab.render_learner(view)[1] == classroom_tab.markdown_text(view["problem"])
    assert "problem" in classroom_tab.instructor_status({"code": "ABCDE-FGHJK", "secret": "x"})
