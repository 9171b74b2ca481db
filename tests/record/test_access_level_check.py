"""The access sink's per-call check: a level above INFO answers "off" without `Logger.isEnabledFor` (Python, the
one standard-library function a call ran as bytecode on the event loop); every other case is left to it, so the
sink writes a line exactly when the access logger would take one at INFO."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.logs import ACCESS
from proxy.record.access import AccessRecorder


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access() -> Iterator[tuple[logging.Logger, Lines]]:
    logger = logging.getLogger(ACCESS)
    parent = logging.getLogger("lineage_proxy")
    saved = logger.level, logger.disabled, parent.level, logger.propagate, logging.root.manager.disable
    handler = Lines()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.disabled = saved[1]
        parent.setLevel(saved[2])
        logger.propagate = saved[3]
        logging.disable(saved[4])


def one_call(sink: AccessRecorder) -> None:
    call = Call("openai", "chat", "m", TraceContext(trace_id=1, span_id=2))
    sink.on_end(call, Decision(ALLOW, None, labels=frozenset({"team-a"})), Outcome(started_ns=1), frozenset())


@pytest.mark.parametrize(
    ("level", "parent", "disabled", "disable", "written"),
    [
        (logging.INFO, logging.NOTSET, False, logging.NOTSET, True),  # `access: true`
        (logging.CRITICAL + 1, logging.NOTSET, False, logging.NOTSET, False),  # `access: false` (the default)
        (logging.WARNING, logging.DEBUG, False, logging.NOTSET, False),  # its own level wins over its parent's
        (logging.NOTSET, logging.INFO, False, logging.NOTSET, True),  # no level of its own: its parent's
        (logging.NOTSET, logging.ERROR, False, logging.NOTSET, False),
        (logging.DEBUG, logging.NOTSET, True, logging.NOTSET, False),  # a logger disabled (logging.config)
        (logging.INFO, logging.NOTSET, False, logging.INFO, False),  # logging.disable(INFO)
    ],
)
def test_an_access_line_is_written_exactly_when_the_logger_takes_info(
    access: tuple[logging.Logger, Lines], level: int, parent: int, disabled: bool, disable: int, written: bool
) -> None:
    logger, handler = access
    logging.getLogger("lineage_proxy").setLevel(parent)
    logger.setLevel(level)
    logger.disabled = disabled
    logging.disable(disable)
    assert logger.isEnabledFor(logging.INFO) is written  # the case is what it says
    one_call(AccessRecorder())
    assert handler.lines == (["allow chat m"] if written else [])
