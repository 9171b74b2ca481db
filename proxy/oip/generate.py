"""Regenerate (or, with --check, verify) the Python code for protos/*.proto.

The generated modules are committed so `pip install .` needs no protoc; CI runs `--check` so they can
never drift from the .proto. Needs grpcio-tools (the `test`/`dev` extras).

    python -m proxy.oip.generate          # rewrite proxy/oip/*_pb2*.py
    python -m proxy.oip.generate --check  # exit 1 if they differ from what the .proto gives
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
OUT = Path(__file__).resolve().parent
NAMES = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2_grpc.py")


def generate(into: Path) -> None:
    from grpc_tools import protoc

    args = [
        "protoc",
        f"-I{PROTOS}",
        f"--python_out={into}",
        f"--grpc_python_out={into}",
        str(PROTOS / "grpc_predict_v2.proto"),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    grpc_module = into / "grpc_predict_v2_pb2_grpc.py"
    text = grpc_module.read_text()
    grpc_module.write_text(
        text.replace("import grpc_predict_v2_pb2 as", "from proxy.oip import grpc_predict_v2_pb2 as")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify instead of writing")
    args = parser.parse_args()
    if not (PROTOS / "grpc_predict_v2.proto").exists():
        print("protos/ not found (run from a source checkout)", file=sys.stderr)
        return 1
    if not args.check:
        generate(OUT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [n for n in NAMES if (Path(tmp) / n).read_text() != (OUT / n).read_text()]
    if stale:
        print(f"generated code is stale: {', '.join(stale)}; run python -m proxy.oip.generate", file=sys.stderr)
        return 1
    print("generated code is current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
