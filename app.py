"""PLM Playground: explore pretrained language models in the browser.

Run ``python app.py`` (host/port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT). The app
assembles one tab per module listed in :data:`TABS`, a Models panel, the English/Chinese
UI texts, and a bounded queue; models load lazily on first use.
"""

from __future__ import annotations

import logging

import gradio as gr

from demo import attention_tab
from demo import fill_mask_tab, models_panel, next_sentence_tab
from demo import classify_tab
from demo import contextual_tab
from demo import finetune_tab
from demo import generate_tab
from demo import pretrain_tab
from demo import classroom_tab
from demo import gradio_sessions
from demo import job_panel
from demo.common import is_offline, localized_on_load, refresh_pickers, tab_from_url
from demo.i18n import I18N
from model_utils.checkpoints import storage_problem
from model_utils.config import get_settings
from model_utils.manager import warm_up

# (label key, tab module): each module has build_tab() and STRINGS. Add a tab with one line.
TABS: list[tuple[str, object]] = [
    ("tab_fill_mask", fill_mask_tab),
    ("tab_next_sentence", next_sentence_tab),
    ("tab_generate", generate_tab),
    ("tab_attention", attention_tab),
    ("tab_contextual", contextual_tab),
    ("tab_classify", classify_tab),
    ("tab_finetune", finetune_tab),
    ("tab_pretrain", pretrain_tab),
    ("tab_classroom", classroom_tab),
    ("tab_models", models_panel),  # keep last
]
# The tasks of the first tab's model pickers, known once the UI is built: their default models load at launch.
FIRST_TAB_TASKS: list[str] = []


def build_demo() -> gr.Blocks:
    """Assemble the whole UI (tabs, offline and checkpoints banners, Models panel) into a ``gr.Blocks``.

    Each tab's ``build_tab()`` returns its :class:`~demo.common.TabParts`; after any event that may
    change the saved checkpoints (a training run, a deletion), every model picker is refreshed.
    """
    ttl = get_settings().upload_ttl_s
    # Uploads and files made for downloads are deleted once older than PLM_UPLOAD_TTL_MIN (checked as often).
    with gr.Blocks(title="PLM Playground", delete_cache=(min(ttl, 900), ttl)) as demo:
        gr.Markdown(I18N("app_title"), elem_id="app-title")
        gr.Markdown(I18N("app_intro"))
        gr.Markdown(I18N("offline_banner"), visible=is_offline(), elem_id="offline-banner")
        gr.Markdown(I18N("checkpoints_banner"), visible=storage_problem() is not None,
                    elem_id="checkpoints-banner")
        parts = []
        with gr.Tabs() as tabs:
            for label_key, module in TABS:
                with gr.Tab(I18N(label_key), id=label_key) as tab:
                    part = module.build_tab()
                if part.on_select:
                    tab.select(**{"api_visibility": "private", **part.on_select})
                if part.on_open:
                    tab.select(**part.on_open)
                    demo.load(**part.on_open)
                parts.append(part)
        FIRST_TAB_TASKS[:] = dict.fromkeys(task for task, _ in parts[0].pickers)
        pickers = [picker for part in parts for picker in part.pickers]
        refresh = refresh_pickers([task for task, _ in pickers])
        for event in (event for part in parts for event in part.changes_checkpoints):
            event.then(refresh, outputs=[dropdown for _, dropdown in pickers], api_visibility="private", queue=False)
        openers = {part.opens_from_url: key for (key, _), part in zip(TABS, parts) if part.opens_from_url}
        demo.load(tab_from_url(openers), outputs=tabs, api_visibility="private", queue=False)
        demo.unload(job_panel.leave)  # a closed tab's training job is dropped or stopped: nobody waits on an orphan
        localize, localized = localized_on_load(demo)
        demo.load(localize, outputs=localized, api_visibility="private", queue=False)
    return demo


def main() -> None:
    """Build, configure the queue, and launch the app."""
    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    problem = storage_problem()
    if problem:  # the app still serves everything but saving models
        logging.getLogger("plm_playground").warning(problem)
    gradio_sessions.install()  # a new browser session no longer blocks the server for ~20-30 ms
    demo = build_demo()
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_max_size)
    if settings.warm_start:  # the first tab's models load while the server starts, not on the first click
        warm_up(FIRST_TAB_TASKS)
    demo.launch(i18n=I18N, max_file_size=settings.max_upload_bytes)


if __name__ == "__main__":
    main()
