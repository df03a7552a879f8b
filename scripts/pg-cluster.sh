#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the tests and benchmarks (Debian's postgresql).
#   scripts/pg-cluster.sh start DIR [--durable]   creates and starts it (DIR: a new folder whose parent the
#                                                  user postgres can reach, e.g. under /tmp); prints KEY=VALUE lines:
#                                                  PGPORT, HUB_PG_URL (postgres://hub@127.0.0.1:PORT/hub), PGPASSWORD
#   scripts/pg-cluster.sh stop DIR                stops it and removes DIR
# The hub's user signs in with a password (scram-sha-256), as on a real server. Without
# --durable the cluster skips fsync (a test cluster; its data is thrown away).
# As root, the cluster runs as the unprivileged user postgres (initdb refuses root).
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?folder}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "未安装 PostgreSQL 服务器（Debian：apt-get install postgresql）" >&2; exit 2; }
as=()
if [ "$(id -u)" -eq 0 ]; then as=(runuser -u postgres --); fi
case "$cmd" in
start)
  mkdir -p "$dir"
  [ ${#as[@]} -eq 0 ] || chown postgres "$dir"
  chmod 700 "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --locale=C.UTF-8 --encoding=UTF8 --auth-local=trust --auth-host=scram-sha-256 >"$dir.initdb.log" 2>&1 \
    || { cat "$dir.initdb.log" >&2; exit 1; }
  extra="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${3:-}" = "--durable" ] && extra=""
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB $extra" start >/dev/null
  # On standard input, so that the password is not in any process's arguments.
  "${as[@]}" "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q >/dev/null <<SQL
SET password_encryption = 'scram-sha-256';
CREATE ROLE hub LOGIN PASSWORD '$password';
CREATE DATABASE hub OWNER hub TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8';
SQL
  echo "PGPORT=$port"
  echo "HUB_PG_URL=postgres://hub@127.0.0.1:$port/hub?sslmode=disable"
  echo "PGPASSWORD=$password"
  ;;
stop)
  [ -d "$dir/data" ] && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir" "$dir.initdb.log"
  ;;
*) echo "用法：$0 start|stop 目录" >&2; exit 2 ;;
esac
