"""Real calls through a real proxy, for the tests of what is made of the lineage store (verify, report).

`proxy_config` is one policy with three callers and a zone; `send` makes one chat call with the real
openai SDK and returns its status, so a test reads as the traffic it makes.
"""

from __future__ import annotations

import openai

from tests.conftest import KEYS, sha
from tests.servers.vllm_like import SERVED

KEYS_BY_CALLER = {"glasses-app": KEYS["glasses"], "ads-ranker": KEYS["ads"], "ops": KEYS["ops"]}


def proxy_config(*, pin: str = "org/llama@v1", baseline: str | None = None, on_unapproved: str = "warn",
                 otlp: int | None = None, mode: str = "enforce") -> str:  # fmt: skip
    """The proxy's config; `${UPSTREAM}` and `${STORE}` come from the environment the harness gives."""
    lineage = "lineage:\n  store: ${STORE}\n  flush_interval_s: 0.05\n"
    if baseline is not None:
        lineage += f"  baseline: {baseline}\n  on_unapproved: {on_unapproved}\n"
    telemetry = f"telemetry:\n  exporter: otlp\n  endpoint: http://127.0.0.1:{otlp}\n" if otlp else ""
    return f"""
listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
    region: eu
    checkpoint: {pin}
routes:
  - model: "*"
    upstream: vllm
callers:
  - name: glasses-app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant, ads]
    labels: [user-interaction]
    default_purpose: assistant
  - name: ads-ranker
    api_key_sha256: {sha(KEYS["ads"])}
    purposes: [ads, analytics]
  - name: ops
    api_key_sha256: {sha(KEYS["ops"])}
zones:
  - name: interaction-data
    labels: [user-interaction]
    allow_purposes: [assistant]
policy:
  mode: {mode}
detectors: [email]
{telemetry}{lineage}"""


def send(url: str, caller: str, purpose: str | None = None, labels: str | None = None, text: str = "hello") -> int:
    """One chat call as `caller`; the HTTP status it got (a refusal is an answer, not an exception)."""
    headers = {k: v for k, v in (("x-purpose", purpose), ("x-data-labels", labels)) if v is not None}
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS_BY_CALLER[caller], max_retries=0, timeout=10,
                           default_headers=headers or None)  # fmt: skip
    try:
        client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": text}])
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def approved_traffic(url: str) -> None:
    """What the deployment is meant to do: the baseline is written from this."""
    assert send(url, "glasses-app") == 200  # assistant, user-interaction → org/llama@v1
    assert send(url, "glasses-app") == 200
    assert send(url, "ads-ranker", "ads", labels="public") == 200
    assert send(url, "glasses-app", "ads") == 403  # the zone refuses: an expected denial
