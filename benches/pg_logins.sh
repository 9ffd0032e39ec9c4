#!/usr/bin/env bash
# PostgreSQL login latency under load: CLIENTS connections opened at once (psycopg,
# benches/pg_logins.py), each logging in, running `SELECT 1` and staying open until
# all are in; alternating direct PostgreSQL / Gatehouse / pgbouncer per round. Prints
# p50, p99 and max login time (from the moment all clients start to the session
# being ready) and the failures, per target and round, then the medians. Also the
# gateway's CPU time per login. Everything runs on 127.0.0.1 in a temp dir and is
# stopped at the end. PostgreSQL and pgbouncer use SCRAM-SHA-256, like the gateway's
# login to the upstream; clients log in to the gateway with a token over loopback.
#
#   CARGO_TARGET_DIR=/var/tmp/gatehouse-target-release cargo build --profile bench-fast --bin gatehouse
#   benches/pg_logins.sh [GATEHOUSE_BIN]
#
# Knobs (environment): CLIENTS (default 200), ROUNDS (default 5), TIMEOUT (client
# connect timeout, s, default 60).
set -euo pipefail
. "$(dirname "$0")/pg_gateway.sh"

GATEHOUSE=${1:-/var/tmp/gatehouse-target-release/bench-fast/gatehouse}
CLIENTS=${CLIENTS:-200}
ROUNDS=${ROUNDS:-5}
TIMEOUT=${TIMEOUT:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/gh-pglogins.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${PGDATA_DIR:-}" ] && as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

SUPER_PW=bench-super-pw
ADMIN_TOKEN=bench-admin-token-$RANDOM$RANDOM
SVC_PW=bench-svc-pw
PG_PORT=$(free_port); GH_PORT=$(free_port); BOUNCER_PORT=$(free_port); ADMIN_PORT=$(free_port)
MAX_CONN=$((CLIENTS * 2 + 20))

# ---------------------------------------------------------------- PostgreSQL
PGDATA_DIR=$WORK/data
echo "$SUPER_PW" > "$WORK/pw"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$WORK"
as_pg "$BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=scram-sha-256 --pwfile="$WORK/pw" -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$WORK/postgres.log" -w -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK -c max_connections=$MAX_CONN -c fsync=off" start >/dev/null
export PGPASSWORD=$SUPER_PW PGSSLMODE=disable
psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "CREATE ROLE svc LOGIN PASSWORD '$SVC_PW'" -c "CREATE DATABASE app OWNER svc"
unset PGPASSWORD

# ---------------------------------------------------------------- Gatehouse
cp "$ROOT/examples/starter.rules" "$WORK/starter.rules"
dir=$WORK/gh
pg_gateway_config "$dir" "$WORK/starter.rules" "$GH_PORT" "$ADMIN_PORT" "$PG_PORT"
GH_BENCH_PG_PASSWORD=$SVC_PW GH_BENCH_ADMIN_TOKEN=$ADMIN_TOKEN RUST_LOG=warn "$GATEHOUSE" serve -c "$dir/gatehouse.toml" 2>"$dir/serve.log" &
GH_PID=$!
PIDS+=("$GH_PID")
wait_port "$GH_PORT"; wait_port "$ADMIN_PORT"
GH_TOKEN=$(GATEHOUSE_ADMIN_URL=http://127.0.0.1:$ADMIN_PORT GATEHOUSE_ADMIN_TOKEN=$ADMIN_TOKEN \
  "$GATEHOUSE" token issue --agent bench --target app --ttl 2h 2>/dev/null || true)
if [ -z "$GH_TOKEN" ]; then echo "cannot mint a token (gatehouse token issue)" >&2; exit 1; fi

# ---------------------------------------------------------------- pgbouncer
cat > "$WORK/userlist.txt" <<EOF2
"svc" "$SVC_PW"
EOF2
cat > "$WORK/pgbouncer.ini" <<EOF2
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = session
default_pool_size = $CLIENTS
max_client_conn = $MAX_CONN
logfile = $WORK/pgbouncer.log
EOF2
[ "$(id -u)" = 0 ] && chown postgres "$WORK"/pgbouncer.ini "$WORK"/userlist.txt
as_pg pgbouncer "$WORK/pgbouncer.ini" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$BOUNCER_PORT"
# `as_pg` runs it under runuser: stop pgbouncer itself at exit, not only runuser.
BOUNCER_PID=$(pgrep -f "^pgbouncer $WORK/pgbouncer.ini" | head -1)
[ -n "$BOUNCER_PID" ] && PIDS+=("$BOUNCER_PID")

# ---------------------------------------------------------------- runs
dsn() { echo "host=127.0.0.1 port=$1 user=$2 password=$3 dbname=app sslmode=disable"; }
run() { python3 "$HERE/pg_logins.py" "$1" "$CLIENTS" "$TIMEOUT"; }
field() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" | head -1; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "# $CLIENTS concurrent logins + SELECT 1, $ROUNDS rounds (login ms: p50 / p99 / max; failures)"
declare -A P50 P99 MAX FAIL
for round in $(seq "$ROUNDS"); do
  for target in direct gatehouse pgbouncer; do
    case $target in
      direct) out=$(run "$(dsn "$PG_PORT" svc "$SVC_PW")") ;;
      gatehouse)
        before=$(cpu_ticks "$GH_PID")
        out=$(run "$(dsn "$GH_PORT" bench "$GH_TOKEN")")
        out="$out cpu_us_per_login=$(cpu_us_per_tx "$before" "$GH_PID" "$CLIENTS")" ;;
      pgbouncer) out=$(run "$(dsn "$BOUNCER_PORT" svc "$SVC_PW")") ;;
    esac
    echo "round $round $target: $out"
    P50[$target]+="$(echo "$out" | field p50_ms) "
    P99[$target]+="$(echo "$out" | field p99_ms) "
    MAX[$target]+="$(echo "$out" | field max_ms) "
    FAIL[$target]+="$(echo "$out" | sed -n 's/.*failed=\([0-9]*\).*/\1/p' | head -1) "
    sleep 1
  done
done
echo
echo "| target | p50 ms | p99 ms | max ms | failed logins (all rounds) |"
echo "| --- | --- | --- | --- | --- |"
for target in direct gatehouse pgbouncer; do
  m() { printf '%s\n' $1 | median; }
  total=$(printf '%s\n' ${FAIL[$target]} | awk '{ s += $1 } END { print s }')
  echo "| $target | $(m "${P50[$target]}") | $(m "${P99[$target]}") | $(m "${MAX[$target]}") | $total of $((CLIENTS * ROUNDS)) |"
done
echo "(medians over rounds)"
