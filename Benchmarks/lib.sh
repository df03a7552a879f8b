# Shared by the benchmarks that run the hub's claims job: makes the data (if needed), the
# mappings and rule the job uses, serves the data over HTTP on 127.0.0.1, and defines
# `measure NAME COMMAND…` (appends "NAME wall-seconds peak-KB cpu-seconds" to $B/results.txt).
# Expects N (rows); sets B, M, PORT, SERVER.
scripts/setup.sh --bench
N="${1:-1000000}"
B=var/bench
mkdir -p "$B"
if [ ! -f "$B/data/claims.csv" ] || [ "$(($(wc -l < "$B/data/claims.csv") - 1))" != "$N" ]; then
  python3 Benchmarks/generate.py "$B/data" "$N" 300000
fi

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

measure() {  # name, command… → appends "name wall maxrss_kb cpu_seconds"
  local name=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$B/time.txt" "$@" > "$B/$name.out" 2>&1 || { echo "$name failed:"; tail -5 "$B/$name.out"; return 1; }
  read -r wall rss user sys < "$B/time.txt"
  echo "$name $wall $rss $(python3 -c "print($user + $sys)")" >> "$B/results.txt"
}
