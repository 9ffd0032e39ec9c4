#!/usr/bin/env bash
# What a gateway's per-statement CPU costs in pgbench throughput on this machine: the
# plain relay of pg_bench.sh, made to burn BURN µs of its own CPU time on every read
# from the client before forwarding it (pg_relay.c's third argument), for several BURN
# values, alternating with direct runs. Prints each run's tps, ratio to direct and the
# relay's CPU time per transaction. Gatehouse's own CPU per transaction (pg_ab.sh,
# pg_bench.sh) read against this curve says how far any gateway doing that much work
# per statement can get here.
#
#   benches/pg_budget.sh
#
# Knobs (environment): BURNS ("0 5 10 20 30"), CLIENTS ("8 1"), MODES ("simple"),
# DURATION (8 s), ROUNDS (3), SCALE (10).
set -euo pipefail
. "$(dirname "$0")/pg_gateway.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
pg_bench_start budget
export PGSSLMODE=disable PGPASSWORD=svc-pw
cc -O2 -pthread -o "$WORK/pg_relay" "$HERE/pg_relay.c"

BURNS=${BURNS:-0 5 10 20 30}
declare -A PORT PID
for b in $BURNS; do
  PORT[$b]=$(free_port)
  "$WORK/pg_relay" "${PORT[$b]}" "$PG_PORT" "$b" &
  PID[$b]=$!; PIDS+=("$!")
  wait_port "${PORT[$b]}"
done

run() { # $1 port $2 mode $3 clients $4 relay pid or "" -> "tps cpu-us-per-tx"
  local out before=0 tx tps
  [ -n "$4" ] && before=$(cpu_ticks "$4")
  out=$(pgbench -n -S -M "$2" -c "$3" -j "$3" -T "${DURATION:-8}" -h 127.0.0.1 -p "$1" -U svc app 2>&1)
  tps=$(echo "$out" | awk '/^tps = / { print int($3) }' | tail -1)
  tx=$(echo "$out" | awk -F': ' '/actually processed/ { split($2, a, "/"); print a[1] }')
  [ -z "$4" ] && { echo "$tps -"; return; }
  echo "$tps $(cpu_us_per_tx "$before" "$4" "$tx")"
}
echo "# pgbench -S, ${DURATION:-8}s per run, against direct and a relay burning BURN µs of CPU per client read"
echo "# clients mode round: direct tps | BURN: tps (ratio) relay CPU µs/tx ..."
for c in ${CLIENTS:-8 1}; do
  for m in ${MODES:-simple}; do
    for r in $(seq "${ROUNDS:-3}"); do
      read -r d _ <<< "$(run "$PG_PORT" "$m" "$c" "")"
      line=$(printf '%s %-8s r%s: direct %6d' "$c" "$m" "$r" "$d")
      order=$BURNS
      [ $((r % 2)) = 0 ] && order=$(echo "$BURNS" | tr ' ' '\n' | tac | tr '\n' ' ')
      declare -A res=()
      for b in $order; do res[$b]=$(run "${PORT[$b]}" "$m" "$c" "${PID[$b]}"); done
      for b in $BURNS; do
        read -r t cpu <<< "${res[$b]}"
        line+=$(awk -v b="$b" -v t="$t" -v d="$d" -v cpu="$cpu" 'BEGIN { printf " | %2dus: %6d (%.2f) %5.1f", b, t, t / d, cpu }')
      done
      echo "$line"
    done
  done
done
