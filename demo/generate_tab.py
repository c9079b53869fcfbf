"""Generate tab: GPT-style next-token prediction, sampling made visible, and BERT vs GPT side by side.

Four panels; the first two share the causal model picker, the last two have their own:

* **Next token, step by step**: the next-token bars before and after temperature, top-k and top-p
  (API ``next_token``, redrawn as the sliders move); add the model's choice (``generate_step``), any
  candidate (``choose_token``), undo (``undo_token``); generate from the prompt (``generate``) or
  continue the steps to the end (``generate_continue``), streamed token by token, with Stop. The steps
  so far live in the session's ``gr.State`` (prompt, model, token ids, who chose each).
* **Greedy vs sampling vs beam** on one prompt and seed (``compare_strategies``).
* **Perplexity** of any text under a causal or a masked LM (``score_text``).
* **BERT vs GPT**: word by word, a masked LM (both sides) against a causal LM (left side only), with both
  attention masks (``bert_vs_gpt``) and a link to the Attention tab.

The step handlers take their values by name (``by_name``: the event's inputs are a set of components).
"""

from __future__ import annotations

import functools
import html
import threading
import time
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import gradio as gr

from demo import generate_plots as plots
from demo.common import (TabParts, clear_on_failure, default_model, examples, model_choices, model_dropdown,
                         table_output, text_limit, user_errors)
from demo.forms import values_of
from demo.i18n import I18N, add_messages, add_strings
from demo.messages import markdown_text, say, table, translate
from model_utils import bert_vs_gpt, generate, generate_stream, next_token, score_text
from model_utils.config import get_settings

TASK = "text-generation"
PROMPTS = [["The weather today is"], ["I was very hungry after work, so I"], ["Once upon a time, a little"],
           ["My favourite film is"]]
SCORE_TEXTS = [["The cat sat on the mat."], ["The mat sat on the cat."], ["Colourless green ideas sleep furiously."]]
SENTENCES = [["The cat sat on the mat because it was tired."], ["I drank a cup of hot coffee this morning."],
             ["She went to the bank to deposit her money."]]
COMPARE_HEADERS = ["gen_col_strategy", "gen_col_tokens", "gen_col_logprob", "gen_col_perplexity", "gen_col_ended"]
WORD_HEADERS = ["gen_col_word", "gen_col_masked_p", "gen_col_masked_guess", "gen_col_causal_p", "gen_col_causal_guess"]
# app.py's id of the Attention tab: the BERT vs GPT panel's link selects it in the browser (no server round trip)
OPEN_ATTENTION_JS = """() => {
    document.querySelector('button[data-tab-id="tab_attention"]')?.click();
    window.scrollTo({top: 0});
}"""
UPDATE_EVERY_S = 0.1  # the streamed text is redrawn at most 10 times a second, however fast the model is
TEXT_STYLE = "white-space:pre-wrap;line-height:2;font-size:1.05em;padding:6px 2px"

