#!/usr/bin/env bash
# A city's month (default 10 counties, each a real county's size) on PostgreSQL with 1 and 2
# hubd workers, and on SQLite with one process, in the same run: see Benchmarks/city.py.
# A durable throwaway cluster (fsync on, scram-sha-256 password) on 127.0.0.1, as a server would run.
#   Benchmarks/city.sh [counties] [scale]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --postgres
pgdir="/tmp/hub-pg-city-$$"
trap 'scripts/pg-cluster.sh stop "$pgdir"' EXIT
while IFS='=' read -r key value; do export "$key=$value"; done < <(scripts/pg-cluster.sh start "$pgdir" --durable)
swift build -c release --product hubd 2>&1 | tail -n 1
python3 Benchmarks/city.py .build/release/hubd --postgres "$HUB_PG_URL" --counties "${1:-10}" --scale "${2:-1.0}" --workers 1 2 --sqlite
