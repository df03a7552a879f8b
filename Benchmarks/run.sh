#!/usr/bin/env bash
# The same job, side by side: N medical-claim rows (default 1,000,000, ~100 MB CSV) → rename,
# parse the date, check the ID's check character, keep or reject → store in SQLite with a key →
# join the large claims (self-pay ≥ 20,000) with a 300,000-person roster into alerts.
#   Benchmarks/run.sh [N]
# Prints wall time, rows/s, peak memory and each tool's time relative to the hub.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
N="${1:-1000000}"
B=var/bench
mkdir -p "$B"
if [ ! -f "$B/data/claims.csv" ] || [ "$(($(wc -l < "$B/data/claims.csv") - 1))" != "$N" ]; then
  python3 Benchmarks/generate.py "$B/data" "$N" 300000
fi
swift build -c release --product hubd 2>&1 | tail -n 1
HUBD=.build/release/hubd

# The hub's mappings and the one rule the job needs.
M="$B/Mappings"; rm -rf "$M"; mkdir -p "$M/rules"; cp -r Mappings/types "$M/"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$M/claims.yaml" <<YAML
source: claims
connector: http
fetch: { url: "http://127.0.0.1:$PORT/claims.csv", timeout: 3600 }
format: csv
csv: { encoding: utf-8 }
record: medical_claim
key: [settlement_id]
fields:
  settlement_id: setl_id
  person_no: psn_no
  id_number: certno
  name: psn_name
  med_type: { from: med_type, map: { "21": 住院, "11": 门诊, "14": 门诊慢特病 } }
  settled_at: { from: setl_time, format: "yyyy-MM-dd HH:mm:ss" }
  total_cost: medfee_sumamt
  fund_pay: hifp_pay
  self_pay: psn_part_amt
YAML
cat > "$M/roster.yaml" <<YAML
source: roster
connector: file
fetch: { path: "$(pwd)/$B/data/roster.csv" }
format: csv
record: person
fields: { id_number: id_number, household_id: household_id, name: name }
YAML
cat > "$M/rules/large_claim.yaml" <<YAML
rule: large_claim
title: 监测名单内人员大额自付
subject: person
by: id_number
trigger: claims
uses:
  claims: { type: medical_claim, where: "self_pay >= 20000" }
when: "in_roster"
message: "自付 {max(claims.self_pay)} 元"
YAML

( cd "$B/data" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 ) > /dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 1

measure() {  # name, command… → appends "name wall maxrss_kb"
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$B/time.txt" "$@" > "$B/$name.out" 2>&1 || { echo "$name failed:"; tail -5 "$B/$name.out"; return 1; }
  read -r wall rss < "$B/time.txt"
  echo "$name $wall $rss" >> "$B/results.txt"
}
rm -f "$B/results.txt" "$B"/*.sqlite*
# Hub: the roster, then the claims over HTTP through the real connector, decoder, mapping and
# store, then the join rule. One process each; wall times add, peak memory is the largest.
measure hub-roster "$HUBD" pull roster --period 2026-10 --db "$B/hub.sqlite" --mappings "$M" --skip-rules
measure hub-claims "$HUBD" pull claims --period 2026-10 --db "$B/hub.sqlite" --mappings "$M" --skip-rules
measure hub-rules "$HUBD" rules eval --period 2026-10 --db "$B/hub.sqlite" --mappings "$M"
# Repeat pull of the same month: nothing changes.
measure hub-repull "$HUBD" pull claims --period 2026-10 --db "$B/hub.sqlite" --mappings "$M" --skip-rules

cat > "$B/sqlite.sql" <<SQL
PRAGMA journal_mode=WAL;
CREATE TABLE claims (setl_id TEXT PRIMARY KEY, psn_no TEXT, certno TEXT, psn_name TEXT, med_type TEXT, setl_time TEXT, medfee_sumamt REAL, hifp_pay REAL, psn_part_amt REAL);
CREATE TABLE roster (id_number TEXT PRIMARY KEY, household_id TEXT, name TEXT);
.mode csv
.import --skip 1 $B/data/claims.csv claims
.import --skip 1 $B/data/roster.csv roster
CREATE TABLE alerts AS SELECT c.setl_id, r.household_id FROM claims c JOIN roster r ON r.id_number = c.certno WHERE c.psn_part_amt >= 20000;
SQL
measure sqlite3-import sqlite3 "$B/sqlite3.sqlite" ".read $B/sqlite.sql"
measure python-plain python3 Benchmarks/python_plain.py "$B/data" "$B/python.sqlite"
PY=python3
if ! python3 -c 'import pandas' 2>/dev/null; then
  [ -x "$B/venv/bin/python" ] || { python3 -m venv "$B/venv" && "$B/venv/bin/pip" install -q pandas; }
  PY="$B/venv/bin/python"
fi
measure pandas "$PY" Benchmarks/pandas_job.py "$B/data" "$B/pandas.sqlite"

python3 - "$N" "$B/results.txt" <<'PYEOF'
import sys
n = int(sys.argv[1]); rows = [l.split() for l in open(sys.argv[2])]
r = {name: (float(w), int(kb)) for name, w, kb in rows}
hub_wall = r["hub-roster"][0] + r["hub-claims"][0] + r["hub-rules"][0]
hub_rss = max(r["hub-roster"][1], r["hub-claims"][1], r["hub-rules"][1])
table = [("hub (pull roster + pull claims over HTTP + rule)", hub_wall, hub_rss),
         ("  of which: claims pull (connector, decode, map, validate, upsert, quarantine)", r["hub-claims"][0], r["hub-claims"][1]),
         ("  of which: join rule", r["hub-rules"][0], r["hub-rules"][1]),
         ("  re-pull of the same month (all unchanged)", r["hub-repull"][0], r["hub-repull"][1]),
         ("sqlite3 CLI .import with a primary key, no validation", *r["sqlite3-import"]),
         ("plain Python csv + sqlite3", *r["python-plain"]),
         ("pandas", *r["pandas"])]
print(f"\n{n:,} claim rows; wall seconds, rows/s, peak memory, time relative to the hub")
print(f"{'tool':<80} {'wall':>8} {'rows/s':>10} {'peak MB':>8} {'× hub':>7}")
for name, wall, kb in table:
    print(f"{name:<80} {wall:>8.2f} {n / wall:>10,.0f} {kb / 1024:>8.0f} {wall / hub_wall:>7.2f}")
PYEOF
