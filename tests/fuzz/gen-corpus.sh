#!/usr/bin/env bash
# Builds the fuzz corpora under tests/fuzz/corpus/<target>/ from the real captures
# (tests/fixtures/ami/*.bin), the shipped configs and the committed seeds in seeds/<target>/.
# The corpora are generated, not committed (corpus/ is ignored). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fx="$root/tests/fixtures/ami"
out="$here/corpus"
mkdir -p "$out"/{ami_decoder,ami_session,config_parse,export_roundtrip,timearg,web_query,web_gate}

for t in ami_decoder ami_session config_parse export_roundtrip timearg web_query web_gate; do
  if [ -d "$here/seeds/$t" ]; then cp "$here/seeds/$t"/* "$out/$t/" 2>/dev/null || true; fi
done

for f in "$fx"/*.bin; do
  name="$(basename "$f" .bin)"
  # ami_decoder: first byte = how many cut lengths follow (0: fed whole), then the stream.
  { printf '\x00'; cat "$f"; } > "$out/ami_decoder/$name"
  { printf '\x05\x01\x07\x02\x1f\x03'; head -c 3000 "$f"; } > "$out/ami_decoder/$name.cut"
  # ami_session: the bytes are read as operations; captures still steer it somewhere useful.
  head -c 4000 "$f" > "$out/ami_session/$name"
done

# export_roundtrip: mode byte 1 (event bytes, windows-1252) / 3 (utf-8) + each Cdr event of
# the captures, one file per distinct event.
python3 - "$fx" "$out/export_roundtrip" <<'PY'
import hashlib, pathlib, sys
fx, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(fx.glob("*.bin")):
    for msg in f.read_bytes().split(b"\r\n\r\n"):
        if b"Event: Cdr" not in msg:
            continue
        body = msg.lstrip(b"\r\n")
        i = body.find(b"Event: Cdr")
        body = body[i:] + b"\r\n\r\n"
        h = hashlib.sha1(body).hexdigest()[:12]
        for mode in (1, 3):
            (out / f"{h}-{mode}").write_bytes(bytes([mode]) + body)
PY

# config_parse: every config the project ships.
for f in "$root"/config/*.toml "$root"/tests/fixtures/config/*.toml; do
  [ -f "$f" ] && cp "$f" "$out/config_parse/$(basename "$f")"
done

echo "corpora in $out:"
for t in ami_decoder ami_session config_parse export_roundtrip timearg web_query web_gate; do
  printf '  %-17s %4d files\n' "$t" "$(ls "$out/$t" | wc -l)"
done
