#!/usr/bin/env bash
# Installs the Debian packages the hub builds against, when they are missing.
# Called by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail
need=(libcurl4-openssl-dev libxml2-dev libsqlite3-dev libzstd-dev zlib1g-dev pkg-config)
for arg in "$@"; do
  case "$arg" in
    # --browser: also what the end-to-end inbox test drives (Chromium, its WebDriver, Chinese fonts).
    --browser) need+=(chromium chromium-driver fonts-noto-cjk) ;;
    # --postgres: Debian's PostgreSQL server and psql (the tests start a throwaway cluster of it).
    --postgres) need+=(postgresql postgresql-client) ;;
    # --bench: what Benchmarks/ compares with and drives (the sqlite3 CLI, wrk, Python's venv, PostgreSQL).
    --bench) need+=(sqlite3 wrk python3-venv postgresql postgresql-client) ;;
    *) echo "未知参数：$arg（可用 --browser、--postgres、--bench）" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "安装缺少的系统包：${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "需要 Swift 6 工具链（swift 命令）" >&2; exit 1; }
