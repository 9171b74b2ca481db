"""A deployment path naming its model that no adapter reads (LiteLLM proxy's `/openai/deployments/{model}/images/
generations` and `.../images/edits`, Azure OpenAI's `.../audio/speech`, `.../audio/transcriptions`,
`.../audio/translations`, which the openai SDK's `AzureOpenAI` client calls) is forwarded unread, as
`/v1/images/generations` is, but by the path's model's route, held to its purposes, as an OIP model's path is.

Until 2026-12-07 such a path was the `"*"` route's: under `policy.passthrough: auto` refused 403 `endpoint_denied`
whatever it named; with `forward`, an `ads` image call to `claude-fallback`, whose route allows `assistant` alone, was
forwarded, recorded allowed (helper models16)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from aiohttp import web

from proxy.protocols import Target
from proxy.protocols.passthrough import Adapter
from tests.harness import serving
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_fallback_models_judged import CONFIG
from tests.test_model_in_path import API_VERSION, FORWARD, litellm_app


def media_app(seen: list[tuple[str, str]]) -> web.Application:
    """`litellm_app`'s models and routes, and its image and Azure's audio deployment paths: each call noted as (the
    model the path names, the operation)."""
    app = litellm_app([])

    def answering(operation: str) -> Any:
        async def answer(request: web.Request) -> web.StreamResponse:
            await request.read()
            seen.append((request.match_info["model"], operation))
            if operation == "audio/speech":
                return web.Response(body=b"RIFF", content_type="audio/wav")
            return web.json_response({"created": 1, "data": [{"url": "https://example.com/i.png"}]})

        return answer

    for operation in ("images/generations", "audio/speech"):
        app.router.add_post(f"/openai/deployments/{{model:.*}}/{operation}", answering(operation))
    return app


# (operation, deployment, purpose, config) -> (status, code): 200 forwarded
CASES = [
    ("images/generations", ANSWERED, "ads", CONFIG, 403, "purpose_denied"),
    ("images/generations", ANSWERED, "ads", FORWARD, 403, "purpose_denied"),
    ("audio/speech", ANSWERED, "ads", FORWARD, 403, "purpose_denied"),
    # a purpose the path's model's route allows: forwarded by that route, under auto too (its model named)
    ("images/generations", ANSWERED, "assistant", CONFIG, 200, None),
    # forwarded on both: the path's model allows ads, and main's forward
    ("images/generations", ASKED, "ads", FORWARD, 200, None),
]


@pytest.mark.parametrize(("operation", "deployment", "purpose", "config", "status", "code"), CASES)
def test_a_deployment_s_media_call_is_judged_by_its_model(loop_thread, make_proxy, operation, deployment, purpose,
                                                          config, status, code) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """Through the real AzureOpenAI client (its deployment in the path): 403 `purpose_denied` where the path's model's
    route forbids the purpose, nothing forwarded; else forwarded to the path's model."""
    seen: list[tuple[str, str]] = []
    with serving(loop_thread, media_app(seen)) as url:
        proxy = make_proxy(config, UPSTREAM=url)
        client = openai.AzureOpenAI(azure_endpoint=proxy.url, azure_deployment=deployment, api_version=API_VERSION,
                                    api_key="unused", max_retries=0, timeout=10,
                                    default_headers={"x-purpose": purpose})  # fmt: skip
        try:
            if operation == "audio/speech":
                client.audio.speech.create(model=deployment, voice="alloy", input="hi").read()
            else:
                client.images.generate(model=deployment, prompt="a cat")
            got: tuple[Any, ...] = (200, None)
        except openai.APIStatusError as refused:
            got = (refused.status_code, refused.code)
        finally:
            client.close()
    assert got == (status, code)
    assert seen == ([(deployment, operation)] if status == 200 else [])


@pytest.mark.parametrize(
    ("path", "model"),
    [
        (f"/openai/deployments/{ANSWERED}/images/generations", ANSWERED),
        ("/openai/deployments/org/m/images/edits", "org/m"),  # (LiteLLM's `{model:path}`: `/` too)
        ("/openai/deployments/m/audio/transcriptions", "m"),
        ("/openai/deployments/m/audio/translations", "m"),
        ("/openai/deployments/images/generations", ""),  # (no model: the "*" route's)
        ("/openai/deployments/m/files", ""),  # (a path not known: the "*" route's, as before)
        ("/v1/images/generations", ""),
    ],
)
def test_the_path_s_model(path: str, model: str) -> None:
    assert Adapter().match("POST", path) == Target("passthrough", model)


@pytest.mark.parametrize("deployment", [ASKED, ANSWERED])
def test_a_model_version_on_a_media_path_is_not_mlservers(loop_thread, make_proxy, deployment: str) -> None:  # type: ignore[no-untyped-def]
    """A `model_version` in the query of a deployment's media path is read by no server there (LiteLLM's and Azure's
    handlers, as on its chat path: `_query_refused`): through the real AzureOpenAI client (`extra_query`), judged by the
    path's model alone, 403 for `claude-fallback`, forwarded for `claude-asked`; until review revmodels16 refused 400
    in MLServer's words ("MLServer runs the version it names"), which the path's model became on this branch."""
    seen: list[tuple[str, str]] = []
    with serving(loop_thread, media_app(seen)) as url:
        proxy = make_proxy(FORWARD, UPSTREAM=url)
        client = openai.AzureOpenAI(azure_endpoint=proxy.url, azure_deployment=deployment, api_version=API_VERSION,
                                    api_key="unused", max_retries=0, timeout=10,
                                    default_headers={"x-purpose": "ads"})  # fmt: skip
        try:
            client.images.generate(model=deployment, prompt="a cat", extra_query={"model_version": "1"})
            got: tuple[Any, ...] = (200, None)
        except openai.APIStatusError as refused:
            got = (refused.status_code, refused.code)
        finally:
            client.close()
    assert got == ((200, None) if deployment == ASKED else (403, "purpose_denied"))
    assert seen == ([(deployment, "images/generations")] if deployment == ASKED else [])
