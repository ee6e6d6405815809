#!/usr/bin/env python3
"""Copies etcd's v3 API .proto files without their Go-only annotations.

etcd's protos (Debian's golang-etcd-server-dev) import gogoproto (Go code generation options)
and google/api/annotations (the grpc-gateway's HTTP mapping). Neither changes the wire format,
and protoc for C++ cannot resolve them, so this drops the two imports, every `option
(gogoproto.*)`, every `[(gogoproto.*)]` field option and every `option (google.api.http)` block.
The files land under OUT_DIR/etcd/... at the paths their imports name.

usage: strip-etcd-protos.py SRC_ROOT OUT_DIR REL_PATH...
"""
import pathlib
import re
import sys

DROP = [
    re.compile(r'^import "gogoproto/gogo\.proto";\n', re.M),
    re.compile(r'^import "google/api/annotations\.proto";\n', re.M),
    re.compile(r'^option \(gogoproto\.[a-z_]+\) = [a-z]+;\n', re.M),
    re.compile(r'\s*option \(google\.api\.http\) = \{.*?\};', re.S),
    re.compile(r'\s*\[\(gogoproto\.[^\]]*\]'),
]


def strip(text: str) -> str:
    for pattern in DROP:
        text = pattern.sub("", text)
    if "gogoproto" in text or "google.api" in text:
        raise ValueError("an annotation this script does not know is left")
    return text


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    for rel in sys.argv[3:]:
        source = src / rel
        try:
            text = strip(source.read_text())
        except (OSError, ValueError) as e:
            print(f"strip-etcd-protos: {source}: {e}", file=sys.stderr)
            return 1
        target = out / "etcd" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
