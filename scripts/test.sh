#!/usr/bin/env bash
# Runs the whole test suite. Installs what it needs on a fresh machine.
#   1. swift-testing tests: real SQLite files, a real PostgreSQL server (a throwaway cluster started here),
#      real HTTP on 127.0.0.1, real hubd processes
#   2. the township inbox in a real headless Chromium (phone and desktop width, offline, photos)
#   3. crash-resume: 30 SIGKILLs of hubd serve mid-pull, compared with a clean pull; then on PostgreSQL with two
#      workers, one of them killed each time
#   4. libFuzzer on the decoders, mapping loader, expression language and photo sanitizer (20 s per target;
#      FUZZ_SECONDS=600 scripts/test.sh for a longer run)
#   5. the thread sanitizer over the store, pull, rule, case, daemon, web, notification, second-county and
#      archive-and-replay and backup suites
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser --postgres
# A throwaway PostgreSQL cluster for the whole run (its address and password in the environment).
pgdir="/tmp/hub-pg-ci-$$"
trap 'scripts/pg-cluster.sh stop "$pgdir"' EXIT
while IFS='=' read -r key value; do export "$key=$value"; done < <(scripts/pg-cluster.sh start "$pgdir")
[ -n "${HUB_PG_URL:-}" ] || { echo "PostgreSQL 测试集群未能启动（见 $pgdir.initdb.log）" >&2; exit 1; }
export HUB_REQUIRE_POSTGRES=1
swift build --build-tests
swift test --skip-build "$@"
python3 Tests/Browser/inbox_e2e.py .build/debug/hubd
python3 Tests/Reliability/crash_resume.py .build/debug/hubd --kills 30 --seed 7 --scale 0.1
python3 Tests/Reliability/crash_resume.py .build/debug/hubd --kills 20 --seed 11 --scale 0.1 --postgres "$HUB_PG_URL" --workers 2
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
swift build --build-tests --sanitize=thread --scratch-path .build-tsan
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" swift test --skip-build --sanitize=thread --scratch-path .build-tsan \
  --filter "StoreConformanceTests|PullTests|RulesTests|RuleStreamingTests|DaemonTests|WebTests|ServiceTests|NotificationTests|SecondCountyTests|ArchiveReplayTests|BackupTests|PostgresStoreTests|PostgresWorkerTests"
