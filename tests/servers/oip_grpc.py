"""A faithful OIP v2 gRPC server for the fault cases a real server will not produce on demand.

Runs as its own process (`python -m tests.servers.oip_grpc --log FILE`): it uses the project's
generated `inference` messages, which cannot share a process with tritonclient's copy of them.
Prints `ready <port>` when serving. Every inference request is appended to the log file as JSON.

Models: `simple` (versions 1, 2): output `SUM` = sum of INT32 input `A` + `B`; `echo`: BYTES input
`TEXT` returned as output `TEXT`, plus output `SHA256` (BYTES) of every raw input (to prove a 50 MB
tensor arrived intact); `slow`: answers after 5 s (for deadlines). ModelStreamInfer answers each
request with one response. `/test.Extra/Reverse` is an extra method of another service: it returns
its request bytes reversed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import struct
from pathlib import Path

import grpc
import grpc.aio

from proxy.oip import grpc_predict_v2_pb2 as pb
from proxy.oip import grpc_predict_v2_pb2_grpc as pb_grpc


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, log_path: str) -> None:
        self.log_path = log_path

    def _log(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext) -> None:
        entry = {
            "model": request.model_name,
            "version": request.model_version,
            "metadata": {k: v for k, v in context.invocation_metadata() if isinstance(v, str)},
            "raw_sizes": [len(r) for r in request.raw_input_contents],
        }
        with open(self.log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=request.name in ("simple", "echo", "slow"))

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="faithful-oip", version="2.0", extensions=["binary_tensor_data"])

    async def ModelMetadata(self, request, context):
        if request.name not in ("simple", "echo", "slow"):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.name}")
        versions = ["1", "2"] if request.name == "simple" else ["1"]
        return pb.ModelMetadataResponse(name=request.name, versions=versions, platform="faithful")

    def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        version = request.model_version or ("2" if request.model_name == "simple" else "1")
        reply = pb.ModelInferResponse(model_name=request.model_name, model_version=version, id=request.id)
        if request.model_name == "simple":
            values = []
            for index, tensor in enumerate(request.inputs):
                if index < len(request.raw_input_contents):
                    raw = request.raw_input_contents[index]
                    values.append(list(struct.unpack(f"<{len(raw) // 4}i", raw)))
                else:
                    values.append(list(tensor.contents.int_contents))
            total = [a + b for a, b in zip(values[0], values[1], strict=True)]
            out = reply.outputs.add(name="SUM", datatype="INT32", shape=[1, len(total)])
            reply.raw_output_contents.append(struct.pack(f"<{len(total)}i", *total))
            del out
        else:
            texts = []
            for index, tensor in enumerate(request.inputs):
                if tensor.datatype == "BYTES" and index < len(request.raw_input_contents):
                    raw, pos = request.raw_input_contents[index], 0
                    while pos + 4 <= len(raw):
                        (n,) = struct.unpack_from("<I", raw, pos)
                        texts.append(raw[pos + 4 : pos + 4 + n])
                        pos += 4 + n
                elif tensor.datatype == "BYTES":
                    texts.extend(tensor.contents.bytes_contents)
            digests = [hashlib.sha256(raw).hexdigest().encode() for raw in request.raw_input_contents]
            reply.outputs.add(name="TEXT", datatype="BYTES", shape=[len(texts)]).contents.bytes_contents.extend(texts)
            reply.outputs.add(name="SHA256", datatype="BYTES", shape=[len(digests)]).contents.bytes_contents.extend(
                digests
            )
        return reply

    async def ModelInfer(self, request, context):
        self._log(request, context)
        if request.model_name == "slow":
            await asyncio.sleep(5)
        if request.model_name not in ("simple", "echo", "slow"):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.model_name}")
        await context.send_initial_metadata((("x-upstream", "faithful"),))
        return self._infer(request)

    async def ModelStreamInfer(self, request_iterator, context):
        async for request in request_iterator:
            self._log(request, context)
            yield pb.ModelStreamInferResponse(infer_response=self._infer(request))


async def reverse(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request[::-1]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--tls", nargs=3, metavar=("CERT", "KEY", "CLIENT_CA"), help="serve TLS, require a client cert")
    args = parser.parse_args()
    server = grpc.aio.server(options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(args.log), server)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Extra", {"Reverse": grpc.unary_unary_rpc_method_handler(reverse)}),)
    )
    if args.tls:
        cert, key, client_ca = (Path(path).read_bytes() for path in args.tls)
        credentials = grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca, require_client_auth=True)
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"ready {port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