STRINGS = {
    "en": {
        "tab_generate": "Generate",
        "gen_intro": "GPT-style models read only the **left side** and predict the **next token**; BERT reads both "
                     "sides of a masked word. Here a left-to-right model continues your text: see its next-token "
                     "distribution and what temperature, top-k and top-p do to it, pick tokens yourself, compare "
                     "decoding strategies, measure perplexity, and put BERT and GPT side by side.",
        "gen_step_tab": "Next token, step by step",
        "gen_prompt": "Prompt",
        "gen_temperature": "Temperature",
        "gen_top_k": "top-k (0 = off)",
        "gen_top_p": "top-p (1 = off)",
        "gen_strategy": "The model's choice",
        "gen_greedy": "greedy (the most likely token)",
        "gen_sample": "sampling (seeded)",
        "gen_beam": "beam search",
        "gen_seed": "Seed",
        "gen_max_new": "New tokens at most",
        "gen_beams": "Beams",
        "gen_show": "Show the next token",
        "gen_step": "Add the model's choice",
        "gen_candidate": "Or pick any candidate",
        "gen_add": "Add this token",
        "gen_undo": "Undo",
        "gen_restart": "Start over",
        "gen_run": "Generate from the prompt",
        "gen_continue": "Continue to the end",
        "gen_stop": "Stop",
        "gen_legend": "Colour = probability under the model (red: unlikely, green: likely); hover over a token for "
                      "its rank and the model's alternatives. Outlined tokens were chosen by you.",
        "gen_compare_tab": "Greedy vs sampling vs beam",
        "gen_compare_intro": "The same prompt decoded three ways: always the most likely token, drawn at random "
                             "after the filters (with the seed, so it can be repeated), and beam search, which keeps "
                             "the most likely sequences rather than tokens.",
        "gen_compare_run": "Compare the three",
        "gen_col_strategy": "strategy", "gen_col_tokens": "new tokens", "gen_col_logprob": "log-probability",
        "gen_col_perplexity": "perplexity", "gen_col_ended": "ended by",
        "gen_perplexity_tab": "Perplexity",
        "gen_ppl_intro": "How surprised a model is by a text: perplexity is exp(−mean log-probability) of its tokens. "
                         "A left-to-right model predicts each token from the ones before it; a masked LM (BERT) "
                         "has no such order, so each token is masked in turn and predicted from both sides "
                         "(pseudo-perplexity; the two are not on the same scale).",
        "gen_ppl_text": "Text",
        "gen_ppl_method": "Method",
        "gen_auto": "as the model reads", "gen_causal": "left to right", "gen_masked": "mask each token in turn",
        "gen_ppl_run": "Score the text",
        "gen_bvg_tab": "BERT vs GPT",
        "gen_bvg_intro": "The same sentence, word by word. A masked LM (BERT) predicts each word with the word "
                         "hidden and **both sides** visible; a causal LM (GPT) predicts it from the **left side "
                         "only**. Words that depend on what comes after them are where the two differ most.",
        "gen_sentence": "Sentence",
        "gen_masked_model": "Masked LM (reads both sides)",
        "gen_causal_model": "Causal LM (reads the left side)",
        "gen_bvg_run": "Compare word by word",
        "gen_col_word": "word", "gen_col_masked_p": "masked LM: P(word)", "gen_col_masked_guess": "masked LM guess",
        "gen_col_causal_p": "causal LM: P(word)", "gen_col_causal_guess": "causal LM guess",
        "gen_bvg_masks": "The attention masks, read from the models' own attention weights. Every layer and "
                         "head of either model: open the **Attention** tab and choose the model there.",
        "gen_open_attention": "Open the Attention tab",
        "gen_raw": "Raw output (JSON)",
    },
    "zh-CN": {
        "tab_generate": "文本生成",
        "gen_intro": "GPT 类模型只读**左侧**的文字，预测**下一个词元**；BERT 则同时读被遮住的词两侧的文字。这里由一个从左到右的模型"
                     "续写你的文本：查看它的下一个词元分布，以及温度、top-k、top-p 对分布的影响，自己挑选词元，比较解码策略，"
                     "计算困惑度，并把 BERT 和 GPT 放在一起对比。",
        "gen_step_tab": "下一个词元与逐步生成",
        "gen_prompt": "提示文本",
        "gen_temperature": "温度",
        "gen_top_k": "top-k（0 = 关闭）",
        "gen_top_p": "top-p（1 = 关闭）",
        "gen_strategy": "模型的选择方式",
        "gen_greedy": "贪心（取最可能的词元）",
        "gen_sample": "抽样（固定随机种子）",
        "gen_beam": "束搜索",
        "gen_seed": "随机种子",
        "gen_max_new": "最多生成的词元数",
        "gen_beams": "束宽",
        "gen_show": "显示下一个词元",
        "gen_step": "添加模型的选择",
        "gen_candidate": "或者任选一个候选词元",
        "gen_add": "添加这个词元",
        "gen_undo": "撤销",
        "gen_restart": "重新开始",
        "gen_run": "从提示文本开始生成",
        "gen_continue": "继续生成到结束",
        "gen_stop": "停止",
        "gen_legend": "颜色 = 模型给出的概率（红：不太可能，绿：很可能）；把鼠标移到词元上可以看到它的排名和模型的其他候选。"
                      "带边框的词元是你自己选的。",
        "gen_compare_tab": "贪心、抽样与束搜索对比",
        "gen_compare_intro": "同一个提示文本的三种解码方式：每次取最可能的词元；经过过滤后随机抽取（固定随机种子，可以重现）；"
                             "束搜索，保留最可能的若干整句而不是单个词元。",
        "gen_compare_run": "对比三种策略",
        "gen_col_strategy": "策略", "gen_col_tokens": "新词元数", "gen_col_logprob": "对数概率",
        "gen_col_perplexity": "困惑度", "gen_col_ended": "结束原因",
        "gen_perplexity_tab": "困惑度",
        "gen_ppl_intro": "模型对一段文本有多“意外”：困惑度是各词元平均对数概率的负数再取指数。从左到右的模型根据前面的词元预测"
                         "每个词元；掩码语言模型（BERT）没有这种顺序，因此依次遮住每个词元，用两侧的文字来预测"
                         "（伪困惑度；两者不在同一个尺度上）。",
        "gen_ppl_text": "文本",
        "gen_ppl_method": "方法",
        "gen_auto": "按模型的读法", "gen_causal": "从左到右", "gen_masked": "依次遮住每个词元",
        "gen_ppl_run": "给文本打分",
        "gen_bvg_tab": "BERT 与 GPT 对比",
        "gen_bvg_intro": "同一个句子，逐词比较。掩码语言模型（BERT）在遮住这个词、能看到**两侧**的情况下预测它；"
                         "因果语言模型（GPT）**只看左侧**来预测它。依赖后文的词，两者的差别最大。",
        "gen_sentence": "句子",
        "gen_masked_model": "掩码语言模型（看两侧）",
        "gen_causal_model": "因果语言模型（只看左侧）",
        "gen_bvg_run": "逐词比较",
        "gen_col_word": "词", "gen_col_masked_p": "掩码模型：P(词)", "gen_col_masked_guess": "掩码模型的猜测",
        "gen_col_causal_p": "因果模型：P(词)", "gen_col_causal_guess": "因果模型的猜测",
        "gen_bvg_masks": "注意力掩码，取自模型自己的注意力权重。想看任一模型的每一层、每个注意力头：打开**注意力**页并在那里选择该模型。",
        "gen_open_attention": "打开注意力页",
        "gen_raw": "原始输出 (JSON)",
    },
}

