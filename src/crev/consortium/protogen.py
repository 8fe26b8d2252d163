"""Build the protobuf descriptor set of CometBFT's ABCI types from CometBFT's own .proto files.

The .proto files come from the CometBFT module itself (``go mod download -json
github.com/cometbft/cometbft@<COMETBFT_VERSION>``; gogoproto's ``gogo.proto``, which they import
for Go code-generation options, from the module version CometBFT's go.mod pins). protoc is the one
bundled in the ``grpcio-tools`` wheel. The output is one binary ``FileDescriptorSet``
(``_gen/abci-<version>.binpb``, gitignored): ``proto.py`` loads it into Google's protobuf runtime
and builds the message classes from it, so no generated Python is committed, linted or imported.

    python -m crev.consortium.protogen          # writes the file unless it is already there
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

COMETBFT_MODULE = "github.com/cometbft/cometbft"
COMETBFT_VERSION = "v0.38.26"
GOGOPROTO_MODULE = "github.com/cosmos/gogoproto"
ROOT_PROTO = "tendermint/abci/types.proto"
GEN_DIR = Path(__file__).resolve().parent / "_gen"
DESCRIPTOR_FILE = GEN_DIR / f"abci-{COMETBFT_VERSION}.binpb"


class ProtoBuildError(RuntimeError):
    pass


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ProtoBuildError("`go` not found: the ABCI protobuf types are built from CometBFT's .proto files, "
                              "fetched with `go mod download` (install Go, e.g. apt-get install golang)")
    return go


def module_dir(module: str, version: str) -> Path:
    """Where ``go mod download`` put ``module@version`` (downloading it through the module proxy if
    needed; go checks it against the checksum database)."""
    with tempfile.TemporaryDirectory() as tmp:  # outside any module, so no go.mod is read or written
        out = subprocess.run([_go(), "mod", "download", "-json", f"{module}@{version}"], capture_output=True,
                             text=True, cwd=tmp, timeout=600, env={**os.environ, "GOFLAGS": "-mod=mod"})
    try:
        info = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise ProtoBuildError(f"go mod download {module}@{version} failed: {out.stderr.strip()}") from None
    if out.returncode != 0 or "Dir" not in info:
        raise ProtoBuildError(f"go mod download {module}@{version} failed: {info.get('Error') or out.stderr}")
    return Path(info["Dir"])


def _required_version(gomod: Path, module: str) -> str:
    for line in gomod.read_text().splitlines():
        parts = line.split()
        if module in parts:
            return parts[parts.index(module) + 1]
    raise ProtoBuildError(f"{gomod} does not require {module}")


def build(out: Path = DESCRIPTOR_FILE, force: bool = False) -> Path:
    """Write the descriptor set to ``out`` (skipped if it exists, unless ``force``)."""
    if out.exists() and not force:
        return out
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped]  # build-time only; no stubs
    except ImportError:
        raise ProtoBuildError("grpcio-tools is not installed (pip install -e '.[dev]')") from None
    cmt = module_dir(COMETBFT_MODULE, COMETBFT_VERSION)
    gogo = module_dir(GOGOPROTO_MODULE, _required_version(cmt / "go.mod", GOGOPROTO_MODULE))
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    rc = protoc.main(["protoc", f"-I{cmt / 'proto'}", f"-I{gogo}", f"-I{well_known}", "--include_imports",
                      f"--descriptor_set_out={tmp}", ROOT_PROTO])
    if rc != 0:
        raise ProtoBuildError(f"protoc failed ({rc}) on {cmt / 'proto' / ROOT_PROTO}")
    os.replace(tmp, out)
    return out


def main() -> None:
    try:
        path = build(force="--force" in sys.argv[1:])
    except ProtoBuildError as err:
        print(f"crev.consortium.protogen: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"ABCI descriptor set: {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
