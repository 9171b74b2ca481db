"""grpc reads a request message whole before the proxy sees it, and while the proxy's handler asks for one it opens the
stream's window to the size the message's length prefix announces: limits.grpc_request_timeout_s bounded how long such
a message could be held, not how much. 512 calls (limits.grpc_max_calls) each sending all but the last byte of an
80 MiB message could hold ~40 GiB in a `serve` process for a minute (measured: 48 calls of 60 MiB took it from 65 MiB to
2.9 GiB; now 863 MiB). Now the messages asked of grpc before their calls are decided (a unary call's, a stream's first) are each
counted at the most grpc takes, at most limits.grpc_arriving_max_bytes at once: a further call waits its turn holding
only its window, as grpc opens no window for a message not asked for; and a call whose message is late having waited
half of grpc_request_timeout_s or more for that turn is refused `overloaded`, recorded, naming the limit."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from proxy.config import Limits, parse
from proxy.errors import ConfigError
from proxy.logs import ACCESS
from tests.harness import LoopThread, ServeProcess
from tests.held import until
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc_health_checked import CHECK, SERVING
from tests.ingress.test_grpc_too_large import CONFIG as TOO_LARGE_CONFIG
from tests.ingress.test_grpc_too_large import LOAD, SERVICE, Upstream
from tests.servers.h2_hostile import HostileClient
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_reload import reload

INFER, STREAM_INFER = SERVICE + "ModelInfer", SERVICE + "ModelStreamInfer"
MIB = 1 << 20
EACH = MIB + MIB // 4  # grpc's receive limit with max_body_bytes 1 MiB: what each read asked is counted
# two reads asked at once; a window of 64 KiB a call (bodies_max_bytes / grpc_max_calls)
LIMITS = f"max_body_bytes: {MIB}, bodies_max_bytes: {4 * MIB}, grpc_max_calls: 64"
CONFIG = TOO_LARGE_CONFIG.replace(
    "limits: {max_body_bytes: 4096}", f"limits: {{{LIMITS}, grpc_arriving_max_bytes: {2 * EACH}}}"
)


def _request(size: int) -> bytes:
    """A ModelInferRequest of about `size` bytes (its tensor's raw contents)."""
    request = service_pb2.ModelInferRequest(model_name="simple")
    request.inputs.add(name="A", datatype="INT32", shape=[size // 4])
    request.raw_input_contents.append(bytes(size // 4 * 4))
    data: bytes = request.SerializeToString()
    return data


MESSAGE = _request(512 * 1024)  # far over a call's window


def test_requests_past_the_room_wait_their_turn_holding_their_window_only(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Room for two reads; four ModelInfer calls of 512 KiB messages, each held back at its last byte: two
    are read, the other two get their 64 KiB window and wait; once the first two end their messages, every call is
    served, each in its turn."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    upstream = Upstream()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        ingress = proxy.process._grpc
        assert ingress is not None
        hostile = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            traces = [traced(n, 0xA223_0000) for n in range(4)]
            calls = [hostile.open(INFER, ("traceparent", parent.encode())) for _, parent in traces]
            first, later = calls[:2], calls[2:]
            for call in first:
                hostile.push(call, MESSAGE)
            assert hostile.wait(lambda: all(hostile.pushed(c, MESSAGE) for c in first), 10.0), hostile.sent
            for call in later:
                hostile.push(call, MESSAGE)
            assert hostile.wait(lambda: all(hostile.stalled(c) or hostile.pushed(c, MESSAGE) for c in later), 10.0)
            assert until(lambda: len(ingress.room.waiting) == 2), ingress.room.waiting  # (read off the loop: a length)
            # grpc gave the later two their window and no more, as no read was asked for them (before, each read its
            # message whole, as the first two did)
            assert not any(hostile.pushed(c, MESSAGE) for c in later), hostile.sent
            assert all(hostile.sent[c] == hostile.initial_window < len(MESSAGE) for c in later), hostile.sent
            assert loop_thread.run(_taken(ingress)) == 2 * EACH
            assert f"lineage_proxy_grpc_request_messages_arriving_bytes {2 * EACH}" in proxy.process.metrics_text()
            # the first two end their messages: they are served, and the later two have their turn
            for call in first:
                hostile.finish(call, MESSAGE)
            assert hostile.wait(lambda: all(hostile.pushed(c, MESSAGE) for c in later), 10.0), hostile.sent
            for call in later:
                hostile.finish(call, MESSAGE)
            assert hostile.wait_ended(calls, 10.0), f"ended: {hostile.ended} of {calls}"
            for trace_id, _ in traces:
                span, line = recorded(otlp, caplog, trace_id)
                assert line.status == 0 and "error.type" not in span.attributes, (
                    span.name,
                    span.status_message,
                    span.attributes,
                )
            assert upstream.messages == 4
            assert loop_thread.run(_taken(ingress)) == 0
        finally:
            hostile.close()


class _ReadFails:
    """A servicer context whose read fails as grpc's does for a call it has ended (a stop): "RPC already finished"."""

    async def read(self) -> Any:
        raise RuntimeError("RPC already finished")


async def _read_failing(ingress: Any) -> tuple[int, int, int]:
    """Room taken and calls arriving before, then after, one read that fails; and the room taken while it ran."""
    before = ingress.room.taken
    with pytest.raises(RuntimeError, match="RPC already finished"):
        await ingress._request(_ReadFails(), ingress.room)
    return before, ingress.room.taken, len(ingress._arriving)


def test_a_read_grpc_fails_gives_its_room_back(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> None:
    """A read that fails with anything but a cancel (grpc's "RPC already finished" as the server stops, a message it
    cannot decode) gave back no room: each such call kept a read's worth for good, until every later call waited and
    was refused `overloaded`."""
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Upstream()) as proxy:
        ingress = proxy.process._grpc
        assert ingress is not None
        for _ in range(3):  # three failures: with room for two reads, a leak would have filled it
            assert loop_thread.run(_read_failing(ingress)) == (0, 0, 0)


async def _taken(ingress: Any) -> int:
    """What the listener's reads asked are counted (read on its loop)."""
    taken: int = ingress.room.taken
    return taken


def test_a_call_that_waited_for_room_past_the_timeout_is_refused_naming_the_limit(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """One read at a time, and a second: two calls that never finish their messages. The first is late (its client's:
    DEADLINE_EXCEEDED, `invalid_request`); the second waited for room the whole time the first held it, and is refused
    `overloaded`, recorded with the limit named, whatever came of it once it had room."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    config = CONFIG.replace(f"grpc_arriving_max_bytes: {2 * EACH}", f"grpc_arriving_max_bytes: {EACH}, "
                            "grpc_request_timeout_s: 1")  # fmt: skip
    upstream = Upstream()
    with proxied(loop_thread, otlp, make_proxy, config, upstream) as proxy:
        hostile = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            (first_id, first_parent), (second_id, second_parent) = traced(0, 0xA224_0000), traced(1, 0xA224_0000)
            first = hostile.open(INFER, ("traceparent", first_parent.encode()))
            hostile.push(first, MESSAGE)
            assert hostile.wait(lambda: hostile.pushed(first, MESSAGE), 10.0), hostile.sent
            second = hostile.open(STREAM_INFER, ("traceparent", second_parent.encode()))
            hostile.push(second, MESSAGE)
            assert hostile.wait_ended([first, second], 15.0), f"ended: {hostile.ended}"
            span, line = recorded(otlp, caplog, first_id)
            assert span.attributes["error.type"] == "invalid_request"
            assert line.status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
            span, line = recorded(otlp, caplog, second_id)
            assert span.attributes["error.type"] == "overloaded"
            assert line.status == grpc.StatusCode.UNAVAILABLE.value[0]
            assert "limits.grpc_arriving_max_bytes" in span.status_message, span.status_message
            assert upstream.messages == 0
        finally:
            hostile.close()


@pytest.mark.parametrize("method", [STREAM_INFER, LOAD])
def test_a_streams_later_messages_are_not_counted_and_its_upstreams_timeout_s_lets_them_go(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    """Room for one read; four ModelStreamInfer streams each send a small first message (a passthrough call, decided on
    its metadata, none), then all but the last byte of a 512 KiB one. Those are read whole-but-one beside each other,
    none counted: a stream between messages has a read asked, which grpc cannot tell apart from one whose message is
    held back, so counting them would bound how many streams may be open (README, "A stream's later messages"). What
    bounds how long they are held is the upstream's `timeout_s` (its silence since the stream's last whole message):
    each call ends `upstream_timeout`, recorded, and a call after them is served."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    config = CONFIG.replace(f"grpc_arriving_max_bytes: {2 * EACH}", f"grpc_arriving_max_bytes: {EACH}").replace(
        "checkpoint: held@1", "checkpoint: held@1\n    timeout_s: 5"
    )
    upstream = Upstream()
    first = _request(64)
    framed = b"\x00" + len(first).to_bytes(4, "big") + first if method == STREAM_INFER else b""
    decided = 4 if framed else 0  # the messages that reach the upstream: the streams' first
    with proxied(loop_thread, otlp, make_proxy, config, upstream) as proxy:
        ingress = proxy.process._grpc
        assert ingress is not None
        hostile = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            traces = [traced(n, 0xA225_0000) for n in range(4)]
            streams = [hostile.open(method, ("traceparent", parent.encode())) for _, parent in traces]
            for stream in streams:
                if framed:
                    hostile.data(stream, framed)
            assert until(lambda: upstream.messages == decided), upstream.messages  # each stream decided and relayed
            for stream in streams:
                hostile.push(stream, MESSAGE)
            whole_but_one = len(framed) + len(MESSAGE) + 5 - 1
            assert hostile.wait(lambda: all(hostile.sent[s] == whole_but_one for s in streams), 10.0), hostile.sent
            assert len(MESSAGE) > hostile.initial_window  # (grpc opened each window to its message, read ahead)
            assert loop_thread.run(_taken(ingress)) == 0 and not ingress.room.waiting
            assert "lineage_proxy_grpc_request_messages_arriving_bytes 0" in proxy.process.metrics_text()
            assert hostile.wait_ended(streams, 30.0), f"ended: {hostile.ended}"
            for trace_id, _ in traces:
                span, line = recorded(otlp, caplog, trace_id)
                assert span.attributes["error.type"] == "upstream_timeout", (span.status_message, span.attributes)
                assert line.status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
            assert upstream.messages == decided  # no held-back message reached it
            served = hostile.open(INFER)
            hostile.push(served, MESSAGE)
            assert hostile.wait(lambda: hostile.pushed(served, MESSAGE), 10.0), hostile.sent
            hostile.finish(served, MESSAGE)
            assert hostile.wait_ended([served], 10.0), hostile.ended
            assert upstream.messages == decided + 1
        finally:
            hostile.close()


class _HealthyUpstream(Upstream):
    """The upstream, answering grpc.health.v1's Check too (SERVING)."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == CHECK:
            return grpc.unary_unary_rpc_method_handler(self._check)
        return super().service(details)

    async def _check(self, request: bytes, context: Any) -> bytes:
        return SERVING


def test_a_health_check_is_answered_while_clients_hold_all_the_room(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    """Room for one read, held by a call that never finishes its message: a ModelInfer waits its turn, a health check
    (a Kubernetes probe's) is answered, from room of its own."""
    config = CONFIG.replace(f"grpc_arriving_max_bytes: {2 * EACH}", f"grpc_arriving_max_bytes: {EACH}")
    with (
        proxied(loop_thread, otlp, make_proxy, config, _HealthyUpstream()) as proxy,
        grpc.insecure_channel(proxy.grpc) as channel,
    ):
        hostile = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            held = hostile.open(INFER)
            hostile.push(held, MESSAGE)
            assert hostile.wait(lambda: hostile.pushed(held, MESSAGE), 10.0), hostile.sent
            waiting = hostile.open(INFER)
            hostile.push(waiting, MESSAGE)
            assert hostile.wait(lambda: hostile.stalled(waiting), 10.0), hostile.sent  # (its message not asked for)
            assert channel.unary_unary(CHECK)(b"", timeout=10) == SERVING
            assert not hostile.pushed(waiting, MESSAGE) and waiting not in hostile.ended
            hostile.finish(held, MESSAGE)
            assert hostile.wait(lambda: hostile.pushed(waiting, MESSAGE), 10.0), hostile.sent  # its turn
            hostile.finish(waiting, MESSAGE)
            assert hostile.wait_ended([held, waiting], 10.0), hostile.ended
        finally:
            hostile.close()


def test_a_reload_that_makes_room_gives_calls_waiting_their_turn(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, tmp_path: Path
) -> None:
    """Room for one read, held; a second call waits. A reload to room for two gives it its turn (within a second: no new
    server, the listener's sweep takes the new limit)."""
    one = CONFIG.replace(f"grpc_arriving_max_bytes: {2 * EACH}", f"grpc_arriving_max_bytes: {EACH}")
    with proxied(loop_thread, otlp, make_proxy, one, Upstream()) as proxy:
        ingress = proxy.process._grpc
        hostile = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            held = hostile.open(INFER)
            hostile.push(held, MESSAGE)
            assert hostile.wait(lambda: hostile.pushed(held, MESSAGE), 10.0), hostile.sent
            waiting = hostile.open(INFER)
            hostile.push(waiting, MESSAGE)
            assert until(lambda: len(ingress.room.waiting) == 1), ingress.room.waiting
            assert hostile.wait(lambda: hostile.stalled(waiting), 10.0), hostile.sent  # its window, all grpc lets in
            config = proxy.config
            path = tmp_path / "reloaded.yaml"
            path.write_text(
                CONFIG.replace("${UPSTREAM}", str(config.upstreams[0].grpc))
                .replace("${OTLP}", str(config.telemetry.endpoint))
                .replace("${STORE}", str(config.lineage.store))
            )
            assert reload(proxy, loop_thread, path)
            assert hostile.wait(lambda: hostile.pushed(waiting, MESSAGE), 10.0), hostile.sent  # its turn
            for call in (held, waiting):
                hostile.finish(call, MESSAGE)
            assert hostile.wait_ended([held, waiting], 10.0), hostile.ended
        finally:
            hostile.close()


def _settled(client: HostileClient, calls: list[int], message: bytes) -> bool:
    pushed = sum(client.pushed(c, message) for c in calls)
    return pushed >= 2 and all(client.stalled(c) or client.pushed(c, message) for c in calls)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_what_unfinished_messages_hold_in_a_serve_process_is_bounded(tmp_path: Path) -> None:
    """A `serve` process with messages of up to 16 MiB (each read counted 20 MiB), room for two reads: 16 calls each
    sending all but the last byte of a 16 MiB message grow it by two messages and 16 windows (2 MiB each), not by 16
    messages (before: 256 MiB)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "c.yaml"
    config.write_text(
        f"listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:{port}}}\n"
        'upstreams: [{name: t, grpc: "127.0.0.1:1", protocol: oip, checkpoint: ck}]\n'
        'routes: [{model: "*", upstream: t}]\n'
        "policy: {anonymous: allow, default_purpose: assistant}\n"
        "lineage: {store: null}\n"
        f"limits: {{max_body_bytes: {16 * MIB}, grpc_arriving_max_bytes: {40 * MIB}}}\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    # glibc's mmap threshold pinned at 1 MiB, as in test_grpc_stream_messages_bounded.py: freed messages go back to the
    # system at once, so RSS counts what the process holds, not what the dynamic threshold kept in its arenas.
    serve = ServeProcess(str(config), env={"PYTHONPATH": root, "MALLOC_MMAP_THRESHOLD_": str(MIB)})
    client = HostileClient(port)
    try:
        before = _rss_mib(serve.proc.pid)
        message = bytes(16 * MIB)
        calls = [client.open(INFER) for _ in range(16)]
        for call in calls:
            client.push(call, message)
        # two calls have sent their message, and every other all grpc let it: its window (a call whose message is
        # read stalls too, a moment, between the windows grpc grants it as it reads)
        assert client.wait(lambda: _settled(client, calls, message), 60.0), client.sent
        assert sum(client.pushed(c, message) for c in calls) == 2, client.sent
        grown = _rss_mib(serve.proc.pid) - before
        assert grown < 2 * 16 + 16 * 2 + 32, (before, grown)  # two messages, 16 windows, and a margin
    finally:
        client.close()
        serve.stop()


def test_grpc_arriving_max_bytes_is_a_positive_whole_number(tmp_path: Path) -> None:
    text = (
        "listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}\nupstreams: [{name: t, grpc: 127.0.0.1:1, protocol: oip}]\n"
        "routes: [{model: m, upstream: t}]\n"
    )
    assert Limits().grpc_arriving_max_bytes == 1 << 30
    assert (
        parse(text + "limits: {grpc_arriving_max_bytes: 4096}\n", source="t.yaml").limits.grpc_arriving_max_bytes
        == 4096
    )
    for bad in ("0", "-1", "1.5", "lots"):
        with pytest.raises(ConfigError, match=r"limits\.grpc_arriving_max_bytes"):
            parse(text + f"limits: {{grpc_arriving_max_bytes: {bad}}}\n", source="t.yaml")
    config = tmp_path / "c.yaml"
    config.write_text(text + "limits: {grpc_arriving_max_bytes: 0}\n")
    root = str(Path(__file__).resolve().parents[2])
    checked = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config)], capture_output=True,
                             text=True, cwd=root, env={**os.environ, "PYTHONPATH": root}, timeout=60)  # fmt: skip
    assert checked.returncode == 1
    assert "limits.grpc_arriving_max_bytes: must be >= 1, got 0" in checked.stdout + checked.stderr