MESSAGES = {
    "en": {
        "generate.status": "{generated} new tokens · {speed} · {ended}",
        "generate.speed": "{tokens_per_s:.1f} tokens/s, the first after {first:.2f} s",
        "generate.running": "generating…",
        "generate.ended.eos": "ended: the model wrote its end-of-text token",
        "generate.ended.max_new_tokens": "ended: the number of new tokens was reached",
        "generate.ended.context": "ended: the model's context is full",
        "generate.ended.time_limit": "ended: the time limit was reached",
        "generate.ended.stopped": "stopped",
        "generate.reason.eos": "end-of-text token", "generate.reason.max_new_tokens": "token limit",
        "generate.reason.context": "full context", "generate.reason.time_limit": "time limit",
        "generate.reason.stopped": "Stop",
        "generate.stopped": "⏹ Stopped: {count} tokens after the prompt.",
        "generate.candidate": "{rank}. {text} · {probability:.1%}",
        "generate.candidate_removed": "{rank}. {text} · {probability:.1%} (removed by the filters)",
        "generate.strategy.greedy": "greedy", "generate.strategy.sample": "sampling",
        "generate.strategy.beam": "beam search",
        "generate.compare_heading": "**{strategy}** · {tokens} new tokens · perplexity {perplexity}",
        "generate.perplexity": "**Perplexity {perplexity:.2f}** under {model}: {scored} tokens, mean log-probability "
                               "{mean:.3f}; each token predicted from the ones before it.",
        "generate.pseudo_perplexity": "**Pseudo-perplexity {perplexity:.2f}** under {model}: {scored} tokens, mean "
                                      "log-probability {mean:.3f}; each token masked in turn and predicted from both "
                                      "sides.",
        "generate.nothing_yet": "No tokens added yet.",
        "generate.scoring": "Scoring with the masked LM",
        "generate.left": "{what}, about {left:.0f} s left",
    },
    "zh-CN": {
        "generate.status": "{generated} 个新词元 · {speed} · {ended}",
        "generate.speed": "每秒 {tokens_per_s:.1f} 个词元，第一个用了 {first:.2f} 秒",
        "generate.running": "正在生成…",
        "generate.ended.eos": "结束：模型写出了表示文本结束的词元",
        "generate.ended.max_new_tokens": "结束：达到了新词元数的上限",
        "generate.ended.context": "结束：模型的上下文已满",
        "generate.ended.time_limit": "结束：达到了时间上限",
        "generate.ended.stopped": "已停止",
        "generate.reason.eos": "文本结束词元", "generate.reason.max_new_tokens": "词元数上限",
        "generate.reason.context": "上下文已满", "generate.reason.time_limit": "时间上限",
        "generate.reason.stopped": "停止",
        "generate.stopped": "⏹ 已停止：提示文本之后共有 {count} 个词元。",
        "generate.candidate": "{rank}. {text} · {probability:.1%}",
        "generate.candidate_removed": "{rank}. {text} · {probability:.1%}（已被过滤掉）",
        "generate.strategy.greedy": "贪心", "generate.strategy.sample": "抽样", "generate.strategy.beam": "束搜索",
        "generate.compare_heading": "**{strategy}** · {tokens} 个新词元 · 困惑度 {perplexity}",
        "generate.perplexity": "{model} 下的**困惑度为 {perplexity:.2f}**：{scored} 个词元，平均对数概率 {mean:.3f}；"
                               "每个词元都由它前面的词元预测。",
        "generate.pseudo_perplexity": "{model} 下的**伪困惑度为 {perplexity:.2f}**：{scored} 个词元，平均对数概率 "
                                      "{mean:.3f}；依次遮住每个词元，用两侧的文字来预测。",
        "generate.nothing_yet": "还没有添加任何词元。",
        "generate.scoring": "正在用掩码语言模型打分",
        "generate.left": "{what}，约剩 {left:.0f} 秒",
        # the model layer's codes
        "model.not_causal": "{name} 会读取每个位置两侧的文字（像 BERT 这样的掩码语言模型），因此无法预测下一个词元；"
                            "请选择从左到右的模型，例如 gpt2 或 bundled:minilm-causal。",
        "generate.bad_number": "{what}必须是数字，而不是 {value!r}。",
        "generate.bad_temperature": "温度必须大于 0 且不超过 {limit:g}，而不是 {value!r}。（温度为 0 就是总取最可能的词元，"
                                    "也就是贪心策略。）",
        "generate.bad_top_k": "top-k 必须是 0（关闭）或更大的整数，而不是 {value!r}。",
        "generate.bad_top_p": "top-p 必须大于 0 且不超过 1（1 = 关闭），而不是 {value!r}。",
        "generate.bad_max_new_tokens": "新词元数必须是 1 到 {limit} 之间的整数（PLM_MAX_NEW_TOKENS），而不是 {value!r}。",
        "generate.bad_strategy": "策略必须是 {choices} 之一，而不是 {value!r}。",
        "generate.bad_beams": "束搜索的束宽必须是 2 到 {limit} 之间的整数（PLM_MAX_BEAMS），而不是 {value!r}。",
        "generate.bad_seed": "随机种子必须是 0 到 {limit} 之间的整数，而不是 {value!r}。",
        "generate.bad_continuation": "所选的词元必须是模型词表中的词元编号列表（0 到 {last}），而不是 {value!r}。",
        "generate.too_many_steps": "已经逐个添加了 {count} 个词元，上限是 {limit} 个（PLM_MAX_NEW_TOKENS）。请撤销一些或重新开始。",
        "generate.context_full": "目前的文本已经占满模型的上下文（{limit} 个词元），不能再添加词元。",
        "generate.prompt_cut": "提示文本有 {total} 个词元，而这里模型最多读 {limit} 个，因此只使用它的最后 {kept} 个。",
        "generate.context_reached": "生成在模型的上下文长度（{limit} 个词元）处停止。",
        "generate.time_limit": "生成在 {seconds:.0f} 秒后停止（PLM_GENERATE_TIME_LIMIT），共生成 {count} 个新词元。",
        "perplexity.bad_method": "打分方法必须是 {choices} 之一，而不是 {value!r}。",
        "perplexity.no_mask_token": "{name} 没有掩码词元，因此不能用遮住词元的方法给文本打分。",
        "perplexity.needs_fast_tokenizer": "{name} 没有快速分词器，无法把它的词元对应到文本中的词；请选择其他模型。",
        "perplexity.nothing_to_score": "{name} 根据前面的词元预测每个词元，而这段文本只有一个词元，没有可打分的内容；"
                                       "请写长一些。",
        "perplexity.no_words": "这段文本里没有可以比较的词。",
        "perplexity.text_cut": "这段文本有 {total} 个词元，只给前 {kept} 个打了分（PLM_MAX_SCORE_TOKENS）。",
        "perplexity.text_cut_model": "这段文本有 {total} 个词元，而 {name} 一次最多读 {limit} 个，因此只给前 {kept} 个打了分。",
    },
}
add_strings(STRINGS)
add_messages(MESSAGES)


