#!/usr/bin/env bash
# Runs the whole test suite. Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
