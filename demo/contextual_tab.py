"""Contextual lab tab: one word in different sentences, layer by layer ("static → contextual").

Data flow: "Compare" -> :func:`run_lab` (API ``contextual``) -> ``model_utils.contextual.explore_word``
(one forward pass: similarity matrices, within/between-sense means, PCA and a sense probe per layer)
-> plain JSON (a hidden ``gr.JSON`` for API clients, the same in the session's ``gr.State``) -> render
helpers (:mod:`demo.contextual_plots`). Moving the layer slider only redraws, from the state. Other events: ``contextual_examples`` (sentences of the corpus sample
containing the word), ``contextual_neighbours`` (nearest corpus words of one occurrence) and
``sentence_similarity`` (mean-pooled sentence embeddings).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from demo import contextual_plots as plots
from demo.attention_plots import with_export
from demo.common import TabParts, examples, model_dropdown, table_output, text_limit, user_errors
from demo.i18n import I18N, add_messages, add_strings
from demo.messages import markdown_text, say, table, translate
from model_utils import explore_word, find_examples, nearest_neighbours, sentence_similarity
from model_utils.contextual import parse_lines
from model_utils.config import get_settings
from model_utils.errors import UserError, define

EXAMPLES_FILE = Path(__file__).resolve().parent / "examples" / "word_senses.csv"
FIND_LIMIT = 30  # sentences "find examples" puts in the box
NEIGHBOURS_SHOWN = 10
NEIGHBOUR_HEADERS = ["ctx_col_rank", "ctx_col_cosine", "ctx_col_word", "ctx_col_sentence", "ctx_col_source"]
SENTENCE_EXAMPLES = [
    ["A man is playing a guitar.\nSomeone is playing an instrument.\nA woman is slicing an onion.\n"
     "The chef is cutting vegetables.\nThe stock market fell sharply today."],
    ["The bank raised its interest rates.\nThe river bank was covered in flowers.\n"
     "Interest rates went up at the bank.\nWildflowers grew along the riverside."],
]

define({"contextual.no_examples": "No sentence of the corpus sample contains “{word}” as a whole word; "
                                  "type your own sentences."})

STRINGS = {
    "en": {
        "tab_contextual": "Contextual lab",
        "ctx_intro": "word2vec gives a word one vector; BERT gives it one **per sentence**. Type a word and sentences "
                     "that use it (or pick a built-in example below, or find sentences in the corpus sample), then "
                     "**Compare**. At layer 0 (the embedding output) every occurrence of a token is nearly the same "
                     "vector; deeper layers pull the senses apart. Add a sense label before a vertical bar "
                     "(`river | We sat on the bank.`) to colour the plots and train a probe.",
        "ctx_word": "Word (or short phrase)",
        "ctx_sentences": "Sentences, one per line",
        "ctx_sentences_info": "Optional sense label first: river | We walked along the bank.",
        "ctx_find": "Find examples in the corpus sample",
        "ctx_run": "Compare the occurrences",
        "ctx_layer": "Layer (0 = embedding output)",
        "ctx_image_format": "Chart download format (camera button of each chart)",
        "ctx_downloads": "Data (CSV)",
        "ctx_similarity": "Similarity",
        "ctx_projection": "2-D projection",
        "ctx_probe": "Sense probe",
        "ctx_probe_intro": "A logistic-regression probe per layer tries to tell the senses apart from the word's "
                           "vector. Its accuracy is measured on held-out sentences only (stratified "
                           "cross-validation; a repeated sentence stays in one fold); the dashed line is its accuracy on the occurrences it was fitted on, "
                           "which is what a probe without held-out data would claim.",
        "ctx_neighbours": "Nearest neighbours",
        "ctx_neighbours_intro": "The words of the corpus sample whose vectors at the chosen layer are closest to one "
                                "occurrence. The first search encodes the corpus sample once (it is cached afterwards).",
        "ctx_occurrence": "Occurrence from the comparison",
        "ctx_nn_sentence": "Sentence",
        "ctx_nn_nth": "Which occurrence in the sentence (1 = first)",
        "ctx_nn_run": "Find the nearest neighbours",
        "ctx_nn_table": "Nearest words in the corpus sample",
        "ctx_sentence_similarity": "Sentence similarity",
        "ctx_st_intro": "Sentence embeddings: the mean of the last layer's token vectors (as sentence-transformers "
                        "does for all-MiniLM-L6-v2) or the [CLS] vector, compared by cosine similarity.",
        "ctx_st_sentences": "Sentences, one per line",
        "ctx_pooling": "Pooling",
        "ctx_st_run": "Compare the sentences",
        "ctx_st_downloads": "Similarity matrix (CSV)",
        "ctx_col_rank": "rank", "ctx_col_cosine": "cosine", "ctx_col_word": "word", "ctx_col_sentence": "sentence",
        "ctx_col_source": "source",
    },
    "zh-CN": {
        "tab_contextual": "语境表示实验",
        "ctx_intro": "word2vec 给每个词一个向量；BERT 给它**每个句子一个**向量。输入一个词和用到它的句子（或选择下面的内置示例，"
                     "或在语料样本中查找句子），然后点击**比较**。在第 0 层（嵌入层输出），同一词元的每次出现几乎是同一个向量；"
                     "越深的层越能把不同词义分开。在句子前加上词义标签和竖线（`river | We sat on the bank.`）即可给图着色并训练探针。",
        "ctx_word": "词（或短语）",
        "ctx_sentences": "句子，每行一个",
        "ctx_sentences_info": "可在前面加词义标签：river | We walked along the bank.",
        "ctx_find": "在语料样本中查找例句",
        "ctx_run": "比较各次出现",
        "ctx_layer": "层（0 = 嵌入层输出）",
        "ctx_image_format": "图表下载格式（每个图表的相机按钮）",
        "ctx_downloads": "数据（CSV）",
        "ctx_similarity": "相似度",
        "ctx_projection": "二维投影",
        "ctx_probe": "词义探针",
        "ctx_probe_intro": "每层训练一个逻辑回归探针，尝试根据词向量区分词义。准确率只在留出的句子上测量（分层交叉验证；重复的句子始终在同一折）；"
                           "虚线是它在自己拟合过的出现上的准确率，也就是不留出数据的探针会声称的结果。",
        "ctx_neighbours": "最近邻",
        "ctx_neighbours_intro": "语料样本中在所选层的向量与某次出现最接近的词。第一次搜索会对语料样本编码一次（之后会缓存）。",
        "ctx_occurrence": "比较结果中的某次出现",
        "ctx_nn_sentence": "句子",
        "ctx_nn_nth": "句子中的第几次出现（1 = 第一次）",
        "ctx_nn_run": "查找最近邻",
        "ctx_nn_table": "语料样本中最接近的词",
        "ctx_sentence_similarity": "句子相似度",
        "ctx_st_intro": "句子嵌入：最后一层词元向量的平均（sentence-transformers 对 all-MiniLM-L6-v2 的做法）或 [CLS] 向量，"
                        "用余弦相似度比较。",
        "ctx_st_sentences": "句子，每行一个",
        "ctx_pooling": "池化方式",
        "ctx_st_run": "比较句子",
        "ctx_st_downloads": "相似度矩阵（CSV）",
        "ctx_col_rank": "排名", "ctx_col_cosine": "余弦", "ctx_col_word": "词", "ctx_col_sentence": "句子",
        "ctx_col_source": "来源",
    },
}

MESSAGES = {
    "en": {
        "contextual.loading": "Loading the model…",
        "contextual.encoding_sentences": "Encoding the sentences",
        "contextual.encoding_corpus": "Encoding the corpus sample",
        "contextual.left": "{what}, about {left:.0f} s left",
        "contextual.probe_missing": "Label the senses (river | … and money | …, two or more sentences each) to train "
                                    "a probe.",
    },
    "zh-CN": {
        "contextual.loading": "正在加载模型…",
        "contextual.encoding_sentences": "正在编码句子",
        "contextual.encoding_corpus": "正在编码语料样本",
        "contextual.left": "{what}，约剩 {left:.0f} 秒",
        "contextual.probe_missing": "给词义加标签（river | … 和 money | …，每个词义至少两个句子）即可训练探针。",
    "contextual.too_many_sentences": "共有 {count} 个句子；实验一次最多处理 {limit} 个（PLM_LAB_MAX_SENTENCES）。请删掉一些。",
    "contextual.sentence_too_long": "第 {index} 个句子有 {length} 个词元；实验读取的句子最多 {limit} 个词元"
                                    "（PLM_LAB_MAX_TOKENS）。请缩短或拆分。",
    "contextual.word_not_found": "“{word}”没有作为完整的词出现在任何句子中。",
    "contextual.word_missing": "“{word}”没有作为完整的词出现在第 {sentences} 个句子中；这些句子被略过。",
    "contextual.too_many_occurrences": "“{word}”出现了 {count} 次；只使用前 {limit} 次（PLM_LAB_MAX_SENTENCES）。",
    "contextual.labels_mismatch": "给了 {labels} 个词义标签，却有 {count} 个句子；请每个句子给一个标签（没有则留空），或都不给。",
    "contextual.slow_tokenizer": "{name} 没有快速分词器，无法把词元对应回词；请选择其他模型。",
    "contextual.bad_pooling": "池化方式必须是以下之一：{choices}。",
    "contextual.bad_layer": "没有第 {layer} 层：该模型的层是 0（嵌入层）到 {top}。",
    "contextual.bad_occurrence": "该句子中“{word}”出现了 {count} 次；请选择 1 到 {count}。",
    "contextual.bad_top_k": "最近邻的数量必须在 1 到 {limit} 之间。",
    "contextual.no_sentences": "请至少输入 {minimum} 个句子，每行一个。",
    "contextual.no_examples": "语料样本中没有句子以完整的词包含“{word}”；请自己输入句子。",
    "contextual.probe_needs_two_senses": "探针需要至少两种不同的词义标签（现有 {senses} 种）：请像 river | … 和 money | … 这样标注句子。",
    "contextual.probe_needs_examples": "探针要求每个词义至少有 2 个不同的带标签句子；{sense} 只有 {count} 个。请添加句子或去掉这个标签。",
    },
}
add_strings(STRINGS)
add_messages(MESSAGES)


# ---------------------------------------------------------------------------- data


def builtin_examples(path: Path = EXAMPLES_FILE) -> list[list[str]]:
    """Rows ``[word, "sense | sentence" lines]`` of the committed sense-labelled sentences, one per word."""
    grouped: dict[str, list[str]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            grouped.setdefault(row["word"], []).append(f"{row['sense']} | {row['sentence']}")
    return [[word, "\n".join(lines)] for word, lines in grouped.items()]


def _reporter(progress: Any, code: str) -> Callable[[int, int], None]:
    """A (done, total) callback that moves ``progress`` and says how long is left, from the first batch on."""
    started = time.monotonic()
    what = say(code)

    def report(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        left = elapsed / done * (total - done) if done else None
        desc = what if left is None or done == total else say("contextual.left", what=what, left=left)
        progress((done, total), desc=desc, unit="sentences")

    return report


def _clamp_layer(value: Any, top: int) -> int:
    try:
        return min(max(int(value), 0), top)
    except (TypeError, ValueError):
        return top


def _whole(value: Any, default: int) -> int:
    """A whole number from a ``gr.Number`` (which may send a float or nothing)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# ---------------------------------------------------------------------------- handlers (API)


