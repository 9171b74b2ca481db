"""gRPC upstreams: one keep-alive channel per upstream, and OIP model metadata for discovery."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from proxy.config import Upstream
from proxy.errors import UpstreamStatus
from proxy.protocols import MetadataStatus
from proxy.protocols.oip_grpc import MODEL_METADATA, encode_model_metadata_request, read_model_metadata
from proxy.tls import grpc_channel_credentials

UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
_CHANNEL_OPTIONS = [*UNLIMITED, ("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 0)]
_LOOKUP_CODES = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)


def upstream_status(exc: grpc.aio.AioRpcError) -> UpstreamStatus:
    """grpc's error as the transport-neutral one the Exchange maps (like httpcore's map_exceptions)."""
    code = exc.code()
    return UpstreamStatus(code.name, exc.details() or code.name)


class GrpcChannels:
    """One keep-alive channel per gRPC upstream."""

    def __init__(self) -> None:
        self._channels: dict[str, tuple[str, grpc.aio.Channel]] = {}

    def channel(self, upstream: Upstream) -> grpc.aio.Channel:
        assert upstream.grpc is not None
        entry = self._channels.get(upstream.name)
        if entry is not None and entry[0] == upstream.grpc:
            return entry[1]
        if upstream.tls is None:
            channel = grpc.aio.insecure_channel(upstream.grpc, options=_CHANNEL_OPTIONS)
        else:
            options: list[tuple[str, str | int]] = list(_CHANNEL_OPTIONS)
            if upstream.tls.server_name:
                options.append(("grpc.ssl_target_name_override", upstream.tls.server_name))
            channel = grpc.aio.secure_channel(upstream.grpc, grpc_channel_credentials(upstream.tls), options=options)
        self._channels[upstream.name] = (upstream.grpc, channel)
        return channel

    async def model_metadata(self, upstream: Upstream, model: str) -> dict[str, Any]:
        """OIP ModelMetadata for checkpoint discovery; LookupError when the upstream does not serve it."""
        method = self.channel(upstream).unary_unary(MODEL_METADATA)
        headers = (("authorization", f"Bearer {upstream.api_key}"),) if upstream.api_key else None
        try:
            reply = await method(encode_model_metadata_request(model), timeout=min(upstream.timeout_s, 10.0),
                                 metadata=headers)  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _LOOKUP_CODES:
                raise MetadataStatus(404, f"model {model!r}") from None
            raise ConnectionError(f"{exc.code().name}: {exc.details()}") from None
        return read_model_metadata(reply)

    async def close(self) -> None:
        for _, channel in self._channels.values():
            await channel.close()
        self._channels.clear()
