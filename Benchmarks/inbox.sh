#!/usr/bin/env bash
# The inbox under load: a store with the simulated county's roster and N extra cases (default
# 500,000), `hubd serve` on 127.0.0.1, and wrk with 100 concurrent clients on the inbox page of
# a township verifier and of a county analyst. Prints wrk's latency distribution.
#   Benchmarks/inbox.sh [N] [seconds]                the embedded SQLite store (var/bench/inbox.sqlite, kept)
#   Benchmarks/inbox.sh --postgres [N] [seconds]     a throwaway PostgreSQL cluster (fsync off: the
#                                                    load is reads; the cluster is seeded, measured, removed)
set -euo pipefail
cd "$(dirname "$0")/.."
PG=""; [ "${1:-}" = "--postgres" ] && { PG=1; shift; }
scripts/setup.sh --bench ${PG:+--postgres}
N="${1:-500000}"; SECS="${2:-20}"
B=var/bench
swift build -c release --product hubd 2>&1 | tail -n 1
HUBD=.build/release/hubd
if [ -n "$PG" ]; then
  pgdir="/tmp/hub-pg-inbox-$$"
  trap 'scripts/pg-cluster.sh stop "$pgdir"' EXIT
  while IFS='=' read -r key value; do export "$key=$value"; done < <(scripts/pg-cluster.sh start "$pgdir")
  DB="$HUB_PG_URL"
  q() { psql "postgresql://hub@127.0.0.1:$PGPORT/hub" -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }
  started=$(date +%s)
  "$HUBD" demo --db "$DB" --sim-dir "$B/sim" > "$B/inbox-demo.out" 2>&1
  psql "postgresql://hub@127.0.0.1:$PGPORT/hub" -X -q -v ON_ERROR_STOP=1 -v n="$N" -f Benchmarks/seed_cases.sql
  echo "PostgreSQL store: demo and $N seeded cases in $(( $(date +%s) - started )) s"
else
  DB="$B/inbox.sqlite"
  q() { sqlite3 "$DB" "$1"; }
  if [ ! -f "$DB" ] || [ "$(q 'SELECT count(*) FROM cases' 2>/dev/null || echo 0)" -lt "$N" ]; then
    rm -f "$DB" "$DB"-* "$DB.pw"
    "$HUBD" demo --db "$DB" --sim-dir "$B/sim" > "$B/inbox-demo.out" 2>&1
    python3 Benchmarks/seed_cases.py "$DB" "$N"
  fi
fi
TOWNSHIP=$(q "SELECT township_code FROM cases WHERE township_code IS NOT NULL GROUP BY township_code ORDER BY count(*) DESC LIMIT 1")
# The benchmark users' password: random, made once per benchmark store, kept beside it.
PWFILE="$B/inbox.pw"; [ -z "$PG" ] && PWFILE="$DB.pw"
[ -s "$PWFILE" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(18))' > "$PWFILE"
BENCH_PW=$(cat "$PWFILE"); export BENCH_PW
"$HUBD" users add bench-verifier --name 压测核查员 --role verifier --township "$TOWNSHIP" --password-env BENCH_PW --db "$DB" > /dev/null 2>&1 || true
"$HUBD" users add bench-analyst --name 压测县级 --role analyst --password-env BENCH_PW --db "$DB" > /dev/null 2>&1 || true
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$HUBD" serve --db "$DB" --port "$PORT" --host 127.0.0.1 --no-scheduler > "$B/inbox-serve.out" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; [ -z "$PG" ] || scripts/pg-cluster.sh stop "$pgdir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.2; done

login() {  # username → session cookie "hub_session=…"
  local jar; jar=$(mktemp)
  local csrf; csrf=$(curl -s -c "$jar" "http://127.0.0.1:$PORT/login" | sed -n 's/.*name="_csrf" value="\([^"]*\)".*/\1/p' | head -1)
  curl -s -b "$jar" -c "$jar" -o /dev/null --data-urlencode "username=$1" --data-urlencode "password=$BENCH_PW" --data-urlencode "_csrf=$csrf" "http://127.0.0.1:$PORT/login"
  awk '$6 ~ /session/ {print $6 "=" $7}' "$jar"; rm -f "$jar"
}
TOWNS=$(q "SELECT DISTINCT township_code FROM cases WHERE township_code IS NOT NULL ORDER BY 1")
for t in $TOWNS; do
  "$HUBD" users add "bench-v-$t" --name 压测核查员 --role verifier --township "$t" --password-env BENCH_PW --db "$DB" > /dev/null 2>&1 || true
done
CASES=$(q "SELECT count(*) FROM cases"); IN_T=$(q "SELECT count(*) FROM cases WHERE township_code = '$TOWNSHIP'")
for who in bench-verifier bench-analyst; do
  COOKIE=$(login $who)
  [ -n "$COOKIE" ] || { echo "登录失败：$who"; exit 1; }
  BYTES=$(curl -s -H "Cookie: $COOKIE" "http://127.0.0.1:$PORT/inbox" | wc -c)
  echo
  echo "== /inbox as $who ($CASES cases in the store, $IN_T in the verifier's township; page $BYTES bytes), 100 clients, ${SECS}s"
  wrk -t2 -c100 -d"${SECS}s" --latency -H "Cookie: $COOKIE" "http://127.0.0.1:$PORT/inbox" | sed -n '/Latency/,/Transfer/p'
done

# A day's mix: every township's verifier, pages 1–3 and a few filters, while the store changes
# every second (a visit recorded, a pull landing), so cached pages keep being recomputed.
LUA="$B/inbox-mix.lua"
{
  echo "cookies = {"
  for t in $TOWNS; do echo "  \"$(login "bench-v-$t")\","; done
  echo "}"
  cat <<'LUAEOF'
paths = { "/inbox", "/inbox?page=2", "/inbox?page=3", "/inbox?status=open", "/inbox?overdue=1", "/inbox?severity=high" }
math.randomseed(20261123)
request = function()
  local c = cookies[math.random(#cookies)]
  local p = paths[math.random(#paths)]
  return wrk.format("GET", p, { ["Cookie"] = c })
end
LUAEOF
} > "$LUA"
# Warm-up (not measured): the first look at each page computes it; a server that has run for a
# while has them. The cold figures are printed too.
echo
echo "== cold: the same mix on an empty cache, first 3 s"
wrk -t2 -c100 -d3s --latency -s "$LUA" "http://127.0.0.1:$PORT/" | sed -n '/Latency Distribution/,/Requests\/sec/p'
( while kill -0 $SERVER 2>/dev/null; do
    if [ -n "$PG" ]; then q "UPDATE cases SET deadline = deadline WHERE id = floor(random() * $CASES)::bigint + 1" > /dev/null 2>&1 || true
    else q "UPDATE cases SET deadline = deadline WHERE id = abs(random()) % $CASES + 1" 2>/dev/null || true; fi
    sleep 1
  done ) &
WRITER=$!
echo
echo "== /inbox, $(echo $TOWNS | wc -w) verifiers × 6 pages/filters at random, the store written every second, 100 clients, ${SECS}s"
wrk -t2 -c100 -d"${SECS}s" --latency -s "$LUA" "http://127.0.0.1:$PORT/" | sed -n '/Latency/,/Transfer/p'
kill $WRITER 2>/dev/null || true
