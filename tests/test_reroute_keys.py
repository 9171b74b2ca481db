"""A caller's key, passed on to its route's upstream when no caller has a key (that upstream's own auth), never
reaches the upstream a zone's `reroute:` sends the call to instead, over HTTP (`Authorization`) or gRPC
(`authorization` and `authorization-bin`); a call that stays on its route still passes it on."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc

from tests.servers.vllm_like import SERVED
from tests.test_caller_keys import SERVICE, Recording, _infer
from tests.test_enforcement import MESSAGES, sdk, two  # noqa: F401 (a fixture)

CONFIG = f"""
listen:
  http: 127.0.0.1:0
upstreams:
  - name: us
    url: ${{US}}
    region: us
  - name: eu
    url: ${{EU}}
    region: eu
routes:
  - model: {SERVED}
    upstream: us
zones:
  - name: interaction-data
    labels: [user-interaction]
    allow_purposes: [assistant]
    regions: [eu]
    on_deny: reroute:eu
  - name: notes
    labels: [notes]
    allow_purposes: [assistant]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage:
  store: ${{STORE}}
"""


def test_the_routed_upstreams_key_never_reaches_the_reroute_target(two: Any) -> None:  # noqa: F811
    us, eu, make = two
    proxy = make(config=CONFIG)
    stays = sdk(proxy, "the-us-key").chat.completions.with_raw_response.create(model=SERVED, messages=MESSAGES)
    assert stays.http_response.headers["x-lineage-decision"] == "allow"
    assert us.data_requests()[-1].headers["Authorization"] == "Bearer the-us-key"  # its own auth, passed on
    client = sdk(proxy, "the-us-key", **{"x-data-labels": "user-interaction"})
    moved = client.chat.completions.with_raw_response.create(model=SERVED, messages=MESSAGES)
    assert moved.http_response.headers["x-lineage-decision"] == "reroute"
    assert moved.http_response.headers["x-lineage-upstream"] == "eu"
    assert len(eu.data_requests()) == 1 and len(us.data_requests()) == 1
    assert "Authorization" not in eu.data_requests()[0].headers


def test_nor_does_it_when_audit_mode_forwards_a_refused_call_to_the_reroute_target(two: Any) -> None:  # noqa: F811
    us, eu, make = two
    proxy = make(config=CONFIG.replace("anonymous: allow", "mode: audit, anonymous: allow"))
    client = sdk(proxy, "the-us-key", **{"x-data-labels": "user-interaction", "x-purpose": "ads"})
    moved = client.chat.completions.with_raw_response.create(model=SERVED, messages=MESSAGES)
    assert moved.http_response.headers["x-lineage-decision"] == "audit-deny"
    assert moved.http_response.headers["x-lineage-upstream"] == "eu"
    assert len(eu.data_requests()) == 1 and us.data_requests() == []
    assert "Authorization" not in eu.data_requests()[0].headers
    # a refused call audit mode lets go on its route: its own auth, passed on
    client = sdk(proxy, "the-us-key", **{"x-data-labels": "notes", "x-purpose": "ads"})
    stays = client.chat.completions.with_raw_response.create(model=SERVED, messages=MESSAGES)
    assert stays.http_response.headers["x-lineage-decision"] == "audit-deny"
    assert stays.http_response.headers["x-lineage-upstream"] == "us"
    assert us.data_requests()[-1].headers["Authorization"] == "Bearer the-us-key"


GRPC_CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - name: us
    grpc: ${US}
    protocol: oip
    region: us
    checkpoint: held@1
  - name: eu
    grpc: ${EU}
    protocol: oip
    region: eu
    checkpoint: held@1
routes:
  - model: "*"
    upstream: us
zones:
  - name: interaction-data
    labels: [user-interaction]
    allow_purposes: [assistant]
    regions: [eu]
    on_deny: reroute:eu
policy: {anonymous: allow, default_purpose: assistant}
lineage:
  store: ${STORE}
"""


def test_a_grpc_calls_key_never_reaches_the_reroute_target(make_proxy: Any) -> None:
    upstreams = [Recording(), Recording()]
    servers = []
    ports = []
    for upstream in upstreams:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((upstream,))
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        servers.append(server)
    try:
        proxy = make_proxy(GRPC_CONFIG, wait="none", US=f"127.0.0.1:{ports[0]}", EU=f"127.0.0.1:{ports[1]}")
        key = (("authorization", "Bearer the-us-key"), ("authorization-bin", b"the-us-key"))
        infer = None
        with grpc.insecure_channel(proxy.grpc) as channel:
            infer = channel.unary_unary(SERVICE + "ModelInfer")
            _, call = infer.with_call(_infer(), metadata=key, timeout=10)
            assert dict(call.trailing_metadata())["x-lineage-decision"] == "allow"
            labelled = (*key, ("x-data-labels", "user-interaction"))
            _, call = infer.with_call(_infer(), metadata=labelled, timeout=10)
            assert dict(call.trailing_metadata())["x-lineage-decision"] == "reroute"
        us, eu = ([seen for seen in one.metadata if "traceparent" in seen] for one in upstreams)  # not the probes
        assert len(us) == 1 and us[0]["authorization"] == "Bearer the-us-key"  # its own auth, passed on
        assert len(eu) == 1 and eu[0]["x-data-labels"] == "user-interaction"
        assert not {"authorization", "authorization-bin"} & set(eu[0]), eu[0]
    finally:
        for server in servers:
            server.stop(0)
