#!/usr/bin/env bash
# PostgreSQL proxy benchmark: pgbench select-only (-S) with 1 and 8 clients in simple
# and extended modes, alternating direct / Gatehouse / pgbouncer / a plain C relay on
# this machine, and a 2,000,000-row SELECT with and without masking. Prints ratios to
# direct, and each proxy's own CPU time per transaction (user + system, from
# /proc/PID/stat), which this VM's noise moves less than tps. Everything runs on
# 127.0.0.1 in a temp dir and is stopped at the end.
#
#   CARGO_TARGET_DIR=/var/tmp/gatehouse-target-release cargo build --profile bench-fast --bin gatehouse
#   benches/pg_bench.sh [GATEHOUSE_BIN]
#
# Knobs (environment): DURATION (s per pgbench run, default 10), ROUNDS (default 3),
# SCALE (pgbench scale, default 10), BULK_ROWS (default 2000000).
set -euo pipefail
. "$(dirname "$0")/pg_gateway.sh"

GATEHOUSE=${1:-/var/tmp/gatehouse-target-release/bench-fast/gatehouse}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-10}
BULK_ROWS=${BULK_ROWS:-2000000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/gh-pgbench.XXXXXX)
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
PG_PORT=$(free_port); GH_PORT=$(free_port); BOUNCER_PORT=$(free_port); RELAY_PORT=$(free_port); ADMIN_PORT=$(free_port)

# ---------------------------------------------------------------- PostgreSQL
PGDATA_DIR=$WORK/data
echo "$SUPER_PW" > "$WORK/pw"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$WORK"
as_pg "$BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=scram-sha-256 --pwfile="$WORK/pw" -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$WORK/postgres.log" -w -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK -c max_connections=100 -c fsync=off -c shared_buffers=256MB" start >/dev/null
export PGPASSWORD=$SUPER_PW PGSSLMODE=disable
psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "CREATE ROLE svc LOGIN PASSWORD '$SVC_PW'" -c "CREATE DATABASE app OWNER svc"
export PGPASSWORD=$SVC_PW
pgbench -q -i -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U svc app >/dev/null 2>&1
psql -q -h 127.0.0.1 -p "$PG_PORT" -U svc -d app -c "CREATE TABLE bulk AS SELECT g AS id, 'user' || g || '@example.com' AS email, md5(g::text) AS note FROM generate_series(1, $BULK_ROWS) g" -c "VACUUM ANALYZE bulk"

# ---------------------------------------------------------------- Gatehouse
cat > "$WORK/nomask.rules" <<'RULES'
rule allow_sql { when pg.statement.kind in [select, set, begin, commit, rollback, other] then allow }
RULES
cp "$ROOT/examples/starter.rules" "$WORK/starter.rules"
# The mask measured on the bulk select: a whole column by name.
cat > "$WORK/colmask.rules" <<'RULES'
rule allow_sql { when pg.statement.kind in [select, set, begin, commit, rollback, other] then allow }
rule mask_email { when pg.statement.kind == select then mask columns ["email"] with "****" }
RULES
start_gatehouse() { # $1: rules file
  local dir=$WORK/gh-$(basename "$1" .rules)-$RANDOM
  pg_gateway_config "$dir" "$1" "$GH_PORT" "$ADMIN_PORT" "$PG_PORT"
  GH_BENCH_PG_PASSWORD=$SVC_PW GH_BENCH_ADMIN_TOKEN=$ADMIN_TOKEN RUST_LOG=warn "$GATEHOUSE" serve -c "$dir/gatehouse.toml" 2>"$dir/serve.log" &
  GH_PID=$!
  PIDS+=("$GH_PID")
  wait_port "$GH_PORT"; wait_port "$ADMIN_PORT"
  GH_TOKEN=$(GATEHOUSE_ADMIN_URL=http://127.0.0.1:$ADMIN_PORT GATEHOUSE_ADMIN_TOKEN=$ADMIN_TOKEN \
    "$GATEHOUSE" token issue --agent bench --target app --ttl 2h 2>/dev/null || true)
}
stop_gatehouse() { kill "$GH_PID" 2>/dev/null; wait "$GH_PID" 2>/dev/null || true; }

# ---------------------------------------------------------------- pgbouncer, relay
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
default_pool_size = 20
max_client_conn = 100
logfile = $WORK/pgbouncer.log
EOF2
[ "$(id -u)" = 0 ] && chown postgres "$WORK"/pgbouncer.ini "$WORK"/userlist.txt
as_pg pgbouncer "$WORK/pgbouncer.ini" >/dev/null 2>&1 &
PIDS+=($!)
cc -O2 -pthread -o "$WORK/pg_relay" "$HERE/pg_relay.c"
"$WORK/pg_relay" "$RELAY_PORT" "$PG_PORT" &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
wait_port "$BOUNCER_PORT"; wait_port "$RELAY_PORT"
BOUNCER_PID=$(pgrep -f "^pgbouncer $WORK/pgbouncer.ini" | head -1)
[ -n "$BOUNCER_PID" ] || { echo "cannot find the pgbouncer process" >&2; exit 1; }
# `as_pg` runs it under runuser: stop pgbouncer itself at exit, not only runuser.
PIDS+=("$BOUNCER_PID")

