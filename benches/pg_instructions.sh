#!/usr/bin/env bash
# Gateway user-space instructions per pgbench transaction, counted by callgrind: a
# measure this VM's ±20-30 % timing noise does not move, for comparing builds.
#
#   benches/pg_instructions.sh [GATEHOUSE_BIN] [MODE]      # MODE: simple (default) | extended | prepared
#
# Starts PostgreSQL 15 (scale 10) and `gatehouse serve` with examples/starter.rules
# under `valgrind --tool=callgrind`, runs `pgbench -S -c 2` for 2x500 and 2x2500
# transactions (counters zeroed before and dumped after each run; a fresh gateway for
# each, so both include the same two logins), and prints
# (Ir(2x2500) - Ir(2x500)) / 4000. Needs valgrind (apt-get install -y valgrind).
set -euo pipefail
. "$(dirname "$0")/pg_gateway.sh"

GATEHOUSE=${1:-/var/tmp/gatehouse-target-release/bench-fast/gatehouse}
MODE=${2:-simple}
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 1; }
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/gh-pginstr.XXXXXX)
chmod 755 "$WORK"
GH_PID=
cleanup() {
  [ -n "$GH_PID" ] && kill "$GH_PID" 2>/dev/null || true
  as_pg "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT=$(free_port)
pg_bench_db "$BIN" "$WORK" "$PG_PORT" 10
export PGSSLMODE=disable

count() { # $1: transactions per client -> gateway Ir for the run
  local dir=$WORK/gh-$1 gh_port admin_port token out
  gh_port=$(free_port); admin_port=$(free_port)
  pg_gateway_config "$dir" "$(cd "$(dirname "$0")/.." && pwd)/examples/starter.rules" "$gh_port" "$admin_port" "$PG_PORT"
  GH_BENCH_PG_PASSWORD=svc-pw GH_BENCH_ADMIN_TOKEN=admin-tok RUST_LOG=warn \
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" "$GATEHOUSE" serve -c "$dir/gatehouse.toml" 2>"$dir/serve.log" &
  GH_PID=$!
  wait_port "$admin_port"; wait_port "$gh_port"
  token=$(GATEHOUSE_ADMIN_URL=http://127.0.0.1:$admin_port GATEHOUSE_ADMIN_TOKEN=admin-tok \
    "$GATEHOUSE" token issue --agent bench --target app --ttl 1h 2>/dev/null)
  callgrind_control -z "$GH_PID" >/dev/null 2>&1
  PGPASSWORD=$token pgbench -n -S -M "$MODE" -c 2 -j 2 -t "$1" -h 127.0.0.1 -p "$gh_port" -U bench app >/dev/null 2>&1 \
    || { echo "pgbench through the gateway failed" >&2; exit 1; }
  callgrind_control -d "$GH_PID" >/dev/null 2>&1
  kill "$GH_PID"; wait "$GH_PID" 2>/dev/null || true; GH_PID=
  out=$(ls -S "$dir"/cg.* | head -1)
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
small=$(count 500)
large=$(count 2500)
echo "gateway user-space instructions per transaction ($MODE): $(( (large - small) / 4000 ))  (Ir 2x500 = $small, 2x2500 = $large)"
