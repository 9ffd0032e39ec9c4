#!/usr/bin/env bash
# SSH proxy benchmark: connection setup (N sequential `ssh true`), a one-way stream
# (`head -c SIZE /dev/zero` to /dev/null), an scp download (SFTP protocol) and an
# `scp -O` upload (the legacy protocol, whose records the gateway reads), alternating
#   direct            ssh -> sshd
#   gatehouse         ssh -> gateway (agent key login) -> sshd
#   proxyjump         ssh -> (ProxyCommand ssh -W through a second sshd) -> sshd
# All on 127.0.0.1; every server is started here in a temp dir and stopped at exit.
#
# Usage: benches/ssh_bench.sh
#   GATEWAY="gatehouse serve -c"    command that takes a config path (default: the
#                                   ssh_gateway example binary in release mode)
#   ROUNDS=3 CONNS=50 STREAM_MB=1024 SCP_MB=500
#   CIPHER=aes256-gcm@openssh.com    cipher every OpenSSH client leg uses (like for
#                                   like: russh's legs prefer AES-GCM too); "" = defaults
set -euo pipefail
CIPHER=${CIPHER-aes256-gcm@openssh.com}

ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
STREAM_MB=${STREAM_MB:-1024}
SCP_MB=${SCP_MB:-500}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${GATEWAY:-}" ]]; then
  target_dir=${CARGO_TARGET_DIR:-/var/tmp/gatehouse-target-ssh-rel}
  (cd "$ROOT" && CARGO_TARGET_DIR=$target_dir cargo build --release -q -p gatehouse-proxy-ssh --example ssh_gateway)
  GATEWAY="$target_dir/release/examples/ssh_gateway"
fi
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
USER_NAME=$(id -un)

work=$(mktemp -d /tmp/gh-ssh-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
now() { date +%s.%N; }

ssh-keygen -q -t ed25519 -N '' -f "$work/client"
ssh-keygen -q -t ed25519 -N '' -f "$work/agent"
mkdir -p /run/sshd 2>/dev/null || true

start_sshd() { # name -> sets PORT_OUT (no subshell: pids and traps stay here)
  local d="$work/$1" port; mkdir -p "$d"; port=$(free_port)
  ssh-keygen -q -t ed25519 -N '' -f "$d/host"
  cp "$work/client.pub" "$d/authorized_keys"
  cat > "$d/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $d/host
PidFile $d/pid
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
MaxStartups 200:30:400
CFG
  "$SSHD" -D -e -f "$d/sshd_config" 2>"$d/log" &
  pids+=($!)
  wait_port "$port"
  PORT_OUT=$port
}

start_sshd target; TPORT=$PORT_OUT
start_sshd jump; JPORT=$PORT_OUT
GPORT=$(free_port)
cat > "$work/allow.rules" <<'RULES'
rule allow_ssh { when ssh.kind in [session_open, exec, shell, shell_line, sftp, port_forward, env] then allow }
RULES
cat > "$work/gatehouse.toml" <<CFG
data_dir = "$work/gw"
[log]
durability = "batch"
[policy]
files = ["$work/allow.rules"]
[shipping.parquet]
enabled = false
[listen]
ssh = "127.0.0.1:$GPORT"
[[target]]
name = "bench"
protocol = "ssh"
upstream = "127.0.0.1:$TPORT"
user = "$USER_NAME"
key = { file = "$work/client" }
[[ssh.agent_key]]
identity = "agent:bench"
target = "bench"
public_key = "$(cat "$work/agent.pub")"
CFG
$GATEWAY "$work/gatehouse.toml" >"$work/gw.log" 2>&1 &
pids+=($!)
wait_port "$GPORT"

common="  HostName 127.0.0.1${CIPHER:+
  Ciphers $CIPHER}
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes"
cat > "$work/ssh_config" <<CFG
Host direct
  Port $TPORT
  User $USER_NAME
  IdentityFile $work/client
$common
Host gatehouse
  Port $GPORT
  User bench
  IdentityFile $work/agent
  PreferredAuthentications publickey
$common
Host jump
  Port $JPORT
  User $USER_NAME
  IdentityFile $work/client