# ---------------------------------------------------------------------------- session state


def _steps(state: dict | None, prompt: str, model: str | None) -> tuple[list[int], list[str]]:
    """The token ids added after ``prompt`` so far and who chose each, if the state is about this prompt and model."""
    if state and state.get("prompt") == prompt and state.get("model") == (model or ""):
        return list(state["ids"]), list(state["chosen_by"])
    return [], []


def _state(prompt: str, model: str | None, ids: list[int], chosen_by: list[str]) -> dict:
    return {"prompt": prompt, "model": model or "", "ids": ids, "chosen_by": chosen_by}


def _translated(result: dict) -> dict:
    return {**result, "notices": [translate(n) for n in result["notices"]]}


# ---------------------------------------------------------------------------- handlers (API)


def _next_after(values: dict, ids: list[int]) -> dict:
    """The ``next_token`` result (notices translated) after the prompt and the token ids ``ids``."""
    return _translated(next_token(values["prompt"], values["model"] or None, values["top_k"], values["temperature"],
                                  values["top_p"], continuation=ids))


@user_errors
def show_next_token(values: dict) -> dict:
    """API ``next_token`` (model, prompt, temperature, top_k, top_p): the next-token distribution after the
    prompt (and the tokens added so far), before and after temperature, top-k and top-p."""
    ids, _ = _steps(values["state"], values["prompt"], values["model"])
    return _next_after(values, ids)


def _moved(values: dict, ids: list[int], chosen_by: list[str]) -> tuple[dict, dict]:
    """(the new state, the next-token result after it): the tokens are checked before the state changes."""
    result = _next_after(values, ids)
    return _state(values["prompt"], values["model"], ids, chosen_by), result


@user_errors
def add_model_choice(values: dict) -> tuple[dict, dict]:
    """API ``generate_step`` (model, prompt, temperature, top_k, top_p, strategy, seed): add one token chosen
    by the model (greedy or seeded sampling, as a full run would)."""
    ids, chosen_by = _steps(values["state"], values["prompt"], values["model"])
    record = generate(values["prompt"], values["model"] or None, 1, values["strategy"], values["temperature"],
                      values["top_k"], values["top_p"], seed=values["seed"], continuation=ids)
    return _moved(values, ids + [record["tokens"][-1]["token_id"]], chosen_by + ["model"])


@user_errors
def add_chosen_token(values: dict) -> tuple[dict, dict]:
    """API ``choose_token`` (model, prompt, temperature, top_k, top_p, token id): add the token the user picked
    (one of the candidates or any other id)."""
    ids, chosen_by = _steps(values["state"], values["prompt"], values["model"])
    return _moved(values, ids + [values["candidate"]], chosen_by + ["user"])


@user_errors
def undo_token(values: dict) -> tuple[dict, dict]:
    """API ``undo_token`` (model, prompt, temperature, top_k, top_p): remove the last token added."""
    ids, chosen_by = _steps(values["state"], values["prompt"], values["model"])
    return _moved(values, ids[:-1], chosen_by[:-1])


def by_name(handler: Callable[[dict], Any], inputs: dict[str, Any]) -> Callable[[dict], Any]:
    """``handler(values by name)`` as the function of an event whose ``inputs`` is the set of ``inputs``'s
    components (Gradio passes a dict keyed by component)."""
    @functools.wraps(handler)
    def event(data: dict) -> Any:
        return handler(values_of(data, inputs))

    return event


