"""The gRPC listener's unary callables are kept by upstream name; those of an upstream a reload removed or renamed
are let go (each held its retired channel), so a reload a deploy renaming a gRPC upstream keeps no more of them."""

from __future__ import annotations

from pathlib import Path

from tests.harness import LoopThread
from tests.transport.test_grpc import simple_inputs

CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - {name: NAME, grpc: "${OIP_GRPC}", protocol: oip, region: eu}
routes: [{model: "*", upstream: NAME}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
"""


def test_the_callables_of_upstreams_a_reload_renamed_are_let_go(make_proxy, faithful, loop_thread: LoopThread,
                                                                tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    import tritonclient.grpc as grpcclient

    address, _ = faithful
    proxy = make_proxy(CONFIG.replace("NAME", "triton0"), OIP_GRPC=address)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    inputs = simple_inputs([2], [2])
    path = tmp_path / "proxy.yaml"

    async def reload() -> bool:
        return bool(proxy.process.reload(str(path)))

    for n in range(1, 21):  # twenty deploys, each renaming the upstream
        assert client.infer("simple", inputs).as_numpy("SUM").tolist() == [[4]]
        path.write_text(CONFIG.replace("NAME", f"triton{n}").replace("${OIP_GRPC}", address))
        assert loop_thread.run(reload())
    assert client.infer("simple", inputs).as_numpy("SUM").tolist() == [[4]]
    assert {name for name, _ in proxy.process._grpc._callables} == {"triton20"}
