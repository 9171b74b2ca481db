"""The `access` record sink: one log line per finished call (`logging.access: true`).

Who called, for what, which model and checkpoint served it, what was decided, how it ended and how
long it took, with the trace id: what an operator greps for. Never the prompt or the reply (nor their
digests' inputs): the record of content is the span's, and only with `capture_content`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from proxy.flow import Call, Decision, Outcome
from proxy.labels import format_labels
from proxy.logs import ACCESS

log = logging.getLogger(ACCESS)


class AccessRecorder:
    """Formats only when the access logger is on (the check is one attribute read per call)."""

    name = "access"
    durable = False

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        status = outcome.status  # set by the ingress for every answer, the proxy's own errors included
        upstream = decision.upstream
        fields = {
            "trace_id": call.trace.trace_id_hex,
            "caller": decision.caller or "anonymous",
            "purpose": decision.purpose or "",
            "model": call.model,
            "operation": call.operation,
            "checkpoint": outcome.checkpoint or "",
            "decision": decision.action,
            "code": decision.code or outcome.error_type or "",
            "status": status if status is not None else 0,
            "upstream": upstream.name if upstream is not None and decision.forwards else "",
            "labels": format_labels(decision.labels),
            "duration_ms": round((outcome.ended_ns - outcome.started_ns) / 1e6, 3),
        }
        log.info("%s %s %s", decision.action, call.operation, call.model or "-", extra=fields)

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def metrics(self) -> Iterable[str]:
        return ()
