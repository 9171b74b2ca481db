"""`Inference-Header-Content-Length` read as Triton reads it. Triton takes the field with `atoi`: ASCII digits,
up to the first other character; Python's `int` also reads other scripts' digits, `_` between digits and
Unicode spaces. A value the two read apart split one body two ways: `0_N` is N to `int` (the JSON, then a
UINT8 tensor's bytes, checked) and 0 to Triton, whose raw binary request makes the whole body its model's one
input, the bytes of that "UINT8 tensor" included, unread."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import orjson
import pytest
from aiohttp import web

from proxy.errors import InvalidRequest
from proxy.protocols.oip import HEADER_LENGTH, read_rest_request
from tests.harness import serving

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: triton
    url: ${OIP}
    protocol: oip
    checkpoint: held@1
routes:
  - model: "*"
    upstream: triton
zones:
  - name: contact
    labels: [pii:email]
    allow_purposes: [assistant]
policy:
  anonymous: allow
detectors: [email]
lineage:
  store: ${STORE}
"""

HIDDEN = b"write to ana@example.org"
HEAD = orjson.dumps({"inputs": [
    {"name": "TEXT", "datatype": "UINT8", "shape": [len(HIDDEN)], "parameters": {"binary_data_size": len(HIDDEN)}},
]})  # fmt: skip
BODY = HEAD + HIDDEN


def _atoi(value: bytes) -> int:
    """C's `atoi`, as Triton's HTTP server applies it to the field: white space skipped, a sign, ASCII digits."""
    text = value.lstrip(b" \t\n\v\f\r")
    sign = -1 if text[:1] == b"-" else 1
    text = text[1:] if text[:1] in (b"+", b"-") else text
    digits = len(text) - len(text.lstrip(b"0123456789"))
    return sign * int(text[:digits] or b"0")


# each is len(HEAD) to Python's `int`, 0 to `atoi`
FORMS = [
    f"0_{len(HEAD)}".encode(),
    f"\u00a0{len(HEAD)}".encode(),  # a no-break space first
    "".join(chr(0xFF10 + int(d)) for d in str(len(HEAD))).encode(),  # fullwidth digits
    "".join(chr(0x0660 + int(d)) for d in str(len(HEAD))).encode(),  # Arabic-Indic digits
]


@pytest.mark.parametrize("form", FORMS)
def test_a_length_triton_reads_otherwise_is_refused(form: bytes) -> None:
    assert _atoi(form) == 0  # what Triton reads
    with pytest.raises(InvalidRequest, match=HEADER_LENGTH):
        read_rest_request("m", None, BODY, form.decode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("form", ["0", " 0", "00"])
def test_a_raw_binary_request_is_refused_naming_it(form: str) -> None:
    with pytest.raises(InvalidRequest, match="raw binary request"):
        read_rest_request("m", None, BODY, form)


def test_ascii_digits_still_split_the_body() -> None:
    for form in (str(len(HEAD)), f" {len(HEAD)} ", f"0{len(HEAD)}"):  # atoi reads each as len(HEAD)
        assert _atoi(form.encode()) == len(HEAD)
        assert read_rest_request("m", None, BODY, form).digest is not None


@pytest.mark.parametrize("form", FORMS)
def test_a_body_triton_would_read_whole_as_its_input_is_not_forwarded(loop_thread, make_proxy, form: bytes) -> None:  # type: ignore[no-untyped-def]
    """Through the proxy, to an upstream that splits the body as Triton does: refused (400) before it is sent.
    Forwarded, the email the UINT8 bytes hold reached the model's input for `ads`, which the zone forbids."""
    model_inputs: list[bytes] = []

    async def triton(request: web.Request) -> web.Response:
        body = await request.read()
        given = [value for name, value in request.raw_headers if name.lower() == HEADER_LENGTH.lower().encode()]
        length = _atoi(given[0])
        model_inputs.append(body if length == 0 else body[length:])  # raw binary request: the whole body
        return web.json_response({"model_name": "m", "outputs": []})

    app = web.Application()
    app.router.add_post("/v2/models/m/infer", triton)
    with serving(loop_thread, app) as url:
        proxy = make_proxy(CONFIG, wait="started", OIP=url)
        fields = [
            (b"Content-Type", b"application/octet-stream"),
            (HEADER_LENGTH.encode(), form),
            (b"x-purpose", b"ads"),
        ]
        status, headers, reply = proxy_post(proxy.url, "/v2/models/m/infer", fields, BODY)
        assert (status, model_inputs) == (400, []), (status, headers.get(b"x-lineage-decision"), model_inputs)
        assert orjson.loads(reply)["code"] == "invalid_request"  # OIP's error shape: `{"error": "...", ...}`
        # the length in ASCII digits: the body is split as Triton splits it (the UINT8 tensor's bytes are its own)
        ascii_fields = [(k, str(len(HEAD)).encode() if k == HEADER_LENGTH.encode() else v) for k, v in fields]
        status, headers, _ = proxy_post(proxy.url, "/v2/models/m/infer", ascii_fields, BODY)
        assert status == 200 and model_inputs == [HIDDEN], (status, model_inputs)


def proxy_post(
    base: str, path: str, fields: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One POST over a socket, its header fields as bytes (httpx writes only ASCII values)."""
    where = urlsplit(base)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        head = b"POST %s HTTP/1.1\r\nHost: proxy\r\nContent-Length: %d\r\nConnection: close\r\n" % (
            path.encode(),
            len(body),
        )
        head += b"".join(name + b": " + value + b"\r\n" for name, value in fields)
        sock.sendall(head + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    raw_head, _, reply = data.partition(b"\r\n\r\n")
    lines = raw_head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, reply
