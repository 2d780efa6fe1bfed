#!/usr/bin/env bash
# Runs a throw-away PostgreSQL 15 cluster for tests: `start DIR` prints its URL, `stop DIR`;
# `resume DIR` starts a stopped one again on the same port and data (fault tests).
# The server is installed but not running on these machines, and initdb refuses root,
# so the cluster belongs to the `postgres` user when we are root.
set -euo pipefail

cmd=${1:?usage: postgres.sh start|stop|resume DIR}
dir=${2:?usage: postgres.sh start|stop|resume DIR}
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_owner "$pgbin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
CONF
  as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  as_owner "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
    -c "CREATE DATABASE appstore" >/dev/null
  echo "$port" >"$dir/port"
  echo "postgresql://postgres@127.0.0.1:$port/appstore"
  ;;
resume)
  as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/appstore"
  ;;
stop)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$pgbin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || true
  fi
  ;;
*)
  echo "usage: postgres.sh start|stop|resume DIR" >&2
  exit 2
  ;;
esac
