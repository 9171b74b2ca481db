"""The `access` record sink: one log line per finished call (`logging.access: true`).

Who called, for what, which model and checkpoint served it, what was decided, how it ended and how
long it took, with the trace id: what an operator greps for. Never the prompt or the reply (nor their
digests' inputs): the record of content is the span's, and only with `capture_content`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from proxy.flow import NAME_MAX_CHARS, Call, Decision, Outcome
from proxy.labels import format_labels
from proxy.logs import ACCESS

log: Final = logging.getLogger(ACCESS)
_INFO: Final = logging.INFO


def shown_model(model: str) -> str:
    """A model's name longer than NAME_MAX_CHARS as an access line shows it: its start and its length. A caller's
    name is as long as its body: whole, twice in a line, one of 16 MiB took the event loop 0.45 s to format and
    made a 32 MiB line, which log pipelines cut or drop."""
    return f"{model[:NAME_MAX_CHARS]}... ({len(model):,} characters)"


class AccessRecorder:
    """Formats only when the access logger is on. Off, as `logging.access: false` leaves it (its level above INFO,
    `proxy.logs`), that is one attribute read a call: `Logger.isEnabledFor` is Python, the one function of the
    standard library a call ran as bytecode on the event loop."""

    name = "access"
    durable = False

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        if log.level > _INFO or not log.isEnabledFor(_INFO):  # a level above INFO: isEnabledFor's answer is False
            return
        status = outcome.status  # set by the ingress for every answer, the proxy's own errors included
        upstream = decision.upstream
        model = call.model
        client = outcome.client
        if len(model) > NAME_MAX_CHARS:  # a caller's, as long as a body: its start and length (see `shown_model`)
            model = shown_model(model)
        fields = {
            "trace_id": call.trace.trace_id_hex,
            # the TCP peer's address (`Outcome.client`), as nginx's `$remote_addr`: empty with `logging.client_address:
            # false`, or on a socket with none
            "client": client[0] if client is not None else "",
            "caller": decision.caller or "anonymous",
            "purpose": decision.purpose or "",
            "model": model,
            "operation": call.operation,
            "checkpoint": outcome.checkpoint or "",
            "decision": decision.action,
            # how the call failed, as its span's `error.type`; else a refusal's code (an audit-deny's: what it would be)
            "code": outcome.error_type or decision.code or "",
            # why: the rule that decided a refusal (or an audit-deny) and the reason its caller was given, as its span
            # and edge hold them (bounded: a reason quotes what a caller sent by its first characters)
            "rule": decision.rule or "",
            "reason": decision.reason or "",
            "status": status if status is not None else 0,
            "upstream": upstream.name if upstream is not None and decision.forwards else "",
            "labels": format_labels(decision.labels),
            "duration_ms": round((outcome.ended_ns - outcome.started_ns) / 1e6, 3),
        }
        log.info("%s %s %s", decision.action, call.operation, model or "-", extra=fields)

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def metrics(self) -> Iterable[str]:
        return ()
