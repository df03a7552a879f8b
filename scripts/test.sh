#!/usr/bin/env bash
# Runs the whole test suite: swift-testing tests (real SQLite files, real HTTP on 127.0.0.1),
# then the township inbox in a real headless Chromium. Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser
swift build --build-tests
swift test --skip-build "$@"
python3 Tests/Browser/inbox_e2e.py .build/debug/hubd
