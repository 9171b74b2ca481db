"""`check` names the package an OpenLineage transport imports only when it is built, for every such transport under
the type a config gives it: openlineage-python's own names, `msk-iam` and `amazon_datazone_api`.

The table of needed packages (proxy/config/loader.py) was keyed `msk_iam` and `amazon_datazone`, names no config can
give (`check` refuses them as unknown transport types): `{type: msk-iam, ...}` without confluent-kafka, and `{type:
amazon_datazone_api, ...}` without boto3, passed `check` and start, and sent no event, ever (the sender thread logs
once that it cannot build the transport)."""

from __future__ import annotations

import sys

import pytest
from openlineage.client.transport import get_default_factory

from proxy.config import parse
from proxy.errors import ConfigError

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: m
    url: http://127.0.0.1:8000
routes:
  - model: "*"
    upstream: m
lineage:
  store: null
  openlineage:
    transport: {transport}
"""


@pytest.mark.parametrize(
    ("transport", "module", "package"),
    [
        (
            '{type: msk-iam, topic: openlineage, region: eu-west-1, config: {bootstrap.servers: "127.0.0.1:9098"}}',
            "confluent_kafka",
            "confluent-kafka",
        ),
        ("{type: amazon_datazone_api, domainId: dzd_1234, region: eu-west-1}", "boto3", "boto3"),
    ],
)
def test_a_transport_without_its_package_is_refused_under_its_own_type_name(
    transport: str, module: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = transport.split("type: ", 1)[1].split(",", 1)[0]
    assert kind in get_default_factory().transports  # the name openlineage-python builds it by
    monkeypatch.setitem(sys.modules, module, None)  # an install without it
    with pytest.raises(ConfigError) as refused:
        parse(CONFIG.replace("{transport}", transport))
    problems = "\n".join(refused.value.problems)
    assert "lineage.openlineage.transport" in problems and package in problems, problems


KAFKA = "{type: kafka, topic: t, config: {bootstrap.servers: '127.0.0.1:9092'}, messageKey: m}"


def transform(held: str) -> str:
    """A transform transport (openlineage-python's own transformer) holding `held`."""
    return (
        "{type: transform, transformer_class: openlineage.client.transport.transform.JobNamespaceReplaceTransformer,"
        f" transformer_properties: {{new_job_namespace: n}}, transport: {held}}}"
    )


@pytest.mark.parametrize(
    ("transport", "kind"),
    [
        (transform(KAFKA), "transform"),
        (f"{{type: composite, transports: [{{type: console}}, {transform(KAFKA)}]}}", "composite"),
        (f"{{type: composite, transports: {{a: {transform(KAFKA)}}}}}", "composite"),
        (transform(f"{{type: composite, transports: [{KAFKA}]}}"), "transform"),
        (transform(transform(KAFKA)), "transform"),
    ],
)
def test_a_transport_without_its_package_is_refused_however_deep_it_is_held(
    transport: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kafka transport a transform transport holds (in a composite, or holding one) needs confluent-kafka as a top
    one does: until 2026-12-05 `_missing_packages` looked into a composite's transports only, so one wrapped in a
    transform passed `check` and start without it, and sent no event."""
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # an install without it
    with pytest.raises(ConfigError) as refused:
        parse(CONFIG.replace("{transport}", transport))
    assert refused.value.problems == [
        f"lineage.openlineage.transport: this {kind} transport needs confluent-kafka, not installed: "
        "pip install confluent-kafka"
    ]
