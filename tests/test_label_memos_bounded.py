"""What a process remembers of the label sets calls send: the sorted and wire forms (`proxy/labels.py`) and the
unapproved flows it has logged (`Runtime.flagged`). A call may send 64 labels of 128 characters, each call a new set:
4,096 such calls kept ~90 MB of wire forms, and once 4,096 unapproved flows were logged no other was, ever (the
WARNING the README promises once per flow went silent for every caller)."""

from __future__ import annotations

import logging

import httpx

from proxy import labels as labels_module
from proxy.flow import Call
from proxy.labels import parse_labels
from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

BASELINE = """
version: 1
flows:
  - {caller: anonymous, purpose: assistant, labels: [public]}
"""


def wide(n: int) -> str:
    """An `x-data-labels` of 64 labels of 121 characters, another set for each `n`."""
    return ",".join(f"{n:05d}{i:02d}" + "x" * 114 for i in range(64))


def test_wide_label_sets_are_not_remembered(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM, UPSTREAM=upstream)
    labels_module._SORTED.clear()  # memos: what the calls below leave in them is what is measured
    labels_module._FORMATTED.clear()
    with httpx.Client() as client:
        for n in range(40):
            body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
            reply = client.post(f"{proxy.url}/v1/chat/completions", json=body, headers={"x-data-labels": wide(n)})
            assert reply.status_code == 200  # its x-data-labels is cut (`reply_labels`): the record has every label
            assert reply.headers["x-data-labels"].endswith(" more (cut: the lineage record has them all)")
    kept = sum(len(form) for form in labels_module._FORMATTED.values())
    kept += sum(len(label) for order in labels_module._SORTED.values() for label in order)
    assert kept < 40 * 1024, f"{kept} characters of 40 label sets of 7,807 characters kept"


def test_unapproved_flows_are_still_logged_past_the_flows_remembered(vllm, make_proxy, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(BASELINE)
    proxy = make_proxy(ONE_UPSTREAM + f"lineage:\n  baseline: {baseline}\n", UPSTREAM=upstream)
    pipeline = proxy.process.ref.current
    caplog.set_level(logging.WARNING, logger="lineage_proxy.baseline")
    for n in range(4096):  # a caller's labels new on every call, decided as the ingress decides them
        call = Call("openai", "chat", SERVED, pipeline.trace({}.get), purpose="assistant", labels=parse_labels(f"l{n}"))
        assert pipeline.decide(call).approved is False
    caplog.clear()
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={"x-data-labels": "health"})
    assert reply.status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("labels health" in line for line in warnings), warnings  # another caller's new flow: logged