def paced(produce: Callable[[Callable[[], bool]], Iterator[dict]], interval: float = UPDATE_EVERY_S) -> Iterator[dict]:
    """The records of ``produce(should_stop)``, run in a worker thread, the newest one at most every ``interval``
    seconds (the first as soon as it exists, the last always).

    The model then generates at its own speed: the browser's updates (each re-sends the coloured text and the
    record) no longer wait between tokens. When the consumer stops iterating (Stop cancels the event), the
    worker is told to stop after its current token.
    """
    lock, ready, stop = threading.Lock(), threading.Event(), threading.Event()
    box: dict[str, Any] = {"record": None, "done": False, "error": None}

    def work() -> None:
        try:
            for record in produce(stop.is_set):
                with lock:
                    box["record"] = record
                ready.set()
        except BaseException as err:  # noqa: BLE001 - raised again in the consumer's thread
            box["error"] = err
        finally:
            with lock:
                box["done"] = True
            ready.set()

    threading.Thread(target=work, name="generate", daemon=True).start()
    try:
        while True:
            ready.wait()
            with lock:
                record, box["record"], done = box["record"], None, box["done"]
                ready.clear()
            if box["error"] is not None:
                raise box["error"]
            if record is not None:
                yield record
            if done:
                return
            time.sleep(interval)
    finally:
        stop.set()


def _stream(inputs: dict, continue_steps: bool):
    """The function of the ``generate`` (from the prompt) or ``generate_continue`` (after the steps) event."""
    @user_errors
    def run(data: dict) -> Iterator[tuple]:
        values = values_of(data, inputs)
        model, prompt = values["model"], values["prompt"]
        ids, chosen_by = _steps(values["state"], prompt, model) if continue_steps else ([], [])

        def produce(should_stop: Callable[[], bool]) -> Iterator[dict]:
            return generate_stream(prompt, model or None, values["max_new_tokens"], values["strategy"],
                                   values["temperature"], values["top_k"], values["top_p"], seed=values["seed"],
                                   continuation=ids, should_stop=should_stop)

        for record in paced(produce):
            added = chosen_by + ["model"] * (len(record["tokens"]) - len(chosen_by))
            state = _state(prompt, model, [t["token_id"] for t in record["tokens"]], added)
            yield render_text(record, added), status_line(record), state, _translated(record)

    return run


def _comparison(inputs: dict):
    """The ``compare_strategies`` event's function for the form ``inputs`` (name -> component)."""
    @user_errors
    def compare_strategies(data: dict, progress: gr.Progress = gr.Progress()) -> dict:
        """API ``compare_strategies``: greedy, sampling and beam search on the same prompt and seed."""
        values, results = values_of(data, inputs), {}
        for done, strategy in enumerate(("greedy", "sample", "beam")):
            progress((done, 3), desc=say(f"generate.strategy.{strategy}"))
            results[strategy] = _translated(generate(
                values["prompt"], values["model"] or None, values["max_new_tokens"], strategy, values["temperature"],
                values["top_k"], values["top_p"], values["num_beams"], values["seed"]))
        return results

    return compare_strategies


def _reporter(progress: Any) -> Any:
    """A (done, total) callback moving ``progress``, with the time left from the first pass on."""
    started, what = time.monotonic(), say("generate.scoring")

    def report(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        desc = what if done in (0, total) else say("generate.left", what=what, left=elapsed / done * (total - done))
        progress((done, total), desc=desc)

    return report


@user_errors
def score_event(model: str | None, text: str, method: str, progress: gr.Progress = gr.Progress()) -> dict:
    """API ``score_text``: each token's log-probability and the text's (pseudo-)perplexity."""
    return _translated(score_text(text, model or None, method or "auto", progress=_reporter(progress)))


@user_errors
def bert_vs_gpt_event(masked_model: str | None, causal_model: str | None, sentence: str,
                      progress: gr.Progress = gr.Progress()) -> dict:
    """API ``bert_vs_gpt``: word by word, a masked LM (both sides) against a causal LM (left side only)."""
    return _translated(bert_vs_gpt(sentence, masked_model or None, causal_model or None, progress=_reporter(progress)))


# ---------------------------------------------------------------------------- rendering (private)


def render_text(record: dict, chosen_by: list[str] | None = None) -> str:
    """The prompt and the tokens after it, coloured by probability (HTML)."""
    return f'<div style="{TEXT_STYLE}">{plots.tokens_html(record["prompt"], record["tokens"], chosen_by)}</div>'


def status_line(record: dict) -> str:
    """"12 new tokens · 8.3 tokens/s, the first after 0.20 s · ended: ..." (and the notices)."""
    ended = say(f"generate.ended.{record['finished']}") if record["finished"] else say("generate.running")
    speed = say("generate.speed", tokens_per_s=record["tokens_per_s"], first=record["first_token_s"]) \
        if record["tokens_per_s"] else ""
    line = say("generate.status", generated=record["generated"], speed=speed, ended=ended).replace(" ·  · ", " · ")
    return "\n\n".join([markdown_text(line)] + [f"⚠️ {markdown_text(n)}" for n in record["notices"]])


def stopped_line(state: dict | None) -> str:
    """The status line after Stop: how many tokens the run had added."""
    count = len((state or {}).get("ids", []))
    return markdown_text(say("generate.stopped", count=count))


def _candidate_choices(result: dict) -> list[tuple[str, int]]:
    choices = []
    for c in result["candidates"]:
        code = "generate.candidate_removed" if c["removed_by"] else "generate.candidate"
        choices.append((say(code, rank=c["rank"], text=plots.shown_token(c["text"]), probability=c["probability"]),
                        c["token_id"]))
    return choices


def render_next(result: dict | None, state: dict | None) -> tuple:
    """Text so far, next-token chart, candidates and notices of a ``next_token`` result."""
    if not result:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    chosen_by = (state or {}).get("chosen_by", [])
    choices = _candidate_choices(result)
    notices = "\n\n".join(f"⚠️ {markdown_text(n)}" for n in result["notices"])
    text = render_text(result, chosen_by) if result["prompt"] or result["tokens"] else ""
    return (text, plots.filter_chart(result), gr.Dropdown(choices=choices, value=choices[0][1] if choices else None),
            notices)


def render_comparison(results: dict | None) -> tuple:
    """Three coloured texts with their headings, and the summary table."""
    if not results:
        return (gr.skip(),) * 4
    panels, rows = [], []
    for strategy in ("greedy", "sample", "beam"):
        record = results[strategy]
        perplexity = f"{record['perplexity']:.2f}" if record["perplexity"] else "—"
        name = say(f"generate.strategy.{strategy}")
        heading = say("generate.compare_heading", strategy=name, tokens=record["generated"], perplexity=perplexity)
        notices = "".join(f"<p>⚠️ {html.escape(n)}</p>" for n in record["notices"])
        panels.append(f'<p>{markdown_html(heading)}</p><div style="{TEXT_STYLE}">'
                      f'{plots.tokens_html(record["prompt"], record["tokens"])}</div>{notices}')
        rows.append([name, record["generated"], round(record["logprob"], 3), perplexity,
                     say(f"generate.reason.{record['finished']}")])
    return (*panels, table(rows, COMPARE_HEADERS))


def markdown_html(text: str) -> str:
    """A catalogue line with **bold** parts as HTML (the rest escaped)."""
    pieces = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(pieces))


