"""Tests of the offline bertviz documents (demo.attention_views) and the Attention tab's
Plotly figures (demo.attention_plots), on small hand-made attention data (no model needed)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from demo import attention_plots as plots
from demo import attention_tab as tab
from demo import attention_views as views


def fake_result(tokens: list[str], layers: int = 2, heads: int = 3, b_start: int | None = None) -> dict:
    rng = np.random.default_rng(0)
    raw = rng.random((layers, heads, len(tokens), len(tokens)))
    return {"tokens": tokens, "attentions": (raw / raw.sum(-1, keepdims=True)).tolist(),
            "num_layers": layers, "num_heads": heads, "sentence_b_start": b_start}


TOKENS = ["[CLS]", "the", "cat", "[SEP]", "it", "sat", "[SEP]"]


def test_offline_libraries_come_from_packages() -> None:
    libs = views.offline_libraries()
    assert "d3js.org v5.7.0" in libs  # the d3 version bertviz asks its CDN for
    assert "jQuery" in libs and "window.requirejs" in libs


@pytest.mark.parametrize("make", [views.head_view_html, views.model_view_html])
def test_documents_load_nothing_from_the_network(make) -> None:
    document, layers = make(fake_result(TOKENS, b_start=4))
    assert document.startswith("<!DOCTYPE html>") and layers == [0, 1]  # every layer fits
    assert not re.search(r"""<script[^>]+src=|https?://cdn|cdnjs""", document)
    assert '"left_text": ["[CLS]", "the", "cat", "[SEP]", "it", "sat", "[SEP]"]' in document
    assert "Sentence A -> Sentence B" in document  # bertviz's own pair filters


def test_typed_text_cannot_close_the_script() -> None:
    document, _ = views.head_view_html(fake_result(["[CLS]", "</script><script>alert(1)</script>", "[SEP]"]))
    body = document.split("</head>", 1)[1]
    assert body.count("</script>") == 1  # only bertviz's own closing tag
    assert "<\\/script><script>alert(1)<\\/script>" in body


def test_iframe_escapes_the_document() -> None:
    frame = views.iframe('<p title="x">a & b</p>', 100, "t")
    assert frame.startswith("<iframe") and 'srcdoc="&lt;p title=&quot;x&quot;&gt;a &amp; b&lt;/p&gt;"' in frame
    assert html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1)) == '<p title="x">a & b</p>'


def test_layer_window_keeps_large_inputs_bounded() -> None:
    assert views.layer_window(6, 10, 100) == [0, 1, 2, 3, 4, 5]
    assert views.layer_window(12, 30, 100, around=11) == [9, 10, 11]
    assert views.layer_window(12, 30, 100, around=0) == [0, 1, 2]
    assert views.layer_window(12, 10**9, 100, around=5) == [5]


def test_model_view_drops_layers_beyond_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "MODEL_VIEW_MAX_LINES", 2 * 3 * len(TOKENS) ** 2 - 1)
    document, layers = views.model_view_html(fake_result(TOKENS, layers=4), layer=3)
    assert layers == [3]
    assert '"include_layers": [3]' in document


def test_rounded_attention_is_embedded() -> None:
    result = fake_result(["a", "b"], layers=1, heads=1)
    document, _ = views.head_view_html(result)
    data = json.loads(re.search(r"const params = (\{.*?\});", document).group(1).replace("<\\/", "</"))
    embedded = np.asarray(data["attention"][0]["attn"])
    np.testing.assert_allclose(embedded[0, 0], np.asarray(result["attentions"])[0, 0], atol=5e-4)


# ---------------------------------------------------------------- Plotly figures (demo layer)



def test_heatmap_labels_every_token_even_repeated_ones() -> None:
    tokens = ["[CLS]", "the", "cat", "the", "[SEP]"]
    fig = plots.attention_heatmap(fake_result(tokens)["attentions"][0][0], tokens, "t")
    labels = ["[CLS] (0)", "the (1)", "cat (2)", "the (3)", "[SEP] (4)"]
    assert list(fig.data[0].x) == labels and list(fig.data[0].y) == labels
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.autorange == "reversed"


