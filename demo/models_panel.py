"""Models tab: compute device, Hub/offline status, checkpoints folder, loaded models with their memory, unload buttons."""

from __future__ import annotations

import hashlib
import html
from typing import Any

import gradio as gr

from demo.job_panel import duration
from demo.common import TabParts, is_offline, table_output, user_errors
from demo.i18n import I18N, add_messages, add_strings
from demo.messages import say, table, translate
from model_utils.checkpoints import deletable_by, delete_checkpoint, is_admin, saved_checkpoints, storage_error
from model_utils.config import get_settings
from model_utils.errors import UserError, scrub_paths
from model_utils.jobs import RUNNING, get_runner
from model_utils.manager import device_summary, get_manager
from model_utils.registry import local_checkpoints

STRINGS = {
    "en": {"tab_models": "Models",
           "models_unload_one": "Unload this model",
           "models_admin": "Admin and your checkpoints",
           "models_admin_token": "Admin token (PLM_ADMIN_TOKEN; empty for visitors)",
           "models_mine": "Checkpoints you made in this browser session",
           "models_delete": "Delete this checkpoint",
           "models_jobs": "Training jobs (running first, then in line)",
           "models_job": "Job",
           "models_stop_job": "Stop this job (yours, or any with the admin token)",
           "col_job": "job", "col_kind": "kind", "col_what": "what", "col_owner": "owner", "col_state": "state",
           "col_elapsed": "running for", "col_left": "about left",
           "models_intro": "Models load on first use and stay cached (least recently used ones are "
                           "unloaded when the cache is full). Unload them to free memory."},
    "zh-CN": {"tab_models": "模型",
              "models_unload_one": "卸载此模型",
              "models_admin": "管理与你的检查点",
              "models_admin_token": "管理员令牌（PLM_ADMIN_TOKEN；访客留空）",
              "models_mine": "你在本次浏览器会话中创建的检查点",
              "models_delete": "删除这个检查点",
              "models_jobs": "训练任务（先列运行中的，再按排队顺序）",
              "models_job": "任务",
              "models_stop_job": "停止这个任务（你自己的；有管理员令牌时任何任务）",
              "col_job": "任务", "col_kind": "类型", "col_what": "内容", "col_owner": "所有者", "col_state": "状态",
              "col_elapsed": "已运行", "col_left": "大约剩余",
              "models_intro": "模型在首次使用时加载并保留在缓存中（缓存满时卸载最久未用的模型）。"
                              "卸载模型可释放内存。"},
}
IDLE_SECONDS = 120  # without the admin token, only models unused this long can be unloaded
TABLE_HEADERS = ["col_checkpoint", "col_head", "col_device", "col_dtype", "col_memory"]
JOB_HEADERS = ["col_job", "col_kind", "col_what", "col_owner", "col_state", "col_elapsed", "col_left"]

MESSAGES = {
    "en": {
        "models.device": "**Device:** {device} ({name}), {dtype}{gpu}",
        "models.gpu": " · GPU memory {used} / {total} MB",
        "models.hub_offline": "**Hugging Face Hub:** offline: defaults are the bundled models",
        "models.hub_online": "**Hugging Face Hub:** online: Hub models download on first use",
        "models.cache": "**Cache:** {count} of at most {most} models, {used_mb:.1f} MB of {limit_mb:.0f} MB",
        "models.checkpoints_problem": "**Checkpoints:** ⚠️ {problem}",
        "models.checkpoints_missing": "**Checkpoints:** `{folder}` does not exist yet; it is created when the first "
                                      "model is saved",
        "models.job_running": "running",
        "models.job_waiting": "waiting, number {position} in line",
        "models.owner_you": "you",
        "models.owner_other": "session {tag}",
        "models.job_stopping": "Stopping {job_id}.",
        "models.checkpoints": "**Checkpoints:** `{folder}`, {count} saved (offered as `local:<name>`), {used_mb:,.0f} of "
                              "{limit_mb:,.0f} MB; at most {most} made in the app (the oldest go first)",
    },
    "zh-CN": {
        "models.device": "**设备：** {device}（{name}），{dtype}{gpu}",
        "models.gpu": " · GPU 显存 {used} / {total} MB",
        "models.hub_offline": "**Hugging Face Hub：** 离线：默认使用内置模型",
        "models.hub_online": "**Hugging Face Hub：** 在线：Hub 模型在首次使用时下载",
        "models.cache": "**缓存：** {count} 个模型（最多 {most} 个），{used_mb:.1f} MB / {limit_mb:.0f} MB",
        "models.checkpoints_problem": "**检查点：** ⚠️ {problem}",
        "models.checkpoints_missing": "**检查点：** `{folder}` 还不存在；保存第一个模型时会创建",
        "models.job_running": "运行中",
        "models.job_waiting": "等待中，排在第 {position} 位",
        "models.owner_you": "你",
        "models.owner_other": "会话 {tag}",
        "models.job_stopping": "正在停止 {job_id}。",
        "models.checkpoints": "**检查点：** `{folder}`，已保存 {count} 个（以 `local:<名称>` 提供），占用 {used_mb:,.0f} / "
                              "{limit_mb:,.0f} MB；应用中创建的最多保留 {most} 个（最早的先删除）",
    },
}
add_strings(STRINGS)
add_messages(MESSAGES)


