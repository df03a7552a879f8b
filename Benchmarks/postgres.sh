#!/usr/bin/env bash
# The claims job of Benchmarks/run.sh on PostgreSQL, beside its floor and the SQLite store, in one run:
#   - the hub: pull the roster, pull N claims over HTTP (connector, decoder, mapping, validation,
#     COPY into a staging table and one upsert per batch), the join rule, a re-pull of the same month;
#   - the floor: psql's \copy of the same CSV into a table keyed on the claim id (no validation, no
#     provenance, no change history);
#   - the hub on its embedded SQLite store, same job.
# A durable throwaway cluster (fsync on, scram-sha-256 password) on 127.0.0.1, as a server would run.
#   Benchmarks/postgres.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/lib.sh
pgdir="/tmp/hub-pg-bench-$$"
trap 'kill $SERVER 2>/dev/null || true; scripts/pg-cluster.sh stop "$pgdir"' EXIT
while IFS='=' read -r key value; do export "$key=$value"; done < <(scripts/pg-cluster.sh start "$pgdir" --durable)
PSQL=(psql "postgresql://hub@127.0.0.1:$PGPORT/hub" -X -q -v ON_ERROR_STOP=1)
swift build -c release --product hubd 2>&1 | tail -n 1
HUBD=.build/release/hubd
rm -f "$B/results.txt" "$B"/*.sqlite*
PG="$HUB_PG_URL&schema=bench"
measure pg-roster "$HUBD" pull roster --period 2026-10 --db "$PG" --mappings "$M" --skip-rules --no-archive
measure pg-claims "$HUBD" pull claims --period 2026-10 --db "$PG" --mappings "$M" --skip-rules --no-archive
measure pg-rules "$HUBD" rules eval --period 2026-10 --db "$PG" --mappings "$M"
measure pg-repull "$HUBD" pull claims --period 2026-10 --db "$PG" --mappings "$M" --skip-rules --no-archive
"${PSQL[@]}" -c "CREATE TABLE copy_floor (setl_id TEXT PRIMARY KEY, psn_no TEXT, certno TEXT, psn_name TEXT, med_type TEXT, setl_time TEXT,
  medfee_sumamt NUMERIC, hifp_pay NUMERIC, psn_part_amt NUMERIC)"
measure psql-copy "${PSQL[@]}" -c "\\copy copy_floor FROM '$B/data/claims.csv' WITH (FORMAT csv, HEADER true)"
measure sqlite-roster "$HUBD" pull roster --period 2026-10 --db "$B/hub.sqlite" --mappings "$M" --skip-rules --no-archive
measure sqlite-claims "$HUBD" pull claims --period 2026-10 --db "$B/hub.sqlite" --mappings "$M" --skip-rules --no-archive
measure sqlite-rules "$HUBD" rules eval --period 2026-10 --db "$B/hub.sqlite" --mappings "$M"
alerts_pg=$(grep -o '预警 [0-9]* 条' "$B/pg-rules.out" | head -1); alerts_sqlite=$(grep -o '预警 [0-9]* 条' "$B/sqlite-rules.out" | head -1)

python3 - "$N" "$B/results.txt" "$alerts_pg" "$alerts_sqlite" <<'PYEOF'
import sys
n = int(sys.argv[1]); r = {l.split()[0]: (float(l.split()[1]), int(l.split()[2])) for l in open(sys.argv[2])}
floor = r["psql-copy"][0]
rows = [("PostgreSQL: hub claims pull (HTTP, decode, map, validate, COPY + upsert)", "pg-claims"),
        ("PostgreSQL: psql \\copy into a keyed table (the floor)", "psql-copy"),
        ("PostgreSQL: hub re-pull of the same month (all unchanged)", "pg-repull"),
        ("PostgreSQL: hub join rule", "pg-rules"),
        ("PostgreSQL: hub roster pull (300,000 persons)", "pg-roster"),
        ("SQLite: hub claims pull", "sqlite-claims"),
        ("SQLite: hub join rule", "sqlite-rules"),
        ("SQLite: hub roster pull", "sqlite-roster")]
print(f"\n{n:,} claim rows; wall seconds, rows/s, hub peak memory (client process), time relative to psql \\copy")
print(f"{'step':<78} {'wall':>8} {'rows/s':>10} {'peak MB':>8} {'× copy':>7}")
for name, key in rows:
    wall, kb = r[key]
    print(f"{name:<78} {wall:>8.2f} {n / wall:>10,.0f} {kb / 1024:>8.0f} {wall / floor:>7.2f}")
print(f"alerts: PostgreSQL {sys.argv[3]}, SQLite {sys.argv[4]}")
PYEOF
