#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer) of the CSV, JSON, NDJSON, XML and XLSX decoders, the
# mapping loader, the rule expression language and the photo sanitizer. Any crash fails the run; its input is kept
# in var/fuzz/crashes/ — copy it to Tests/Corpus/fuzz-regressions/TARGET/ to make it a test.
#   scripts/fuzz.sh            20 seconds per target (what CI runs)
#   scripts/fuzz.sh 600        ten minutes per target
set -uo pipefail
cd "$(dirname "$0")/.."
budget="${1:-20}"
swift build --scratch-path .build-fuzz --product HubFuzz --sanitize=fuzzer -Xswiftc -DFUZZING -Xcc -DHUB_FUZZING 2>&1 | tail -n 1
bin=.build-fuzz/debug/HubFuzz
mkdir -p var/fuzz/crashes
passed=0; failed=0; total=0
for target in csv json ndjson xml xlsx mapping expression photo; do
  corpus="var/fuzz/corpus/$target"; mkdir -p "$corpus"
  case "$target" in
    csv) cp Tests/Corpus/csv/*.csv Mappings/samples/*.csv "$corpus"/ 2>/dev/null ;;
    json) cp Tests/Corpus/json/*.json "$corpus"/ ;;
    ndjson) printf '{"event_id":"E1","start":"2026-10-01 08:00:00"}\n{"a":[1,2,{"b":null}]}\n' > "$corpus/seed.ndjson" ;;
    xml) find Tests/Corpus/xml -name "*.xml" -size -10k -exec cp {} "$corpus"/ \; ;;
    xlsx) ls var/sim/*.xlsx >/dev/null 2>&1 && cp var/sim/*.xlsx "$corpus"/ ;;
    mapping) cp Mappings/*.yaml Mappings/types/*.yaml Mappings/rules/*.yaml "$corpus"/ ;;
    photo) cp Tests/Corpus/photo/* "$corpus"/ ;;
    expression) printf 'total_cost >= 50000 or self_pay > 20000' > "$corpus/1"; printf "t in ['一级', '二级'] and months_between(d, date('2026-10-31')) < 6" > "$corpus/2" ;;
  esac
  log="var/fuzz/$target.log"
  HUB_FUZZ_TARGET=$target HUB_TYPES=Mappings/types "$bin" "$corpus" -max_total_time="$budget" -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="var/fuzz/crashes/$target-" -print_final_stats=1 > "$log" 2>&1
  rc=$?
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  total=$((total + ${runs:-0}))
  if [ $rc -eq 0 ]; then passed=$((passed + 1)); echo "fuzz $target: ${runs:-0} executions, no crash"
  else failed=$((failed + 1)); echo "fuzz $target: CRASH after ${runs:-?} executions — see $log and var/fuzz/crashes/"; fi
done
echo "fuzz: $total executions in all"
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
