"""Clients for the benchmarks: ``gradio_client`` set up for a local server, and the raw HTTP API.

Two measurement artefacts of ``gradio_client`` 2.x matter on a small machine where the
clients share the CPUs with the server:

* it sends every request with a fresh ``httpx`` client; with certificate verification on,
  each one loads the system CA bundle (about 15 ms of CPU). For a plain ``http://`` URL
  there is no TLS to verify, so :func:`make_client` turns verification off there, which
  cuts the client's CPU per request about 15-fold and leaves the CPUs to the server;
* it polls its message queue every 50 ms (``gradio_client.utils.stream_sse_v1plus``), so
  no call returns sooner than ~50 ms whatever the server does. :class:`SseClient` speaks
  the same queue API the browser uses (POST ``queue/join``, then read the event stream)
  without polling, to measure what the server itself adds.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx


def make_client(url: str, timeout: float = 300):
    """A ``gradio_client.Client`` with generous timeouts (shared CPUs can be slow)."""
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, ssl_verify=url.startswith("https:"),
                  httpx_kwargs={"timeout": timeout})


def api_indexes(http: httpx.Client, url: str) -> dict[str, int]:
    """API name -> the event's index in the app's config (what ``queue/join`` asks for)."""
    config = http.get(url.rstrip("/") + "/config").raise_for_status().json()
    return {d.get("api_name"): d["id"] for d in config["dependencies"] if d.get("api_name")}


class SseClient:
    """Calls a queued Gradio event the way the browser does: one session, no polling.

    ``fn_index`` (from :func:`api_indexes`) saves many clients of one app fetching its config each.
    """

    def __init__(self, url: str, timeout: float = 300, fn_index: dict[str, int] | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=timeout)
        self.session_hash = uuid.uuid4().hex[:11]
        self.fn_index = fn_index or api_indexes(self.http, self.url)

    def predict(self, *data: Any, api_name: str) -> list[Any]:
        """The event's output values; RuntimeError with the server's message if it failed."""
        body = {"data": list(data), "fn_index": self.fn_index[api_name.lstrip("/")],
                "session_hash": self.session_hash, "event_data": None, "trigger_id": None}
        self.http.post(self.url + "/gradio_api/queue/join", json=body).raise_for_status()
        with self.http.stream("GET", self.url + "/gradio_api/queue/data",
                              params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    if not message.get("success"):
                        raise RuntimeError(output.get("error") or "request failed")
                    return output["data"]
        raise RuntimeError("the event stream ended without a result")

    def close(self) -> None:
        self.http.close()
