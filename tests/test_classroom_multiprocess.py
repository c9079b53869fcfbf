"""One class served by two app processes behind nginx, sharing one PostgreSQL database.

Learners join and answer through both processes; the instructor, on one of them, sees every
answer, and the reveal computed there is what the learners on the other process see.
"""

from __future__ import annotations

import concurrent.futures

import pytest

from classroom_helpers import fresh_database
from conftest import running_app
from nginx_helpers import nginx_in_front, nodes_per_upstream, routed_requests

gradio_client = pytest.importorskip("gradio_client")
PAIR = ("i was hungry .", "then i ate dinner .")


def pinned_client(url: str, node: str):
    """A gradio_client session that nginx keeps on one app process (its sticky cookie)."""
    return gradio_client.Client(url, verbose=False, httpx_kwargs={"cookies": {"plm_node": node}})


@pytest.mark.slow
def test_two_processes_behind_nginx_serve_one_class(tiny_checkpoints_dir, tmp_path) -> None:
    env = dict(PLM_CHECKPOINTS_DIR=str(tiny_checkpoints_dir), PLM_DEFAULT_NEXT_SENTENCE="local:tiny-bert",
               PLM_DATA_DIR=str(tmp_path / "data"))
    with fresh_database("postgresql", tmp_path) as database, \
            running_app(tmp_path / "app-a.log", PLM_CLASSROOM_DB=database, **env) as (url_a, _), \
            running_app(tmp_path / "app-b.log", PLM_CLASSROOM_DB=database, **env) as (url_b, _), \
            nginx_in_front([url_a, url_b], tmp_path / "nginx") as url:
        nodes = nodes_per_upstream(url, 4)
        assert len(nodes) == 2, nodes  # the cookie spreads clients over both processes
        (first, first_nodes), (second, second_nodes) = sorted(nodes.items())
        teacher = pinned_client(url, first_nodes[0])
        room, _, _ = teacher.predict(api_name="/classroom_create")
        assert room["link"].startswith(url)  # the link names the proxy, not a process behind it
        item = teacher.predict("next-sentence", *PAIR, "", 0, 0, "", 0, api_name="/classroom_push")
        learners = [(node, pick) for nodes_, pick in ((first_nodes[1:], "IsNext"), (second_nodes[:3], "NotNext"))
                    for node in nodes_]

        def learn(index_node_pick: tuple[int, tuple[str, str]]) -> dict:
            index, (node, pick) = index_node_pick
            learner = pinned_client(url, node)
            learner.predict(room["code"], f"learner {index}", True, api_name="/classroom_join")
            learner.predict(pick, item["id"], api_name="/classroom_answer")
            return learner

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            clients = list(pool.map(learn, enumerate(learners)))
        assert teacher.predict(api_name="/classroom_status")[0]["answers"] == 6
        reveal = teacher.predict(api_name="/classroom_reveal")
        assert reveal["summary"]["counts"] == {"isnext": 3, "notnext": 3}
        assert reveal["model"]["model"] == "local:tiny-bert"
        on_second = clients[-1].predict(api_name="/classroom_poll")[0]  # a learner on the other process
        assert on_second["reveal"] == {"model": reveal["model"], "summary": reveal["summary"]}
        assert {e["nickname"] for e in reveal["summary"]["leaderboard"]} == {f"learner {i}" for i in range(6)}
    # every request of a pinned client went to its process, and both processes served queue requests
    routes = [r for r in routed_requests(tmp_path / "nginx") if r[0] != "-"]
    upstream_of = {node: upstream for upstream, nodes_ in nodes.items() for node in nodes_}
    assert all(upstream == upstream_of[node] for node, upstream, _, _ in routes if node in upstream_of)
    joined = {upstream for _, upstream, method, path in routes if method == "POST" and path.endswith("queue/join")}
    assert joined == {first, second}
