"""How grpc.aio enters the gRPC ingress's handlers: interpreted on purpose (not in setup.py's COMPILED).

grpc.aio asks `inspect.iscoroutinefunction` of a call's handler on every call. Of a Python function it answers at
once; of a method mypyc compiled (bound in a `functools.partial`) it first checks that the object looks like a
function (`inspect._signature_is_functionlike`): ~95 Python instructions a call. A Python coroutine function that
awaits the compiled handler costs about a third of that (`python -m benchmarks.work`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

Handler = Callable[[Any, Any], Coroutine[Any, Any, Any]]


def bound3(handler: Callable[..., Coroutine[Any, Any, Any]], first: Any, second: Any, third: Any) -> Handler:
    """`handler(first, second, third, request, context)` as grpc.aio's handler of a method."""

    async def call(request: Any, context: Any) -> Any:
        return await handler(first, second, third, request, context)

    return call


def bound1(handler: Callable[..., Coroutine[Any, Any, Any]], first: Any) -> Handler:
    """`handler(first, request, context)` as grpc.aio's handler of a method."""

    async def call(request: Any, context: Any) -> Any:
        return await handler(first, request, context)

    return call
