"""bertviz head view and model view as self-contained HTML documents that work offline.

bertviz's own ``head_view``/``model_view`` (``html_action="return"``) produce a fragment that loads
require.js, d3 and jQuery from a CDN. We drop the CDN tag and inline instead:

* d3 5.7.0, the version bertviz asks for, shipped by the ``mpld3`` package (``mpld3/js``);
* jQuery (slim build) shipped by the ``XStatic-jQuery`` package;
* a three-line stand-in for require.js's ``require.config``/``requirejs(deps, callback)``, which is
  all bertviz uses of it.

The result is one HTML document: the app shows it in an ``<iframe srcdoc>`` (where its scripts
run) and offers the same text as a standalone download. Input is the dict returned by
:func:`model_utils.attention.attention`. A render helper of the Attention tab (presentation, so it
lives in ``demo``); views of long inputs hold a window of layers, and say which.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from importlib import resources

# Most SVG lines the model view may draw (layers x heads x tokens^2) before it drops layers.
MODEL_VIEW_MAX_LINES = 200_000
# Most attention values embedded in one head view (its HTML grows ~7 bytes per value).
HEAD_VIEW_MAX_VALUES = 600_000

_CDN_REQUIRE = re.compile(r'<script src="https://[^"]*require[^"]*"></script>')
_CDN_PATHS = re.compile(r"require\.config\(\{\s*paths:\s*\{[^}]*\}\s*\}\);")  # d3/jQuery CDN URLs
_REQUIRE_SHIM = """
window.requirejs = window.require = function (deps, callback) {
  callback.apply(null, deps.map(function (name) { return {jquery: window.jQuery, d3: window.d3}[name]; }));
};
window.require.config = function () {};
"""


def _script(source: str) -> str:
    """Inline ``source`` in a <script> element; "</" and "<!--" are escaped so text cannot end it."""
    return "<script>\n" + source.replace("</", "<\\/").replace("<!--", "<\\!--") + "\n</script>"


@lru_cache(maxsize=1)
def offline_libraries() -> str:
    """<script> elements defining ``d3``, ``jQuery`` and the require stand-in, read from packages."""
    try:
        d3 = resources.files("mpld3").joinpath("js", "d3.v5.min.js").read_text(encoding="utf-8")
        from xstatic.pkg import jquery
    except (ImportError, FileNotFoundError) as err:
        raise RuntimeError("The attention views need the 'mpld3' and 'XStatic-jQuery' packages "
                           "(pip install -r requirements.txt).") from err
    jq = resources.files(jquery).joinpath("data", "jquery.slim.min.js").read_text(encoding="utf-8")
    return "\n".join(_script(source) for source in (d3, jq, _REQUIRE_SHIM))


def make_offline(fragment: str, title: str = "Attention") -> str:
    """Turn bertviz's returned HTML fragment into a complete document with no network access."""
    opening, closing = '<script type="text/javascript">\n', "\n</script>"
    start, end = fragment.find(opening), fragment.rfind(closing)
    if not _CDN_REQUIRE.search(fragment) or start < 0 or end < start:
        raise RuntimeError("Unexpected bertviz output: its require.js or view script was not found.")
    markup = _CDN_REQUIRE.sub("", fragment[:start])
    script = _CDN_PATHS.sub("", fragment[start + len(opening):end], count=1)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title>{offline_libraries()}</head>"
            f'<body style="margin:8px;background:#fff;color:#000">{markup}{_script(script)}'
            f"{fragment[end + len(closing):]}</body></html>")


def _tensor(result: dict, decimals: int = 3) -> list:
    """Attention as bertviz wants it: one ``[1, heads, n, n]`` tensor per layer, rounded (smaller HTML)."""
    import numpy as np
    import torch

    weights = torch.from_numpy(np.asarray(result["attentions"], dtype=np.float64)).round(decimals=decimals)
    return [layer.unsqueeze(0) for layer in weights]


def layer_window(num_layers: int, per_layer: int, budget: int, around: int = 0) -> list[int]:
    """Layers to show: all if ``num_layers * per_layer <= budget``, else as many as fit around ``around``."""
    fit = max(1, budget // max(1, per_layer))
    if fit >= num_layers:
        return list(range(num_layers))
    start = min(max(0, around - fit // 2), num_layers - fit)
    return list(range(start, start + fit))


def head_view_layers(result: dict, layer: int = 0) -> list[int]:
    """Layers embedded in the head view: all whose values fit in HEAD_VIEW_MAX_VALUES, around ``layer``."""
    n, pair = len(result["tokens"]), result.get("sentence_b_start") is not None
    per_layer = result["num_heads"] * n * n * (2 if pair else 1)  # bertviz adds A/B blocks for pairs
    return layer_window(result["num_layers"], per_layer, HEAD_VIEW_MAX_VALUES, layer)


def head_view_html(result: dict, layer: int = 0) -> tuple[str, list[int]]:
    """bertviz head view (``layer`` selected first) as an offline document, and the layers it holds."""
    from bertviz import head_view

    layers = head_view_layers(result, layer)
    fragment = head_view(_tensor(result), result["tokens"], sentence_b_start=result.get("sentence_b_start"),
                         layer=min(max(layer, layers[0]), layers[-1]), include_layers=layers,
                         html_action="return").data
    return make_offline(fragment, "Attention head view"), layers


def model_view_layers(result: dict, layer: int = 0) -> list[int]:
    """Layers the model view draws: all that fit in MODEL_VIEW_MAX_LINES SVG lines, around ``layer``."""
    n = len(result["tokens"])
    return layer_window(result["num_layers"], result["num_heads"] * n * n, MODEL_VIEW_MAX_LINES, layer)


def model_view_html(result: dict, layer: int = 0) -> tuple[str, list[int]]:
    """bertviz model view as an offline document, and the layers it draws."""
    from bertviz import model_view

    layers = model_view_layers(result, layer)
    fragment = model_view(_tensor(result), result["tokens"], sentence_b_start=result.get("sentence_b_start"),
                          include_layers=layers, display_mode="light", html_action="return").data
    return make_offline(fragment, "Attention model view"), layers


def view_height(result: dict, kind: str, layers: int | None = None) -> int:
    """Pixel height an iframe needs to show the ``kind`` ("head" or "model") view without scrolling."""
    n = len(result["tokens"])
    if kind == "head":
        return int(n * 22.5 + 30 + 90)
    thumbnail = n * 7 * 12 / result["num_heads"] + 10
    detail = n * 18 + 2 * 15 + 25
    return int(max((layers or result["num_layers"]) * thumbnail + 38, detail) + 70)


def iframe(document: str, height: int, title: str) -> str:
    """An ``<iframe srcdoc>`` element embedding ``document`` (scripts run there, unlike in gr.HTML)."""
    return (f'<iframe title="{html.escape(title)}" srcdoc="{html.escape(document, quote=True)}" '
            f'style="width:100%;height:{height}px;border:0;background:#fff" loading="eager"></iframe>')
