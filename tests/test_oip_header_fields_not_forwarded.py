"""An OIP call's header fields are read as the request's text because MLServer hands its model every field it gets
(`parameters.headers`). A field the proxy never forwards is not among them: hop-by-hop ones (`Proxy-Authorization`,
`Upgrade`, ...), and those a `Connection` field names. They were read all the same, so a call was labelled, and
refused, for text its model never saw; and a caller's `Proxy-Authorization` went with its text into captured content
(`telemetry.capture_content`), hence into its span. (A `Cookie` is forwarded, and read: `test_oip_cookie_and_labels_fields_read`.)"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.harness import ProxyHandle
from tests.test_oip_header_fields_reach_model import ADDRESS, BODY, CONFIG, echo_mlserver, echoed_headers

__all__ = ["echo_mlserver"]  # (the fixture, shared)


@pytest.mark.realserver
@pytest.mark.parametrize(
    "fields",
    [
        {"proxy-authorization": f"Basic {ADDRESS}"},
        {"connection": "x-note", "x-note": ADDRESS},  # hop-by-hop by the Connection field's word
        {"connection": "Upgrade", "upgrade": ADDRESS},
    ],
    ids=["proxy-authorization", "connection-listed", "upgrade"],
)
def test_a_field_the_proxy_never_forwards_labels_nothing(
    fields: dict[str, str], echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = make_proxy(CONFIG, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    reply = httpx.post(f"{proxy.url}/v2/models/echo/infer", content=json.dumps(BODY),
                       headers={**fields, "x-purpose": "ads"}, timeout=60)  # fmt: skip
    assert reply.status_code == 200, reply.text  # the zone over pii:email does not hold it: no address reached it
    reached = echoed_headers(reply)
    assert all(ADDRESS not in value for value in reached.values()), reached  # (what the model got beside its tensors)


def test_header_text_skips_hop_by_hop_fields() -> None:
    from proxy.ingress.http import _oip_header_text

    fields = [(b"Cookie", b"session=s3cr3t"), (b"Proxy-Authorization", b"Basic czNjcjN0"), (b"X-Note", b"kept"),
              (b"Connection", b"keep-alive, X-Hop"), (b"X-Hop", b"gone"), (b"Upgrade", b"h2c"), (b"TE", b"trailers"),
              (b"Proxy-Connection", b"keep-alive")]  # fmt: skip
    assert _oip_header_text(fields) == "cookie: session=s3cr3t\nx-note: kept"  # (the model is handed the cookie)
    assert _oip_header_text([(b"Connection", b"close")]) is None
