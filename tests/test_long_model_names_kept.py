"""A call's model name is the caller's, as long as its body. What the process keeps of the names calls ask for (the
decision memo, the checkpoint book's names to ask about and answered) held each whole: 24 calls naming models of a
megabyte kept ~72 MB, and the tables' bounds (4,096 decisions, 1,024 names an upstream does not list, ...) are of
entries, not bytes, so such calls grew the process by gigabytes. A name that long is now decided afresh, and not
asked about (no server's is: a checkpoint's recorded name is cut at `NAME_MAX_CHARS`)."""

from __future__ import annotations

import httpx

from proxy.flow import NAME_MAX_CHARS
from tests.configs import ONE_UPSTREAM

NAMES = 24
LONG = 1 << 20  # characters of each name


def kept_name_chars(proxy) -> int:  # type: ignore[no-untyped-def]
    """Characters of names longer than NAME_MAX_CHARS the process holds in its decision memo and checkpoint book."""
    process = proxy.process
    decisions = process.ref.current.policy.decisions.kept
    held = [key[4] for key in decisions]
    held += [decision.reason or "" for decision in decisions.values()]
    for known in process.book._known.values():
        held += [*known.waiting, *known.absent, *known.listed, *known.fresh]
    return sum(len(name) for name in held if len(name) > NAME_MAX_CHARS)


def test_long_model_names_are_not_kept(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    routed = make_proxy(ONE_UPSTREAM, UPSTREAM=upstream)  # every name forwarded: its checkpoint learnt
    unrouted = make_proxy(ONE_UPSTREAM.replace('model: "*"', "model: served"), UPSTREAM=upstream)  # 404 for others
    with httpx.Client(timeout=30) as client:
        for proxy, status in ((routed, 200), (unrouted, 404)):
            for n in range(NAMES):
                model = f"{n:04d}" + "m" * LONG
                body = b'{"model":"%s","messages":[{"role":"user","content":"hi"}]}' % model.encode()
                reply = client.post(f"{proxy.url}/v1/chat/completions", content=body,
                                    headers={"content-type": "application/json"})  # fmt: skip
                assert reply.status_code == status, reply.text[:200]
            kept = kept_name_chars(proxy)
            assert kept == 0, f"{kept >> 20} MiB of {NAMES} model names of {LONG >> 20} MiB kept"
    assert len(server.data_requests()) == NAMES  # the routed proxy's: forwarded as named