@user_errors
def run_lab(model: str | None, word: str, sentences: str, progress: gr.Progress = gr.Progress()) -> tuple[dict, dict]:
    """API ``contextual``: similarities, sense statistics, projections and probe of every layer (see explore_word).

    Returned twice: to the API (a hidden ``gr.JSON``) and to the session's ``gr.State``, from which the
    layer slider redraws without the browser sending megabytes of matrices back.
    """
    lines, labels = parse_lines(sentences)
    progress(0, desc=say("contextual.loading"))
    result = explore_word(lines, word, model or None, labels,
                          progress=_reporter(progress, "contextual.encoding_sentences"))
    result["notices"] = [translate(n) for n in result["notices"]]
    result["probe_note"] = translate(result["probe_note"]) if result["probe_note"] else None
    return result, result


@user_errors
def find_examples_event(word: str) -> str:
    """API ``contextual_examples``: sentences of the corpus sample containing ``word``, one per line."""
    found = find_examples(word, FIND_LIMIT)
    if not found["sentences"]:
        raise UserError("contextual.no_examples", word=word.strip())
    return "\n".join(s["sentence"].replace("\n", " ").replace("|", "/") for s in found["sentences"])


@user_errors
def neighbours_event(model: str | None, word: str, sentence: str, occurrence: Any, layer: Any,
                     progress: gr.Progress = gr.Progress()) -> dict:
    """API ``contextual_neighbours``: the corpus words nearest to one occurrence at one layer."""
    progress(0, desc=say("contextual.loading"))
    return nearest_neighbours(sentence, word, model or None, layer=_clamp_layer(layer, 10_000),
                              occurrence=_whole(occurrence, 1) - 1, top_k=NEIGHBOURS_SHOWN,
                              progress=_reporter(progress, "contextual.encoding_corpus"))