def checkpoints_markdown() -> str:
    """One line: where fine-tuned/pretrained models are saved, how many there are, or why they cannot be."""
    root = get_settings().checkpoints_dir
    problem = storage_error(root)
    if problem:  # the operator's own setting (no user input), server paths shortened
        return say("models.checkpoints_problem", problem=html.escape(translate(problem), quote=False))
    shown = scrub_paths(str(root.absolute()) if root.is_absolute() else str(root))
    if not root.is_dir():
        return say("models.checkpoints_missing", folder=shown)
    settings = get_settings()
    return say("models.checkpoints", folder=shown, count=len(local_checkpoints()),
               used_mb=sum(c.bytes for c in saved_checkpoints(root)) / 2**20,
               limit_mb=settings.checkpoints_max_bytes / 2**20, most=settings.checkpoints_max_count)


def status_markdown() -> str:
    """One paragraph: device, precision, Hub status, checkpoints folder, cache use and limits."""
    device = device_summary()
    settings = get_settings()
    loaded = get_manager().loaded()
    gpu = say("models.gpu", used=device["memory_used_mb"], total=device["memory_total_mb"]) \
        if device["memory_total_mb"] else ""
    lines = [say("models.device", device=device["device"], name=device["name"], dtype=device["dtype"], gpu=gpu),
             say("models.hub_offline" if is_offline() else "models.hub_online"),
             checkpoints_markdown(),
             say("models.cache", count=len(loaded), most=settings.cache_max_models,
                 used_mb=sum(m["approx_bytes"] for m in loaded) / 2**20, limit_mb=settings.cache_max_bytes / 2**20)]
    return "  \n".join(lines)


def models_status() -> tuple[str, Any, Any]:
    """API ``models_status``: (status text, loaded-models table, unload choices)."""
    loaded = get_manager().loaded()
    rows = [[m["checkpoint"], m["head"], m["device"], m["dtype"], m["approx_mb"]] for m in loaded]
    names = sorted({m["checkpoint"] for m in loaded})
    return status_markdown(), table(rows, TABLE_HEADERS), gr.Dropdown(choices=names, value=names[0] if names else None)


def unload_models(checkpoint: str | None, admin_token: str | None = None) -> tuple[str, list[list[Any]], Any]:
    """API ``unload_models``: unload one checkpoint (every head), or all when none is chosen.

    With the admin token (``PLM_ADMIN_TOKEN``) every chosen model goes; without it only the models
    nobody asked for in the last :data:`IDLE_SECONDS` and nobody is using right now, so one visitor
    cannot evict what the others are working with.
    """
    admin = is_admin(admin_token)
    manager = get_manager()
    count = manager.unload(checkpoint or None, idle_for=None if admin else IDLE_SECONDS)
    kept = [m for m in manager.loaded() if not checkpoint or m["checkpoint"] == checkpoint]
    gr.Info(say("models.unloaded", count=count) + (" " + say("models.kept", kept=len(kept), minutes=IDLE_SECONDS // 60)
                                                   if kept else ""))
    return models_status()


def my_checkpoints(admin_token: str | None, request: gr.Request) -> Any:
    """The checkpoints this session may delete (any app-made one with the admin token)."""
    names = deletable_by(_session(request), admin=is_admin(admin_token))
    return gr.Dropdown(choices=names, value=names[-1] if names else None)


def delete_own_checkpoint(name: str | None, admin_token: str | None, request: gr.Request) -> tuple[str, Any]:
    """API ``delete_checkpoint``: delete a checkpoint this session made (any app-made one for an admin)."""
    name = delete_checkpoint(name or "", _session(request), admin=is_admin(admin_token))
    get_manager().unload(f"local:{name}")
    gr.Info(say("models.deleted", name=name))
    return status_markdown(), my_checkpoints(admin_token, request)


def owner_tag(owner: str, viewer: str | None) -> str:
    """A job's owner as others see it: "you" for the viewer's own, else a short hash (never the session id)."""
    if owner and owner == viewer:
        return say("models.owner_you")
    return say("models.owner_other", tag=hashlib.sha256(owner.encode()).hexdigest()[:6]) if owner else "–"


def jobs_table(request: gr.Request | None = None) -> tuple[Any, Any]:
    """The unfinished training jobs (running, then waiting in line) and the job picker's choices."""
    runner, viewer = get_runner(), _session(request)
    rows = []
    for job in runner.unfinished():
        state = say("models.job_running") if job.state == RUNNING else \
            say("models.job_waiting", position=runner.position(job) or 1)
        left = job.remaining() if job.state == RUNNING else runner.wait_estimate(job)
        rows.append([job.id, say(f"job.kind.{job.kind}"), job.description, owner_tag(job.owner, viewer), state,
                     duration(job.elapsed()), duration(left) if left is not None else "–"])
    ids = [row[0] for row in rows]
    return table(rows, JOB_HEADERS), gr.Dropdown(choices=ids, value=ids[0] if ids else None)


def stop_job(job_id: str | None, admin_token: str | None, request: gr.Request) -> tuple[Any, Any]:
    """API ``stop_job``: stop a waiting or running job: the session's own, or any with the admin token."""
    job = get_runner().get(job_id)
    if job is None or job.done:
        raise UserError("jobs.not_found", job_id=job_id or "")
    admin = is_admin(admin_token)
    if not admin and job.owner != _session(request):
        raise UserError("jobs.not_yours", job_id=job.id)
    job.stop(UserError("jobs.stopped_by_admin") if admin and job.owner != _session(request) else None)
    gr.Info(say("models.job_stopping", job_id=job.id))
    return jobs_table(request)


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) or None


