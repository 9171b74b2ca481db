"""The names OpenLineage events give what has no name of its own (the input of a call carrying no label, the job of
a flow no checkpoint served) are names no label and no checkpoint can have: the dataset `unlabelled` and the job
`policy-boundary` were also what a caller's label `unlabelled` (`x-data-labels: unlabelled`, a valid label) and a
checkpoint named `policy-boundary` (a pin, an OIP model of that name) are called, so Marquez merged labelled data
into the unlabelled data's node, and a served model's runs into the denials'."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from proxy.labels import is_label
from proxy.record.openlineage import NO_CHECKPOINT, UNLABELLED
from tests.record.test_openlineage import Marquez, check_run_event, marquez  # noqa: F401 (a fixture)
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: llm, url: "${UPSTREAM}", checkpoint: policy-boundary}]
routes: [{model: restricted, upstream: llm, purposes: [assistant]}, {model: "*", upstream: llm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "${STORE}", openlineage: {url: "${MARQUEZ}"}}
"""


def test_a_label_and_a_checkpoint_named_like_the_synthetic_names_stay_apart(
    vllm: Any,
    marquez: tuple[Marquez, str],  # noqa: F811
    make_proxy: Any,
) -> None:
    _, upstream = vllm
    backend, url = marquez
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, MARQUEZ=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0, timeout=10)
    messages: Any = [{"role": "user", "content": "hello"}]
    client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-data-labels": "unlabelled"})
    client.chat.completions.create(model=SERVED, messages=messages)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="restricted", messages=messages, extra_headers={"x-purpose": "ads"})
    events = backend.wait_for(3)
    for event in events:
        check_run_event(event)
    labelled, unlabelled, denied = events
    assert labelled["inputs"][0]["facets"]["lineageProxy_labels"]["labels"] == ["unlabelled"]
    assert unlabelled["inputs"][0]["facets"]["lineageProxy_labels"]["labels"] == []
    assert labelled["inputs"][0]["name"] == "unlabelled"  # the caller's label, by its name
    assert unlabelled["inputs"][0]["name"] != labelled["inputs"][0]["name"]  # not the same dataset
    assert labelled["job"]["name"] == unlabelled["job"]["name"] == "policy-boundary"  # the checkpoint served
    assert denied["outputs"] == [] and denied["job"]["name"] != "policy-boundary"  # none served: not that job


def test_the_synthetic_names_are_outside_what_labels_and_checkpoints_can_be() -> None:
    from proxy.flow import printable_name

    assert not is_label(UNLABELLED)
    assert printable_name(NO_CHECKPOINT) != NO_CHECKPOINT  # a checkpoint of that name is recorded encoded