@user_errors
def sentence_similarity_event(model: str | None, sentences: str, pooling: str,
                              progress: gr.Progress = gr.Progress()) -> dict:
    """API ``sentence_similarity``: cosine-similarity matrix of pooled sentence embeddings."""
    return sentence_similarity(sentences or "", model or None, pooling or "mean",
                               progress=_reporter(progress, "contextual.encoding_sentences"))


# ---------------------------------------------------------------------------- rendering (private)


def render_layer(result: dict | None, layer: Any, image_format: str) -> tuple:
    """Heatmap, per-layer lines, projection and probe chart of ``layer``."""
    if not result or not result.get("layers"):
        return None, None, None, None
    layer = _clamp_layer(layer, len(result["layers"]) - 1)
    figures = [(plots.similarity_heatmap(result, layer), f"similarity_L{layer}"),
               (plots.layer_lines(result, layer), "similarity_by_layer"),
               (plots.projection_scatter(result, layer), f"projection_L{layer}")]
    if result.get("probe"):
        figures.append((plots.probe_chart(result["probe"], layer), "probe_by_layer"))
    shown = [with_export(fig, image_format, f"{result['word']}_{name}") for fig, name in figures]
    return (*shown, *([None] * (4 - len(shown))))


def _occurrence_choices(result: dict) -> list[tuple[str, int]]:
    choices = []
    for o in result["occurrences"]:
        sentence = result["sentences"][o["sentence"]]
        label = f"{o['label']} | " if o["label"] else ""
        choices.append((f"{o['index'] + 1}. {label}{sentence[:80]}", o["index"]))
    return choices