def render_score(result: dict | None) -> tuple:
    """Summary line, coloured text and surprisal chart of a ``score_text`` result."""
    if not result:
        return gr.skip(), gr.skip(), gr.skip()
    code = "generate.perplexity" if result["method"] == "causal" else "generate.pseudo_perplexity"
    summary = say(code, perplexity=result["perplexity"], model=markdown_text(result["model"]), scored=result["scored"],
                  mean=result["mean_logprob"])
    summary = "\n\n".join([summary] + [f"⚠️ {markdown_text(n)}" for n in result["notices"]])
    text = plots.scored_html(result["text"], result["tokens"])
    return summary, f'<div style="{TEXT_STYLE}">{text}</div>', plots.surprisal_chart(result)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}" if value >= 1e-4 else f"{value:.1e}"


def render_bert_vs_gpt(result: dict | None) -> tuple:
    """Word chart, word table, both mask heatmaps and notices of a ``bert_vs_gpt`` result."""
    if not result:
        return (gr.skip(),) * 5
    rows = [[w["word"], _percent(w["masked_probability"]), w["masked_guess"] or "—",
             _percent(w["causal_probability"]), w["causal_guess"] or "—"] for w in result["words"]]
    notices = "\n\n".join(f"⚠️ {markdown_text(n)}" for n in result["notices"])
    return (plots.words_chart(result), table(rows, WORD_HEADERS), plots.mask_heatmap(result["masks"]["masked"]),
            plots.mask_heatmap(result["masks"]["causal"]), notices)


# ---------------------------------------------------------------------------- layout


def _sampling_knobs(prefix: str) -> dict[str, gr.components.Component]:
    with gr.Row():
        knobs = {
            "temperature": gr.Slider(0.05, 3.0, value=1.0, step=0.05, label=I18N("gen_temperature"),
                                     elem_id=f"{prefix}-temperature"),
            "top_k": gr.Slider(0, 100, value=10, step=1, label=I18N("gen_top_k"), elem_id=f"{prefix}-top-k"),
            "top_p": gr.Slider(0.05, 1.0, value=1.0, step=0.01, label=I18N("gen_top_p"), elem_id=f"{prefix}-top-p"),
        }
    return knobs


def _steps_layout(model: gr.Dropdown) -> SimpleNamespace:
    """The components of the step-by-step panel (``ui.model`` ... ``ui.raw``)."""
    ui = SimpleNamespace(model=model, state=gr.State(None))
    ui.prompt = gr.Textbox(label=I18N("gen_prompt"), value=PROMPTS[0][0], lines=2, elem_id="gen-prompt",
                           max_length=text_limit())
    ui.knobs = _sampling_knobs("gen")
    limit = get_settings().max_new_tokens
    with gr.Row():
        ui.strategy = gr.Radio([(I18N("gen_greedy"), "greedy"), (I18N("gen_sample"), "sample")], value="sample",
                               label=I18N("gen_strategy"), elem_id="gen-strategy")
        ui.seed = gr.Number(value=0, precision=0, minimum=0, label=I18N("gen_seed"), elem_id="gen-seed")
        ui.max_new = gr.Slider(1, limit, value=min(30, limit), step=1, label=I18N("gen_max_new"),
                               elem_id="gen-max-new")
    with gr.Row():
        ui.show, ui.step, ui.undo, ui.restart = (
            gr.Button(I18N(key), elem_id=elem_id, variant=variant) for key, elem_id, variant in (
                ("gen_show", "gen-show", "secondary"), ("gen_step", "gen-step", "primary"),
                ("gen_undo", "gen-undo", "secondary"), ("gen_restart", "gen-restart", "secondary")))
    with gr.Row():
        ui.candidate = gr.Dropdown(choices=[], label=I18N("gen_candidate"), scale=3, elem_id="gen-candidate",
                                   allow_custom_value=True)  # any token id: the model layer checks it
        ui.add = gr.Button(I18N("gen_add"), scale=1, elem_id="gen-add")
    with gr.Row():
        ui.run = gr.Button(I18N("gen_run"), variant="primary", elem_id="gen-run")
        ui.more = gr.Button(I18N("gen_continue"), elem_id="gen-continue")
        ui.stop = gr.Button(I18N("gen_stop"), variant="stop", elem_id="gen-stop")
    gr.Markdown(I18N("gen_legend"))
    ui.text = gr.HTML(elem_id="gen-text")
    ui.status = gr.Markdown(elem_id="gen-status")
    ui.notices = gr.Markdown(elem_id="gen-notices")
    ui.chart = gr.Plot(show_label=False, elem_id="gen-chart")
    ui.raw = gr.JSON(visible=False)
    examples(PROMPTS, inputs=[ui.prompt])
    return ui