$common
Host proxyjump
  Port $TPORT
  User $USER_NAME
  IdentityFile $work/client
  ProxyJump jump
$common
CFG
run_ssh() { local mode=$1; shift; ssh -F "$work/ssh_config" "$mode" "$@"; }
run_scp() { scp -q -F "$work/ssh_config" "$1:$2" "$3"; }
run_scp_up() { scp -q -O -F "$work/ssh_config" "$2" "$1:$3"; }

head -c $((SCP_MB << 20)) /dev/urandom > "$work/scp.bin"
want=$(sha256sum < "$work/scp.bin")
declare -A conn stream scp up
for round in $(seq "$ROUNDS"); do
  for mode in direct gatehouse proxyjump; do
    t0=$(now); for _ in $(seq "$CONNS"); do run_ssh "$mode" true; done; t1=$(now)
    conn[$mode]+="$(echo "($t1-$t0)*1000/$CONNS" | bc -l) "
    t0=$(now); run_ssh "$mode" "head -c $((STREAM_MB << 20)) /dev/zero" > /dev/null; t1=$(now)
    stream[$mode]+="$(echo "$STREAM_MB/($t1-$t0)" | bc -l) "
    rm -f "$work/scp.out"
    t0=$(now); run_scp "$mode" "$work/scp.bin" "$work/scp.out"; t1=$(now)
    [[ "$(sha256sum < "$work/scp.out")" == "$want" ]] || { echo "scp via $mode corrupted the file" >&2; exit 1; }
    scp[$mode]+="$(echo "$SCP_MB/($t1-$t0)" | bc -l) "
    rm -f "$work/up.out"
    t0=$(now); run_scp_up "$mode" "$work/scp.bin" "$work/up.out"; t1=$(now)
    [[ "$(sha256sum < "$work/up.out")" == "$want" ]] || { echo "scp -O upload via $mode corrupted the file" >&2; exit 1; }
    up[$mode]+="$(echo "$SCP_MB/($t1-$t0)" | bc -l) "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf "rounds=%s conns=%s stream=%sMiB scp=%sMiB cipher=%s\n" "$ROUNDS" "$CONNS" "$STREAM_MB" "$SCP_MB" "${CIPHER:-default}"
printf "%-10s %18s %18s %16s %16s\n" mode "setup ms/conn" "stream MiB/s" "scp MiB/s" "scp -O up MiB/s"
for mode in direct gatehouse proxyjump; do
  printf "%-10s %18.2f %18.1f %16.1f %16.1f   (all: %s| %s| %s| %s)\n" "$mode" \
    "$(echo "${conn[$mode]}" | median)" "$(echo "${stream[$mode]}" | median)" "$(echo "${scp[$mode]}" | median)" "$(echo "${up[$mode]}" | median)" \
    "$(for v in ${conn[$mode]}; do printf '%.1f ' "$v"; done)" "$(for v in ${stream[$mode]}; do printf '%.0f ' "$v"; done)" "$(for v in ${scp[$mode]}; do printf '%.0f ' "$v"; done)" "$(for v in ${up[$mode]}; do printf '%.0f ' "$v"; done)"
done
d=$(echo "${conn[direct]}" | median); g=$(echo "${conn[gatehouse]}" | median); j=$(echo "${conn[proxyjump]}" | median)
ds=$(echo "${stream[direct]}" | median); gs=$(echo "${stream[gatehouse]}" | median); js=$(echo "${stream[proxyjump]}" | median)
printf "setup vs direct: gatehouse %.2fx, proxyjump %.2fx (target <= 1.5x)\n" "$(echo "$g/$d" | bc -l)" "$(echo "$j/$d" | bc -l)"
printf "stream vs direct: gatehouse %.2f, proxyjump %.2f (target >= 0.7)\n" "$(echo "$gs/$ds" | bc -l)" "$(echo "$js/$ds" | bc -l)"
du=$(echo "${up[direct]}" | median); gu=$(echo "${up[gatehouse]}" | median)
printf "scp -O upload vs direct: gatehouse %.2f\n" "$(echo "$gu/$du" | bc -l)"