def pick_occurrence(result: dict | None, index: Any) -> tuple:
    """The neighbour panel's sentence and occurrence number for occurrence ``index`` of the result."""
    if not result or not result.get("occurrences"):
        return gr.skip(), gr.skip()
    occurrence = result["occurrences"][_clamp_layer(index, len(result["occurrences"]) - 1)]
    return result["sentences"][occurrence["sentence"]], occurrence["nth"] + 1


def render_result(result: dict | None, layer: Any, image_format: str) -> tuple:
    """Everything after a comparison: layer slider, notices, figures, probe note, occurrences, CSV files."""
    if not result:
        return (gr.skip(),) * 11
    top = len(result["layers"]) - 1
    layer = _clamp_layer(layer, top)
    notices = "\n\n".join(f"⚠️ {markdown_text(n)}" for n in result["notices"])
    if result["probe"]:
        probe_note = ""
    else:
        probe_note = markdown_text(result["probe_note"]) if result["probe_note"] else say("contextual.probe_missing")
    folder = plots.export_dir(get_settings().upload_ttl_s)
    sentence, nth = pick_occurrence(result, 0)
    return (gr.Slider(maximum=top, value=layer), gr.Markdown(notices, visible=bool(notices)),
            *render_layer(result, layer, image_format), probe_note,
            gr.Dropdown(choices=_occurrence_choices(result), value=0), sentence, nth,
            plots.word_csvs(result, folder))