def test_export_config_reaches_the_plot_value() -> None:
    fig = plots.layer_grid(fake_result(TOKENS)["attentions"][0], TOKENS, 0)
    assert len(fig.data) == 3
    value = plots.with_export(fig, "svg", "grid")
    spec = json.loads(value.plot)
    assert spec["config"]["toImageButtonOptions"] == {"format": "svg", "filename": "grid", "scale": 1}
    # Gradio's Plotly.js cannot decode Plotly's binary arrays: matrices must arrive as plain lists
    assert "bdata" not in value.plot
    np.testing.assert_allclose(spec["data"][1]["z"], fake_result(TOKENS)["attentions"][0][1], atol=5e-5)  # 4 decimals
    assert plots.export_config("exe", "x")["toImageButtonOptions"]["format"] == "png"


def test_summary_chart_skips_missing_metrics() -> None:
    from model_utils.attention import head_summary

    rows = head_summary(fake_result(TOKENS)["attentions"])  # no [CLS]/[SEP] positions given
    fig = plots.summary_chart(rows, 2, 3)
    assert [a.text for a in fig.layout.annotations] == [
        plots.MESSAGES["en"][f"attention.plot.summary.{m}"] for m in ("entropy", "self", "previous", "next")]


def test_layer_change_redraws_bertviz_only_when_layers_were_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    result = dict(fake_result(TOKENS, layers=4), notice="", notices=[])
    state = {"result": result, "weights": np.asarray(result.pop("attentions"), dtype=np.float32)}
    assert tab.refresh_bertviz(state, 2, "attn-model-view") == (gr.skip(),) * 4  # everything fits: nothing to redraw
    monkeypatch.setattr(views, "MODEL_VIEW_MAX_LINES", 3 * len(TOKENS) ** 2)
    assert tab.refresh_bertviz(state, 3, "attn-heatmaps") == (gr.skip(),) * 4  # no bertviz view is open
    notice, head_frame, model_frame, files = tab.refresh_bertviz(state, 3, "attn-model-view")
    assert "model view shows layers 3–3 of 0–3" in notice.value
    assert head_frame == gr.skip() and "include_layers&quot;: [3]" in model_frame  # only the open view is drawn
    assert [Path(f).name for f in files] == ["attention_model_view.html"]


def test_only_the_open_view_is_drawn_from_the_state() -> None:
    result = dict(fake_result(TOKENS, layers=3, heads=2), notice="", notices=[], cls_positions=[0],
                  sep_positions=[3, 6])
    weights = np.asarray(result.pop("attentions"), dtype=np.float32)
    state = {"result": result, "weights": weights, "rollout": np.zeros((3, 7, 7), dtype=np.float32),
             "summary": []}
    table, heatmap, grid, rollout, summary = tab.chart_values(state, 2, 1, "png", "attn-heatmaps", others=None)
    assert table is grid is rollout is summary is None
    spec = json.loads(heatmap.plot)
    assert spec["layout"]["title"]["text"] == "Layer 2, head 1"
    np.testing.assert_allclose(spec["data"][0]["z"], weights[2, 1], atol=5e-5)  # rounded to the 4 decimals shown
    # out-of-range or half-typed picker values are clamped to what the model has, never an error
    assert json.loads(tab.chart_values(state, "9", "-3", "png", "attn-heatmaps")[1].plot)["layout"]["title"][
        "text"] == "Layer 2, head 0"
    assert tab.chart_values(state, 0, 0, "png", "attn-head-view") == (gr.skip(),) * 5
    assert tab.chart_values(None, 0, 0, "png", "attn-heatmaps") == (gr.skip(),) * 5


def test_every_ui_text_has_a_chinese_translation() -> None:
    assert set(tab.STRINGS["en"]) == set(tab.STRINGS["zh-CN"])
    assert all(text.strip() for texts in tab.STRINGS.values() for text in texts.values())
