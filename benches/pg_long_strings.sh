#!/usr/bin/env bash
# Long query strings (issue #19, item 4): STRINGS sessions each send a query string of
# STATEMENTS `SELECT 1;` at once, then one sends OVER statements, while a probe session
# times `SELECT 1` every 20 ms (benches/pg_long_strings.py); against direct PostgreSQL
# and Gatehouse (starter policy), ROUNDS times. Everything runs on 127.0.0.1 in a temp
# dir and is stopped at the end.
#
#   benches/pg_long_strings.sh [GATEHOUSE_BIN]
#
# Knobs (environment): STRINGS (3), STATEMENTS (5900, i.e. 53 KiB), OVER (20000),
# ROUNDS (2).
set -euo pipefail
. "$(dirname "$0")/pg_gateway.sh"

GATEHOUSE=${1:-/var/tmp/gatehouse-target-release/bench-fast/gatehouse}
STRINGS=${STRINGS:-3}
STATEMENTS=${STATEMENTS:-5900}
OVER=${OVER:-20000}
ROUNDS=${ROUNDS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
pg_bench_start pglong
ADMIN_PORT=$(free_port); GH_PORT=$(free_port)
dir=$WORK/gh
pg_gateway_config "$dir" "$ROOT/examples/starter.rules" "$GH_PORT" "$ADMIN_PORT" "$PG_PORT"
GH_BENCH_PG_PASSWORD=svc-pw GH_BENCH_ADMIN_TOKEN=admin-tok RUST_LOG=warn "$GATEHOUSE" serve -c "$dir/gatehouse.toml" 2>"$dir/serve.log" &
PIDS+=("$!")
wait_port "$ADMIN_PORT"; wait_port "$GH_PORT"
TOKEN=$(GATEHOUSE_ADMIN_URL=http://127.0.0.1:$ADMIN_PORT GATEHOUSE_ADMIN_TOKEN=admin-tok "$GATEHOUSE" token issue --agent bench --target app --ttl 2h 2>/dev/null)
for round in $(seq "$ROUNDS"); do
  echo "round $round direct:    $(python3 "$HERE/pg_long_strings.py" "host=127.0.0.1 port=$PG_PORT user=svc password=svc-pw dbname=app sslmode=disable" "$STRINGS" "$STATEMENTS" "$OVER")"
  echo "round $round gatehouse: $(python3 "$HERE/pg_long_strings.py" "host=127.0.0.1 port=$GH_PORT user=bench password=$TOKEN dbname=app sslmode=disable" "$STRINGS" "$STATEMENTS" "$OVER")"
done
