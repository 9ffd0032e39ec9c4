#!/usr/bin/env bash
# Kubernetes API proxy benchmark: `get` requests through Gatehouse vs directly
# against the same upstream (tests/kube-upstream), over keep-alive HTTPS
# connections, as kubectl uses them.
#
#   benches/k8s.sh [--no-build] [--requests N] [--rounds R]
#
# Prints, for each path: p50/p90/p99 latency of one client sending requests one after
# the other, and requests/s with 8 concurrent clients. "Added" is through-Gatehouse
# minus direct. Every request through Gatehouse is authenticated (session cached per
# token), parsed, judged by examples/starter.rules, appended to the event log
# (request + decision before forwarding, result after), and forwarded with the held
# token. Results are medians over R rounds.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
requests=5000
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --requests) requests="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/gatehouse-target-release}"
bin="${GATEHOUSE_BIN_DIR:-$CARGO_TARGET_DIR/bench-fast}"
if [ "$build" = 1 ]; then
  cargo build --profile bench-fast --bin gatehouse -p gatehouse -p gatehouse-kube-upstream --bins >&2
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The upstream, with its own CA and token.
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$work/upstream.token"
"$bin/kube-upstream" --dir "$work/up" --token-file "$work/upstream.token" --threads 1 > "$work/up.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$work/up.out" 2>/dev/null && break; sleep 0.05; done
upstream=$(awk '/ready/{print $2}' "$work/up.out")

admin_port=$(free_port)
k8s_port=$(free_port)
admin_token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
cat > "$work/gatehouse.toml" <<EOF
data_dir = "data"
[policy]
files = ["$PWD/examples/starter.rules"]
[admin]
listen = "127.0.0.1:$admin_port"
[[admin.user]]
name = "bench@example.com"
role = "admin"
token = { env = "BENCH_ADMIN_TOKEN" }
[listen]
kubernetes = "127.0.0.1:$k8s_port"
[[target]]
name = "bench-k8s"
protocol = "kubernetes"
upstream = "$upstream"
token = { file = "$work/upstream.token" }
ca = "$work/up/ca.pem"
EOF
(cd "$work" && BENCH_ADMIN_TOKEN="$admin_token" RUST_LOG=warn "$bin/gatehouse" serve -c gatehouse.toml > serve.log 2>&1) &
pids+=($!)
listening() { python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" 2>/dev/null; }
for _ in $(seq 400); do listening "$admin_port" && listening "$k8s_port" && break; sleep 0.05; done
GATEHOUSE_ADMIN_URL="http://127.0.0.1:$admin_port" GATEHOUSE_ADMIN_TOKEN="$admin_token" \
  "$bin/gatehouse" token issue --agent agent:bench --target bench-k8s --ttl 1h > "$work/agent.token" 2>/dev/null

path=/api/v1/namespaces/default/pods/web
run() { # name url ca token concurrency requests
  "$bin/kube-bench" --url "$2" --ca "$3" --token-file "$4" --path "$path" \
    --concurrency "$5" --requests "$6" --warmup 500
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$1'])" "$2"; }

declare -A p50 p90 p99 rps
for name in direct gatehouse; do
  if [ "$name" = direct ]; then
    url="$upstream"; ca="$work/up/ca.pem"; tok="$work/upstream.token"
  else
    url="https://127.0.0.1:$k8s_port"; ca="$work/data/kubernetes/cert.pem"; tok="$work/agent.token"
  fi
  l50=(); l90=(); l99=(); r=()
  for _ in $(seq "$rounds"); do
    lat=$(run "$name" "$url" "$ca" "$tok" 1 "$requests")
    thr=$(run "$name" "$url" "$ca" "$tok" 8 $((requests * 2)))
    [ "$(field errors "$lat")" = 0 ] && [ "$(field errors "$thr")" = 0 ] || { echo "errors: $lat $thr" >&2; exit 1; }
    l50+=("$(field p50_us "$lat")"); l90+=("$(field p90_us "$lat")"); l99+=("$(field p99_us "$lat")")
    r+=("$(field rps "$thr")")
  done
  p50[$name]=$(printf '%s\n' "${l50[@]}" | median)
  p90[$name]=$(printf '%s\n' "${l90[@]}" | median)
  p99[$name]=$(printf '%s\n' "${l99[@]}" | median)
  rps[$name]=$(printf '%s\n' "${r[@]}" | median)
done

events=$("$bin/gatehouse" --data-dir "$work/data" log tail 2>/dev/null | wc -l)
printf '\n%-10s %8s %8s %8s %12s\n' path p50_us p90_us p99_us 'req/s (c=8)'
for name in direct gatehouse; do
  printf '%-10s %8s %8s %8s %12s\n' "$name" "${p50[$name]}" "${p90[$name]}" "${p99[$name]}" "${rps[$name]}"
done
printf '%-10s %8s %8s %8s\n' added \
  $((p50[gatehouse] - p50[direct])) $((p90[gatehouse] - p90[direct])) $((p99[gatehouse] - p99[direct]))
echo "events in the gateway's log: $events (3 per request: request, decision, result)"
