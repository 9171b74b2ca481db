"""How grpc.aio enters the gRPC ingress's handlers: interpreted on purpose (not in setup.py's COMPILED).

grpc.aio asks `inspect.iscoroutinefunction` of a call's handler on every call. Of a Python function it answers at
once; of a method mypyc compiled (bound in a `functools.partial`) it first checks that the object looks like a
function (`inspect._signature_is_functionlike`): ~95 Python instructions a call. A Python coroutine function that
awaits the compiled handler costs about a third of that (`python -m benchmarks.work`).

An abort (`context.abort`, how the ingress answers every refusal) raises the AbortError grpc keeps (`abort_exception`
of the call's state, which the servicer context holds): it leaves here without the traceback it gathered in the
proxy's frames, which hold that context (a reference cycle that kept every refused call's frames, its request and
context, for the collector). grpc requires that very error back, and logs nothing of it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from grpc.aio import AbortError

Handler = Callable[[Any, Any], Coroutine[Any, Any, Any]]


def bound3(handler: Callable[..., Coroutine[Any, Any, Any]], first: Any, second: Any, third: Any) -> Handler:
    """`handler(first, second, third, request, context)` as grpc.aio's handler of a method."""

    async def call(request: Any, context: Any) -> Any:
        try:
            return await handler(first, second, third, request, context)
        except AbortError as aborted:
            aborted.__traceback__ = None
            raise

    return call


def bound1(handler: Callable[..., Coroutine[Any, Any, Any]], first: Any) -> Handler:
    """`handler(first, request, context)` as grpc.aio's handler of a method."""

    async def call(request: Any, context: Any) -> Any:
        try:
            return await handler(first, request, context)
        except AbortError as aborted:
            aborted.__traceback__ = None
            raise

    return call
