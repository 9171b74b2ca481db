"""Every adapter and every reply observer derives from the native bases `proxy.protocols.Adapter` and `Observer`
(helper speed2, 2026-12-05): compiled, a call or an attribute read on a value of those types goes through the base's
vtable, not a lookup by name; a value of a class that only looks like one would be refused (TypeError) there."""

import inspect

from proxy.protocols import (
    ADAPTERS,
    GRPC_ADAPTERS,
    HTTP_ADAPTERS,
    Adapter,
    Observer,
    anthropic,
    kserve,
    oip,
    oip_generate,
    oip_grpc,
    ollama,
    openai,
    passthrough,
    sse,
    tgi,
)

MODULES = (anthropic, kserve, oip, oip_generate, oip_grpc, ollama, openai, passthrough, sse, tgi)


def test_every_adapter_derives_from_the_native_base():
    adapters = {*ADAPTERS.values(), *HTTP_ADAPTERS, *GRPC_ADAPTERS}
    assert len(adapters) == 10  # (OpenAI's on paths naming the model, `openai.IN_PATH`, since 2026-12-07)
    for adapter in adapters:
        assert isinstance(adapter, Adapter), adapter
        # the four attributes the base declares, set by each adapter's class body
        assert isinstance(adapter.name, str) and isinstance(adapter.dialect, str)
        assert adapter.status_attribute in ("http.response.status_code", "rpc.grpc.status_code")
        assert adapter.provider is None or isinstance(adapter.provider, str)


def test_every_reply_observer_derives_from_the_native_base():
    observers = {
        cls
        for module in MODULES
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and all(hasattr(cls, name) for name in ("head", "body", "chunk", "finish"))
    }
    assert {sse.SseObserver, oip.RestReplyObserver, oip_grpc.ReplyObserver, openai.ReplyObserver} <= observers
    for cls in observers:
        assert issubclass(cls, Observer), cls
