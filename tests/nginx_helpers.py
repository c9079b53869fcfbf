"""Debian's nginx in front of app processes, on loopback, for the classroom's multi-process tests.

The configuration is the README's (Operations, "Several app processes"): sticky sessions by a
cookie that nginx itself sets (Gradio's queue stream and ``gr.State`` live in one process), and an
``X-PLM-Upstream`` header naming the process that answered, so a test can tell where it landed.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from conftest import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

SITE = """
map $cookie_plm_node $plm_node {{       # a new browser gets a random key, then keeps it in a cookie
    ""      $request_id;
    default $cookie_plm_node;
}}
upstream plm_app {{
    hash $plm_node consistent;         # the same key always reaches the same app process
{servers}
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://plm_app;
        proxy_http_version 1.1;
        proxy_buffering off;           # server-sent events must not be buffered
        proxy_read_timeout 3600s;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        add_header Set-Cookie "plm_node=$plm_node; Path=/; HttpOnly; SameSite=Lax" always;
        add_header X-PLM-Upstream $upstream_addr always;
    }}
}}
"""

MAIN = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format routed '$cookie_plm_node $upstream_addr $request_method $uri';
    access_log {tmp}/access.log routed;
    client_body_buffer_size 1m;        # request bodies stay in memory: workers may not write to {tmp}
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{site}
}}
"""


def site_config(ports: list[int], port: int) -> str:
    """The ``server``/``upstream`` part (what the README shows) for app processes on ``ports``."""
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in ports)
    return SITE.format(servers=servers, port=port)


@contextlib.contextmanager
def nginx_in_front(app_urls: list[str], tmp: Path) -> Iterator[str]:
    """Run nginx (foreground, its files in ``tmp``) balancing over ``app_urls``; yields its URL; stops it."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (Debian's nginx; .ci/run installs it)")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ports = [int(url.rstrip("/").rsplit(":", 1)[1]) for url in app_urls]
    config = tmp / "nginx.conf"
    config.write_text(MAIN.format(tmp=tmp, site=site_config(ports, port)))
    process = subprocess.Popen([NGINX, "-c", str(config), "-p", str(tmp), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait(url, process, tmp)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait(url: str, process: subprocess.Popen, tmp: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {(tmp / 'error.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url + "gradio_api/info", timeout=5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("nginx did not answer in 20 s")


def upstream_of(url: str, node: str) -> str:
    """The app process (host:port) nginx sends a client with cookie ``plm_node=node`` to."""
    request = urllib.request.Request(url + "gradio_api/info", headers={"Cookie": f"plm_node={node}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["X-PLM-Upstream"]


def routed_requests(tmp: Path) -> list[tuple[str, str, str, str]]:
    """(cookie node, upstream, method, path) of every request nginx passed on, from its access log."""
    lines = (tmp / "access.log").read_text().splitlines()
    return [tuple(line.split(" ", 3)) for line in lines if line.count(" ") >= 3]


def nodes_per_upstream(url: str, count: int) -> dict[str, list[str]]:
    """Cookie values that pin a client to each app process: ``{upstream: [node, ...]}`` with ``count`` each."""
    found: dict[str, list[str]] = {}
    for i in range(200):
        node = f"node-{i}"
        keys = found.setdefault(upstream_of(url, node), [])
        if len(keys) < count:
            keys.append(node)
        if len(found) > 1 and all(len(v) >= count for v in found.values()):
            break
    return found
