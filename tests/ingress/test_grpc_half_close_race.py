"""The client's end of a stream's messages, passed on as the upstream's call ends (the upstream answered, or the
deadline passed, at that instant): grpc's core refuses the half-close, and grpc.aio raises its own ExecuteBatchError,
no AioRpcError. It went on to the handler as a defect of the proxy's: logged as an internal error with its traceback,
recorded `internal_error`, answered INTERNAL in place of the upstream's status (seen at client deadlines of a few
ms, 1-3 streams in 300). The upstream's status is the answer, which the relay reads."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
from grpc._cython import cygrpc

from tests.harness import LoopThread, dead_port

CONFIG = """
listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:0}}
upstreams: [{{name: triton, grpc: "127.0.0.1:{port}", protocol: oip, checkpoint: held@1}}]
routes: [{{model: "*", upstream: triton}}]
policy: {{anonymous: allow, default_purpose: assistant}}
"""


class _Client:
    """The client's side of a stream: it has ended its messages."""

    async def read(self) -> object:
        return grpc.aio.EOF


class _EndedUpstream:
    """The upstream's call, ended in grpc's core as the proxy half-closes it (not yet `done` in Python)."""

    def done(self) -> bool:
        return False

    def cancel(self) -> bool:
        return False

    async def done_writing(self) -> None:
        raise cygrpc.ExecuteBatchError('Failed "execute_batch": (SendCloseFromClientOperation,)')


def test_a_half_close_that_meets_the_upstreams_end_leaves_the_answer_to_its_status(
    make_proxy: Any, loop_thread: LoopThread
) -> None:
    ingress = make_proxy(CONFIG.format(port=dead_port()), wait="none").process._grpc  # the serving proxy's own

    async def pump() -> None:
        await ingress._pump(_EndedUpstream(), _Client(), None, None, None, [], [0], asyncio.current_task())

    loop_thread.run(pump())  # returns: the relay reads the call's status