# ---------------------------------------------------------------- runs
run() { # $1 port $2 user $3 password $4 db $5 clients $6 mode [$7 proxy pid] -> "tps cpu-us-per-tx"
  local before=0 out tps tx
  [ -n "${7:-}" ] && before=$(cpu_ticks "$7")
  out=$(PGPASSWORD=$3 pgbench -n -S -M "$6" -c "$5" -j "$5" -T "$DURATION" -h 127.0.0.1 -p "$1" -U "$2" "$4" 2>/dev/null)
  tps=$(echo "$out" | awk '/^tps = / { print int($3) }' | tail -1)
  tx=$(echo "$out" | awk -F': ' '/actually processed/ { split($2, a, "/"); print a[1] }')
  if [ -n "${7:-}" ] && [ "${tx:-0}" -gt 0 ]; then
    echo "$tps $(cpu_us_per_tx "$before" "$7" "$tx")"
  else
    echo "$tps -"
  fi
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

start_gatehouse "$WORK/starter.rules"
if [ -z "$GH_TOKEN" ]; then echo "cannot mint a token (gatehouse token mint)" >&2; exit 1; fi
echo "# pgbench -S, scale $SCALE, ${DURATION}s per run, $ROUNDS rounds, median tps (ratio to direct)"
echo "| clients | mode | direct | gatehouse | pgbouncer | plain relay |"
echo "| --- | --- | --- | --- | --- | --- |"
CPU_ROWS=()
for clients in 1 8; do
  for mode in simple extended; do
    d=(); g=(); b=(); r=(); gc=(); bc=(); rc=()
    for _ in $(seq "$ROUNDS"); do
      read -r t _ < <(run "$PG_PORT" svc "$SVC_PW" app "$clients" "$mode"); d+=("$t")
      read -r t c < <(run "$GH_PORT" bench "$GH_TOKEN" app "$clients" "$mode" "$GH_PID"); g+=("$t"); gc+=("$c")
      read -r t c < <(run "$BOUNCER_PORT" svc "$SVC_PW" app "$clients" "$mode" "$BOUNCER_PID"); b+=("$t"); bc+=("$c")
      read -r t c < <(run "$RELAY_PORT" svc "$SVC_PW" app "$clients" "$mode" "$RELAY_PID"); r+=("$t"); rc+=("$c")
    done
    D=$(printf '%s\n' "${d[@]}" | median); G=$(printf '%s\n' "${g[@]}" | median)
    B=$(printf '%s\n' "${b[@]}" | median); R=$(printf '%s\n' "${r[@]}" | median)
    ratio() { awk -v a="$1" -v b="$D" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
    echo "| $clients | $mode | $D | $G ($(ratio "$G")) | $B ($(ratio "$B")) | $R ($(ratio "$R")) |"
    CPU_ROWS+=("| $clients | $mode | $(printf '%s\n' "${gc[@]}" | median) | $(printf '%s\n' "${bc[@]}" | median) | $(printf '%s\n' "${rc[@]}" | median) |")
  done
done
stop_gatehouse
echo
echo "# the proxy's own CPU time per transaction, user + system, µs (median of $ROUNDS)"
echo "| clients | mode | gatehouse | pgbouncer | plain relay |"
echo "| --- | --- | --- | --- | --- |"
printf '%s\n' "${CPU_ROWS[@]}"

bulk() { # $1 port $2 user $3 password $4 db -> seconds
  local s e
  s=$(date +%s.%N)
  PGPASSWORD=$3 psql -X -q -At -h 127.0.0.1 -p "$1" -U "$2" -d "$4" -c "SELECT id, email, note FROM bulk" > /dev/null
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'
}
echo
echo "# SELECT of $BULK_ROWS rows through psql (wall seconds, median of $ROUNDS; ratio = direct time / time)"
echo "| policy | direct | gatehouse | ratio |"
echo "| --- | --- | --- | --- |"
for rules in nomask colmask starter; do
  start_gatehouse "$WORK/$rules.rules"
  d=(); g=()
  for _ in $(seq "$ROUNDS"); do
    d+=("$(bulk "$PG_PORT" svc "$SVC_PW" app)")
    g+=("$(bulk "$GH_PORT" bench "$GH_TOKEN" app)")
  done
  stop_gatehouse
  D=$(printf '%s\n' "${d[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  G=$(printf '%s\n' "${g[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  echo "| $rules | $D | $G | $(awk -v d="$D" -v g="$G" 'BEGIN { printf "%.2f", d / g }') |"
done
