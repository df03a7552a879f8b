#!/usr/bin/env bash
# The main job on the embedded default: pulls every bundled feed into var/hub.sqlite and
# prints the counts per source. Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product hubd 2>&1 | tail -n 3
.build/release/hubd demo "$@"
echo
.build/release/hubd runs --limit 10