def render_neighbours(result: dict | None) -> dict:
    """The nearest-neighbours table in the request's language."""
    rows = plots.neighbours_table(result) if result else []
    return table(rows, NEIGHBOUR_HEADERS)


def render_sentences(result: dict | None, image_format: str) -> tuple:
    """Sentence-similarity heatmap and its CSV."""
    if not result:
        return None, None
    figure = with_export(plots.sentence_heatmap(result), image_format, "sentence_similarity")
    return figure, plots.sentence_csv(result, plots.export_dir(get_settings().upload_ttl_s))


# ---------------------------------------------------------------------------- layout


def _neighbours_panel(model: gr.Dropdown, word: gr.Textbox, layer: gr.Slider, result: gr.State) -> tuple:
    gr.Markdown(I18N("ctx_neighbours_intro"))
    occurrence = gr.Dropdown(choices=[], label=I18N("ctx_occurrence"), elem_id="ctx-occurrence")
    with gr.Row():
        sentence = gr.Textbox(label=I18N("ctx_nn_sentence"), scale=4, elem_id="ctx-nn-sentence", max_length=text_limit())
        nth = gr.Number(value=1, precision=0, minimum=1, label=I18N("ctx_nn_nth"), scale=1, elem_id="ctx-nn-nth")
    run = gr.Button(I18N("ctx_nn_run"), elem_id="ctx-nn-run")
    neighbours = table_output(NEIGHBOUR_HEADERS, label=I18N("ctx_nn_table"), wrap=True, elem_id="ctx-nn-table")
    raw = gr.JSON(visible=False)
    occurrence.input(pick_occurrence, inputs=[result, occurrence], outputs=[sentence, nth], queue=False,
                     api_visibility="private")
    run.click(neighbours_event, inputs=[model, word, sentence, nth, layer], outputs=[raw],
              api_name="contextual_neighbours").success(render_neighbours, inputs=[raw], outputs=[neighbours],
                                                        api_visibility="private", queue=False)
    return occurrence, sentence, nth


def _sentences_panel(model: gr.Dropdown, image_format: gr.Radio) -> None:
    gr.Markdown(I18N("ctx_st_intro"))
    sentences = gr.Textbox(label=I18N("ctx_st_sentences"), lines=6, value=SENTENCE_EXAMPLES[0][0],
                           elem_id="ctx-st-sentences", max_length=text_limit())
    with gr.Row():
        pooling = gr.Radio(["mean", "cls"], value="mean", label=I18N("ctx_pooling"), elem_id="ctx-pooling")
        run = gr.Button(I18N("ctx_st_run"), variant="primary", elem_id="ctx-st-run")
    heatmap = gr.Plot(show_label=False, elem_id="ctx-st-heatmap")
    download = gr.File(label=I18N("ctx_st_downloads"), interactive=False, elem_id="ctx-st-download")
    raw = gr.JSON(visible=False)
    examples(SENTENCE_EXAMPLES, inputs=[sentences])
    run.click(sentence_similarity_event, inputs=[model, sentences, pooling], outputs=[raw],
              api_name="sentence_similarity").success(render_sentences, inputs=[raw, image_format],
                                                      outputs=[heatmap, download], api_visibility="private")
    # at most 200 x 200 numbers: small enough to come back from the browser for rendering


