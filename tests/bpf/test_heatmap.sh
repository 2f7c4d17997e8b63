#!/usr/bin/env bash
# `expertcache heatmap`: decodes the PNG it writes (independently, with
# Python's zlib) and checks every cell's colour against the viridis value
# of its count, linear and --log; --trace and --profile of the same data
# give the same image; bad input gets a clear error.  No root needed.
set -u
cd "$(dirname "$0")/../.."

pass=0 fail=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

CLI=build/san/expertcache
[ -x "$CLI" ] || CLI=build/expertcache
PY=build/venv/bin/python
[ -x "$PY" ] || PY=python3
if [ ! -x "$CLI" ]; then
	echo "skip - no $CLI: run make first"
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
fi
TMP=$(mktemp -d /tmp/ec-heatmap-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# A trace whose counts are known: count[l][e] = (7 l + 3 e) % 11, 3 x 12.
"$PY" - "$TMP/t.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    tok = 0
    for l in range(3):
        for e in range(12):
            for _ in range((7 * l + 3 * e) % 11):
                f.write(json.dumps({"token_idx": tok, "layer": l,
                                    "experts": [e]}) + "\n")
                tok += 1
EOF

# Check a PNG: structure, CRCs, and each cell's colour.
png_ok() {	# png "grid line" log
	"$PY" - "$@" <<'EOF'
import re, struct, sys, zlib, math
path, line, log = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
m = re.search(r"\((\d+)x(\d+)\).*grid at (\d+),(\d+), cells of (\d+) px", line)
W, H, gx, gy, cell = map(int, m.groups())
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "signature"
pos, chunks = 8, {}
while pos < len(data):
    n, = struct.unpack(">I", data[pos:pos + 4])
    typ, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
    crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
    assert zlib.crc32(typ + body) == crc, "CRC of %r" % typ
    chunks.setdefault(typ, b"")
    chunks[typ] += body
    pos += 12 + n
w, h, depth, ctype = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
assert (w, h, depth, ctype) == (W, H, 8, 2), "IHDR %r" % ((w, h, depth, ctype),)
raw = zlib.decompress(chunks[b"IDAT"])
row = 3 * w + 1
assert len(raw) == row * h and all(raw[y * row] == 0 for y in range(h))
px = lambda x, y: tuple(raw[y * row + 1 + 3 * x:y * row + 4 + 3 * x])
stops = [(0x44,0x01,0x54),(0x48,0x24,0x75),(0x41,0x44,0x87),(0x35,0x5f,0x8d),
         (0x2a,0x78,0x8e),(0x21,0x91,0x8c),(0x22,0xa8,0x84),(0x44,0xbf,0x70),
         (0x7a,0xd1,0x51),(0xbd,0xdf,0x26),(0xfd,0xe7,0x25)]
def viridis(t):
    t = min(max(t, 0.0), 1.0); i = min(int(t * 10), 9); f = t * 10 - i
    return tuple(a + f * (b - a) for a, b in zip(stops[i], stops[i + 1]))
counts = [[(7 * l + 3 * e) % 11 for e in range(12)] for l in range(3)]
mx = max(map(max, counts))
for l in range(3):
    for e in range(12):
        c = counts[l][e]
        t = math.log1p(c) / math.log1p(mx) if log else c / mx
        want = viridis(t)
        got = px(gx + e * cell + cell // 3, gy + l * cell + cell // 3)
        if any(abs(a - b) > 1 for a, b in zip(got, want)):
            sys.exit("cell (%d, %d) count %d: %r, want %r" % (l, e, c, got, want))
EOF
}

out=$("$CLI" heatmap --trace "$TMP/t.jsonl" --out "$TMP/a.png" 2>&1)
check "heatmap --trace: exits 0" [ $? -eq 0 ]
check "PNG valid, every cell's colour = viridis(count / max)" png_ok "$TMP/a.png" "$out" 0
out=$("$CLI" heatmap --trace "$TMP/t.jsonl" --log --out "$TMP/l.png" 2>&1)
check "--log: every cell = viridis(log1p(count) / log1p(max))" png_ok "$TMP/l.png" "$out" 1
"$CLI" profile --from-trace "$TMP/t.jsonl" --out "$TMP/p.json" >/dev/null 2>&1
"$CLI" heatmap --profile "$TMP/p.json" --out "$TMP/b.png" >/dev/null 2>&1
check "--profile of the same data draws the same image" cmp -s "$TMP/a.png" "$TMP/b.png"

"$CLI" heatmap --out "$TMP/x.png" >/dev/null 2>&1
check "no input: usage error (exit 2)" [ $? -eq 2 ]
echo '{"format": "expertcache-profile", "version": 1, "n_layer": 2}' >"$TMP/bad.json"
err=$("$CLI" heatmap --profile "$TMP/bad.json" --out "$TMP/x.png" 2>&1)
check "bad profile: exit 1, message names the file" \
	test $? -eq 1 -a -n "$(grep -F "$TMP/bad.json" <<<"$err")"
check "bad profile: no PNG written" [ ! -e "$TMP/x.png" ]
err=$("$CLI" heatmap --trace "$TMP/t.jsonl" --out /nonexistent/dir/h.png 2>&1)
check "unwritable output: exit 1, message names the path" \
	test $? -eq 1 -a -n "$(grep -F /nonexistent/dir/h.png <<<"$err")"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
