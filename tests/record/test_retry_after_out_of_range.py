"""A Retry-After date whose day, year, time or zone is out of any range (`Mon, 01 Jan 99999999999999999999 ...`) is
no delay, as any other it cannot read: email.utils raises OverflowError for it, where the export ended, its batch not
retried and lost."""

from __future__ import annotations

import pytest

from proxy.record.export import retry_after
from tests.record.test_export import sink_for, span
from tests.servers.otlp_http_receiver import OtlpHttpReceiver

OUT_OF_RANGE = [
    "Mon, 99999999999999999999 Jan 2025 00:00:00 GMT",
    "Mon, 01 Jan 99999999999999999999 00:00:00 GMT",
    "Mon, 01 Jan 2025 99999999999999999999:00:00 GMT",
    "Mon, 01 Jan 2025 00:00:00 +99999999999999999999",
]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_an_out_of_range_retry_after_date_is_no_delay(value: str) -> None:
    assert retry_after(value) is None


def test_a_refusal_with_an_out_of_range_retry_after_is_retried() -> None:
    receiver = OtlpHttpReceiver(refusals=[(503, OUT_OF_RANGE[1])])
    receiver.start()
    try:
        sink_for(receiver).send([span(1)])
        assert receiver.statuses == [503, 200]
        assert [s.name for s in receiver.spans] == ["s1"]
    finally:
        receiver.stop()
