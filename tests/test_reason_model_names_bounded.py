"""A refusal's reason names the model a call asked for (`no route for model '...'`, a route's purposes, a
checkpoint not known yet), and a model's name is the caller's, as long as its body (`limits.max_body_bytes`,
64 MiB). The edge kept that reason whole: each flush wrote it into the store's row and again into the chain
entry of the write, so a caller repeating a call naming a model of a megabyte grew the lineage store by a
megabyte a second, for as long as it went on (the chain is compacted only when an edge expires): 4 calls naming
models of a MiB left 4.2 MB of chain entries. A reason names such a model by its start and a digest, as a
checkpoint's recorded name is (`printable_name`); a model of at most 512 characters whole, as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx

from proxy.flow import NAME_MAX_CHARS
from proxy.policy import decide
from tests.configs import ONE_UPSTREAM_STORED
from tests.harness import LoopThread

LONG = 1 << 20  # characters of each name
CALLS = 4
# routes one model only: any other is refused 404 model_not_found, its reason naming the model asked for
ONE_ROUTE = ONE_UPSTREAM_STORED.replace('model: "*"', "model: served")


def test_a_refusal_naming_a_long_model_records_a_bounded_reason(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    _, upstream = vllm
    proxy = make_proxy(ONE_ROUTE, UPSTREAM=upstream)
    told = []
    with httpx.Client(timeout=30) as client:
        for n in range(CALLS):
            body = b'{"model":"%04d%s","messages":[{"role":"user","content":"hi"}]}' % (n, b"m" * LONG)
            reply = client.post(f"{proxy.url}/v1/chat/completions", content=body,
                                headers={"content-type": "application/json"})  # fmt: skip
            assert reply.status_code == 404, reply.text[:200]
            told.append(reply.json()["error"]["message"])
            loop_thread.run(proxy.process.runtime.sinks.flush())  # each call's count written, as a second apart
    db = sqlite3.connect(tmp_path / "lineage.db")
    try:
        reasons = [reason for (reason,) in db.execute("SELECT reason FROM edges")]
        chain = db.execute("SELECT sum(length(body)) FROM chain").fetchone()[0]
    finally:
        db.close()
    assert len(reasons) == 1, len(reasons)  # one flow: anonymous, assistant, unlabelled, refused by `routes`
    assert len(reasons[0]) < 2 * NAME_MAX_CHARS, f"a reason of {len(reasons[0]):,} characters recorded"
    assert reasons[0].startswith("no route for model '0003mmm") and "sha256:" in reasons[0], reasons[0][:200]
    assert chain < 64 * 1024, f"{chain:,} bytes of chain entries for {CALLS} calls"
    assert told[-1] == reasons[0]  # what the caller was told, as every edge keeps it


def test_reasons_name_a_short_model_whole(tmp_path: Path) -> None:
    from proxy.config import load
    from proxy.flow import Call, TraceContext
    from proxy.policy import Policy

    path = tmp_path / "proxy.yaml"
    path.write_text(ONE_ROUTE)
    config = load(path, env={"UPSTREAM": "http://127.0.0.1:1", "STORE": str(tmp_path / "l.db")})
    call = Call("openai", "chat", "gpt-x\n", TraceContext(1, 1))
    decision = decide(call, Policy.compile(config))
    assert decision.reason == "no route for model 'gpt-x\\n' (and no '*' fallback route)"