def _wire_steps(ui: SimpleNamespace) -> None:
    """The next-token chart and the one-token steps: each answers (new state, next-token result), then redraws."""
    knobs = [ui.knobs["temperature"], ui.knobs["top_k"], ui.knobs["top_p"]]
    ui.draw = dict(fn=render_next, inputs=[ui.raw, ui.state], outputs=[ui.text, ui.chart, ui.candidate, ui.notices],
                   api_visibility="private", queue=False)
    ui.form = {"model": ui.model, "prompt": ui.prompt, **ui.knobs, "state": ui.state}
    shown = gr.on([ui.show.click, ui.prompt.submit, *(k.change for k in knobs)], by_name(show_next_token, ui.form),
                  inputs=set(ui.form.values()), outputs=[ui.raw], api_name="next_token", trigger_mode="always_last")
    shown.success(**ui.draw)
    clear_on_failure(shown, [ui.chart, ui.notices])
    gr.on([ui.prompt.change, ui.model.change], lambda: None, outputs=[ui.state], api_visibility="private",
          queue=False)  # the steps belong to one prompt and one model
    steps = ((ui.step, add_model_choice, {"strategy": ui.strategy, "seed": ui.seed}, "generate_step"),
             (ui.add, add_chosen_token, {"candidate": ui.candidate}, "choose_token"),
             (ui.undo, undo_token, {}, "undo_token"))
    for button, fn, extra, name in steps:
        form = {**ui.form, **extra}
        button.click(by_name(fn, form), inputs=set(form.values()), outputs=[ui.state, ui.raw], api_name=name,
                     concurrency_id="generate").success(**ui.draw)
    ui.restart.click(lambda: (None, "", None, gr.Dropdown(choices=[], value=None), "", ""),
                     outputs=[ui.state, ui.text, ui.chart, ui.candidate, ui.status, ui.notices],
                     api_visibility="private", queue=False)


def _wire_streams(ui: SimpleNamespace) -> None:
    """Generate from the prompt, continue the steps (both streamed), Stop; the chart follows the text."""
    inputs = {"model": ui.model, "prompt": ui.prompt, "max_new_tokens": ui.max_new, "strategy": ui.strategy,
              **ui.knobs, "seed": ui.seed, "state": ui.state}
    streams = [button.click(_stream(inputs, continue_steps), inputs=set(inputs.values()),
                            outputs=[ui.text, ui.status, ui.state, ui.raw], api_name=name, concurrency_id="generate")
               for button, continue_steps, name in ((ui.run, False, "generate"), (ui.more, True, "generate_continue"))]
    refresh = dict(fn=by_name(show_next_token, ui.form), inputs=set(ui.form.values()), outputs=[ui.raw],
                   api_visibility="private")
    for stream in streams:
        stream.success(**refresh).success(**ui.draw)
        clear_on_failure(stream, [ui.text, ui.status])
    ui.stop.click(stopped_line, inputs=[ui.state], outputs=[ui.status], cancels=streams, api_visibility="private",
                  queue=False).then(**refresh).success(**ui.draw)


def _steps_panel(model: gr.Dropdown) -> None:
    ui = _steps_layout(model)
    _wire_steps(ui)
    _wire_streams(ui)


def _compare_panel(model: gr.Dropdown) -> None:
    gr.Markdown(I18N("gen_compare_intro"))
    prompt = gr.Textbox(label=I18N("gen_prompt"), value=PROMPTS[1][0], lines=2, elem_id="gen-cmp-prompt",
                        max_length=text_limit())
    knobs = _sampling_knobs("gen-cmp")
    settings = get_settings()
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=0, label=I18N("gen_seed"), elem_id="gen-cmp-seed")
        beams = gr.Slider(2, settings.max_beams, value=min(4, settings.max_beams), step=1, label=I18N("gen_beams"),
                          elem_id="gen-cmp-beams")
        max_new = gr.Slider(1, settings.max_new_tokens, value=min(20, settings.max_new_tokens), step=1,
                            label=I18N("gen_max_new"), elem_id="gen-cmp-max-new")
    run = gr.Button(I18N("gen_compare_run"), variant="primary", elem_id="gen-cmp-run")
    with gr.Row(equal_height=False):
        panels = [gr.HTML(elem_id=f"gen-cmp-{name}") for name in ("greedy", "sample", "beam")]
    summary = table_output(COMPARE_HEADERS, elem_id="gen-cmp-table")
    raw = gr.JSON(visible=False)
    examples(PROMPTS, inputs=[prompt])
    inputs = {"model": model, "prompt": prompt, "max_new_tokens": max_new, **knobs, "num_beams": beams, "seed": seed}
    event = run.click(_comparison(inputs), inputs=set(inputs.values()), outputs=[raw],
                      api_name="compare_strategies", concurrency_id="generate")
    event.success(render_comparison, inputs=[raw], outputs=[*panels, summary], api_visibility="private", queue=False)
    clear_on_failure(event, [*panels, summary])


