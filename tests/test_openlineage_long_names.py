"""The names OpenLineage events give jobs and datasets were as long as what they name: the input dataset is named
after the call's label set (up to 64 labels of 128 characters, ~8 KiB), the job after the checkpoint (up to 512
characters). Older Marquez keeps both in VARCHAR(255) and answers 500 to a longer one, every time: such a flow never
reached it. A name past NAME_MAX characters is its start and a digest of the whole, so that two label sets stay two
datasets; the labels themselves are whole in the dataset's `lineageProxy_labels` facet."""

from __future__ import annotations

from typing import Any

import httpx

from proxy.record.openlineage import NAME_MAX
from tests.harness import LoopThread
from tests.record.test_openlineage import check_run_event, sink
from tests.servers.vllm_like import SERVED
from tests.test_openlineage_poison_event import NarrowMarquez, narrow  # noqa: F401 (a fixture)

CHECKPOINT = "org/" + "c" * 300  # a pinned checkpoint's name past 255 characters
CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: llm, url: "${UPSTREAM}", checkpoint: "%s"}]
routes: [{model: "*", upstream: llm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "${STORE}", openlineage: {transport: {type: http, url: "${MARQUEZ}", endpoint: api/v1/lineage,
  retry: {total: 0}}, snapshot_interval_s: 600}}
"""
LONG = [f"l{n:02d}-" + "x" * 124 for n in range(60)]  # labels as long as a label is, as many as a header holds
OTHER = [*LONG[:-1], "l59-" + "y" * 124]  # the same but for the last label's end


def test_long_job_and_dataset_names_are_cut_to_a_start_and_a_digest_and_reach_the_backend(
    vllm: Any,
    narrow: tuple[NarrowMarquez, str],  # noqa: F811
    make_proxy: Any,
    loop_thread: LoopThread,
) -> None:
    _, upstream = vllm
    backend, url = narrow
    proxy = make_proxy(CONFIG % CHECKPOINT, UPSTREAM=upstream, MARQUEZ=url)
    for labels in (LONG, OTHER):
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"x-data-labels": ",".join(labels)},
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)  # fmt: skip
        assert reply.status_code == 200
        assert reply.headers["x-lineage-checkpoint"] == CHECKPOINT
    loop_thread.run(sink(proxy).flush())
    events = backend.wait_for(4)  # each flow's first event and its count, none refused
    for event in events:
        check_run_event(event)
        names = [event["job"]["name"]] + [d["name"] for d in event["inputs"] + event["outputs"]]
        assert all(len(name) <= NAME_MAX for name in names), names
        assert event["job"]["name"].startswith(CHECKPOINT[:200]) and "...sha256:" in event["job"]["name"]
    inputs = {e["inputs"][0]["name"]: e["inputs"][0]["facets"]["lineageProxy_labels"]["labels"] for e in events}
    assert len(inputs) == 2  # two label sets, two datasets, each named alike in its two events
    for name, labels in inputs.items():
        assert name.startswith(LONG[0] + "," + LONG[1][:50]) and "...sha256:" in name
        assert labels in (LONG, OTHER)  # whole
    assert sorted(map(tuple, inputs.values())) == sorted([tuple(LONG), tuple(OTHER)])
