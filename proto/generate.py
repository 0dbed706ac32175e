"""Regenerate the gRPC stubs from scaleout.proto (`make proto`); tests compare them to the committed ones."""

import shutil
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
GENERATED = ("scaleout_pb2.py", "scaleout_pb2.pyi", "scaleout_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    """Write the stubs into out_dir, importable as scaleout.proto.scaleout_pb2."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        # The import prefix scaleout/proto makes the stubs import each other as scaleout.proto.*.
        args = [
            "protoc",
            f"-I{include}",
            f"-Iscaleout/proto={PROTO_DIR}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            "scaleout/proto/scaleout.proto",
        ]
        if protoc.main(args) != 0:
            sys.exit("protoc failed on proto/scaleout.proto")
        for name in GENERATED:
            shutil.copyfile(Path(tmp, "scaleout", "proto", name), out_dir / name)


if __name__ == "__main__":
    generate(PROTO_DIR)