def build_tab() -> TabParts:
    """Lay out the Models tab; app.py refreshes it whenever it is opened and when the page loads."""
    gr.Markdown(I18N("models_intro"))
    status = gr.Markdown(elem_id="models-status")
    loaded = table_output(TABLE_HEADERS, label=I18N("models_loaded"), elem_id="models-table")
    with gr.Row():
        refresh = gr.Button(I18N("models_refresh"), elem_id="models-refresh")
        which = gr.Dropdown(label=I18N("col_checkpoint"), choices=[], allow_custom_value=True,
                            elem_id="models-which")
        unload_one = gr.Button(I18N("models_unload_one"), elem_id="models-unload-one")
        unload_all = gr.Button(I18N("models_unload"), variant="stop", elem_id="models-unload")
    with gr.Accordion(I18N("models_admin"), open=False):
        token = gr.Textbox(label=I18N("models_admin_token"), type="password", max_length=200,
                           elem_id="models-admin-token")
        with gr.Row():
            mine = gr.Dropdown(label=I18N("models_mine"), choices=[], elem_id="models-mine")
            delete = gr.Button(I18N("models_delete"), variant="stop", elem_id="models-delete")
    jobs = table_output(JOB_HEADERS, label=I18N("models_jobs"), elem_id="models-jobs")
    with gr.Row():
        job_pick = gr.Dropdown(label=I18N("models_job"), choices=[], allow_custom_value=True, elem_id="models-job")
        stop_one = gr.Button(I18N("models_stop_job"), variant="stop", elem_id="models-stop-job")
    outputs = [status, loaded, which]
    refresh.click(models_status, outputs=outputs, api_name="models_status", queue=False)
    unload_one.click(unload_models, inputs=[which, token], outputs=outputs, api_name="unload_models")
    unload_all.click(lambda admin_token: unload_models(None, admin_token), inputs=[token], outputs=outputs,
                     api_visibility="private")
    deletion = delete.click(user_errors(delete_own_checkpoint), inputs=[mine, token], outputs=[status, mine],
                            api_name="delete_checkpoint")
    token.change(my_checkpoints, inputs=[token], outputs=[mine], api_visibility="private", queue=False)
    refresh.click(my_checkpoints, inputs=[token], outputs=[mine], api_visibility="private", queue=False)
    refresh.click(jobs_table, outputs=[jobs, job_pick], api_name="training_jobs", queue=False)
    stop_one.click(user_errors(stop_job), inputs=[job_pick, token], outputs=[jobs, job_pick], api_name="stop_job",
                   queue=False)
    return TabParts(changes_checkpoints=[deletion],
                    on_open=dict(fn=panel, inputs=[token], outputs=[*outputs, mine, jobs, job_pick],
                                 api_visibility="private", queue=False))


def panel(admin_token: str | None, request: gr.Request) -> tuple:
    """Everything the tab shows: status, loaded models, unload choices, the session's checkpoints, the jobs."""
    return (*models_status(), my_checkpoints(admin_token, request), *jobs_table(request))
