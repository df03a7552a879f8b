#!/usr/bin/env bash
# Memory stays flat whatever the feed's size: pulls one N-row claims CSV (default 20,000,000
# rows, about 2.1 GB) over HTTP on 127.0.0.1 into a fresh store, then the 300,000-person roster,
# then evaluates the join rule over it, and prints each step's time and peak memory (to set
# beside the 1,000,000-row figures of run.sh). Needs about 20 GB of free disk (the feed, the
# store, its WAL and SQLite's temporary sort files).
#   Benchmarks/big.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
N="${1:-20000000}"
B=var/bench/big; mkdir -p "$B"
if [ ! -f "$B/data/claims.csv" ] || [ "$(($(wc -l < "$B/data/claims.csv") - 1))" != "$N" ]; then
  python3 Benchmarks/generate.py "$B/data" "$N" 300000
fi
swift build -c release --product hubd 2>&1 | tail -n 1
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
M="$B/Mappings"; rm -rf "$M"; mkdir -p "$M"; cp -r Mappings/types "$M/"
sed "s#http://127.0.0.1:[0-9]*/claims.csv#http://127.0.0.1:$PORT/claims.csv#" var/bench/Mappings/claims.yaml > "$M/claims.yaml" 2>/dev/null || {
  echo "先运行 Benchmarks/run.sh（它写出 claims、roster 映射和规则）"; exit 1; }
cp var/bench/Mappings/roster.yaml "$M/" && cp -r var/bench/Mappings/rules "$M/"
( cd "$B/data" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 ) > /dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 1
rm -f "$B/hub.sqlite"*
BYTES=$(stat -c %s "$B/data/claims.csv")
step() {  # label, hubd arguments… → one line: time, rows/s, peak memory
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$B/time.txt" .build/release/hubd "$@" --period 2026-10 --db "$B/hub.sqlite" --mappings "$M" > "$B/step.out" 2>&1 ||
    { tail -5 "$B/step.out"; exit 1; }
  read -r wall rss < "$B/time.txt"
  python3 - "$label" "$N" "$BYTES" "$wall" "$rss" <<'PY'
import sys
label, n, size, wall, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
if label == "pull":
    print(f"claims pull, {n:,} rows, {size / 1e9:.2f} GB over HTTP: {wall:.1f} s, {n / wall:,.0f} rows/s, peak memory {kb / 1024:.0f} MB")
else:
    print(f"{label}: {wall:.1f} s, peak memory {kb / 1024:.0f} MB")
PY
}
step pull pull claims --skip-rules
step "roster pull (300,000 persons)" pull roster --skip-rules
step "join rule over the $N claims" rules eval
tail -n 1 "$B/step.out"
[ "${KEEP:-0}" = 1 ] || rm -f "$B/hub.sqlite"*