def build_tab() -> TabParts:
    """Lay out the Contextual lab and wire its events (api names: contextual, contextual_examples,
    contextual_neighbours, sentence_similarity); its model picker is refreshed with the others."""
    builtin = builtin_examples()
    gr.Markdown(I18N("ctx_intro"))
    with gr.Row():
        with gr.Column(scale=3):
            model = model_dropdown("contextual", elem_id="ctx-model")
            with gr.Row():
                word = gr.Textbox(label=I18N("ctx_word"), value=builtin[0][0], scale=2, elem_id="ctx-word",
                                  max_length=100)
                find = gr.Button(I18N("ctx_find"), scale=1, elem_id="ctx-find")
            sentences = gr.Textbox(label=I18N("ctx_sentences"), info=I18N("ctx_sentences_info"), lines=10,
                                   max_lines=20, value=builtin[0][1], elem_id="ctx-sentences", max_length=text_limit())
            run = gr.Button(I18N("ctx_run"), variant="primary", elem_id="ctx-run")
        with gr.Column(scale=2):
            layer = gr.Slider(0, 6, value=6, step=1, label=I18N("ctx_layer"), elem_id="ctx-layer")
            image_format = gr.Radio(["png", "svg"], value="png", label=I18N("ctx_image_format"))
            files = gr.File(label=I18N("ctx_downloads"), file_count="multiple", interactive=False,
                            elem_id="ctx-downloads")
    notices = gr.Markdown(visible=False, elem_id="ctx-notices")
    raw = gr.JSON(visible=False, elem_id="ctx-raw")  # the API's answer
    result = gr.State(None)  # the same, kept on the server for redrawing
    with gr.Tabs():
        with gr.Tab(I18N("ctx_similarity"), id="ctx-similarity"):
            heatmap = gr.Plot(show_label=False, elem_id="ctx-heatmap")
            lines = gr.Plot(show_label=False, elem_id="ctx-lines")
        with gr.Tab(I18N("ctx_projection"), id="ctx-projection-tab"):
            projection = gr.Plot(show_label=False, elem_id="ctx-projection")
        with gr.Tab(I18N("ctx_probe"), id="ctx-probe-tab"):
            gr.Markdown(I18N("ctx_probe_intro"))
            probe_note = gr.Markdown(elem_id="ctx-probe-note")
            probe = gr.Plot(show_label=False, elem_id="ctx-probe")
        with gr.Tab(I18N("ctx_neighbours"), id="ctx-neighbours-tab"):
            occurrence, nn_sentence, nn_nth = _neighbours_panel(model, word, layer, result)
        with gr.Tab(I18N("ctx_sentence_similarity"), id="ctx-sentences-tab"):
            _sentences_panel(model, image_format)
    examples(builtin, inputs=[word, sentences])
    figures = [heatmap, lines, projection, probe]
    gr.on([run.click, word.submit], run_lab, inputs=[model, word, sentences], outputs=[raw, result],
          api_name="contextual").success(
        render_result, inputs=[result, layer, image_format],
        outputs=[layer, notices, *figures, probe_note, occurrence, nn_sentence, nn_nth, files],
        api_visibility="private")
    # change (not release): the number box and the arrow keys move the slider too; always_last skips
    # the positions a fast drag passes over.
    gr.on([layer.change, image_format.change], render_layer, inputs=[result, layer, image_format], outputs=figures,
          api_visibility="private", trigger_mode="always_last")
    find.click(find_examples_event, inputs=[word], outputs=[sentences], api_name="contextual_examples")
    return TabParts(pickers=[("contextual", model)])