def _perplexity_panel() -> gr.Dropdown:
    gr.Markdown(I18N("gen_ppl_intro"))
    choices = list(dict.fromkeys(model_choices(TASK) + model_choices("fill-mask")))
    with gr.Row():
        model = gr.Dropdown(choices=choices, value=default_model(TASK), allow_custom_value=True, label=I18N("model"),
                            info=I18N("models_info"), elem_id="gen-ppl-model")
        method = gr.Radio([(I18N("gen_auto"), "auto"), (I18N("gen_causal"), "causal"), (I18N("gen_masked"), "masked")],
                          value="auto", label=I18N("gen_ppl_method"), elem_id="gen-ppl-method")
    text = gr.Textbox(label=I18N("gen_ppl_text"), value=SCORE_TEXTS[0][0], lines=3, elem_id="gen-ppl-text",
                      max_length=text_limit())
    run = gr.Button(I18N("gen_ppl_run"), variant="primary", elem_id="gen-ppl-run")
    summary = gr.Markdown(elem_id="gen-ppl-summary")
    coloured = gr.HTML(elem_id="gen-ppl-text-scored")
    chart = gr.Plot(show_label=False, elem_id="gen-ppl-chart")
    raw = gr.JSON(visible=False)
    examples(SCORE_TEXTS, inputs=[text])
    event = gr.on([run.click, text.submit], score_event, inputs=[model, text, method], outputs=[raw],
                  api_name="score_text")
    event.success(render_score, inputs=[raw], outputs=[summary, coloured, chart], api_visibility="private",
                  queue=False)
    clear_on_failure(event, [summary, coloured, chart])
    return model


def _bert_vs_gpt_panel() -> list[tuple[str, gr.Dropdown]]:
    gr.Markdown(I18N("gen_bvg_intro"))
    with gr.Row():
        masked = model_dropdown("fill-mask", elem_id="gen-bvg-masked")
        causal = model_dropdown(TASK, elem_id="gen-bvg-causal")
    masked.label, causal.label = I18N("gen_masked_model"), I18N("gen_causal_model")
    sentence = gr.Textbox(label=I18N("gen_sentence"), value=SENTENCES[0][0], elem_id="gen-bvg-sentence",
                          max_length=text_limit())
    run = gr.Button(I18N("gen_bvg_run"), variant="primary", elem_id="gen-bvg-run")
    notices = gr.Markdown()
    chart = gr.Plot(show_label=False, elem_id="gen-bvg-chart")
    words = table_output(WORD_HEADERS, elem_id="gen-bvg-table")
    with gr.Row():
        gr.Markdown(I18N("gen_bvg_masks"))
        gr.Button(I18N("gen_open_attention"), size="sm", scale=0, min_width=200,
                  elem_id="gen-bvg-open-attention").click(None, js=OPEN_ATTENTION_JS, api_visibility="private")
    with gr.Row():
        full, causal_mask = gr.Plot(show_label=False, elem_id="gen-bvg-mask-masked"), \
            gr.Plot(show_label=False, elem_id="gen-bvg-mask-causal")
    raw = gr.JSON(visible=False)
    examples(SENTENCES, inputs=[sentence])
    event = gr.on([run.click, sentence.submit], bert_vs_gpt_event, inputs=[masked, causal, sentence], outputs=[raw],
                  api_name="bert_vs_gpt")
    event.success(render_bert_vs_gpt, inputs=[raw], outputs=[chart, words, full, causal_mask, notices],
                  api_visibility="private", queue=False)
    clear_on_failure(event, [chart, words, full, causal_mask, notices])
    return [("fill-mask", masked), (TASK, causal)]


def build_tab() -> TabParts:
    """Lay out the Generate tab and wire its events (api names: next_token, generate_step, choose_token,
    undo_token, generate, generate_continue, compare_strategies, score_text, bert_vs_gpt)."""
    gr.Markdown(I18N("gen_intro"))
    model = model_dropdown(TASK, elem_id="gen-model")
    with gr.Tabs():
        with gr.Tab(I18N("gen_step_tab"), id="gen-steps-tab"):
            _steps_panel(model)
        with gr.Tab(I18N("gen_compare_tab"), id="gen-compare-tab"):
            _compare_panel(model)
        with gr.Tab(I18N("gen_perplexity_tab"), id="gen-perplexity-tab"):
            _perplexity_panel()
        with gr.Tab(I18N("gen_bvg_tab"), id="gen-bvg-tab"):
            pickers = _bert_vs_gpt_panel()
    return TabParts(pickers=[(TASK, model), *pickers])
