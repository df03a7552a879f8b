#!/usr/bin/env bash
# The same job, side by side: N medical-claim rows (default 1,000,000, ~100 MB CSV) → rename,
# parse the date, check the ID's check character, keep or reject → store in SQLite with a key →
# join the large claims (self-pay ≥ 20,000) with a 300,000-person roster into alerts.
#   Benchmarks/run.sh [N]
# Prints wall time, rows/s, peak memory and each tool's time relative to the hub.
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/lib.sh
swift build -c release --product hubd 2>&1 | tail -n 1
HUBD=.build/release/hubd
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
r = {name: (float(w), int(kb)) for name, w, kb, *_ in rows}
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
