#!/usr/bin/env bash
# Host guard benchmark (issue #24, ADR 0023): the same workloads through the gateway to
# two sshd accounts on this machine, one plain and one whose sessions run under
# gatehouse-guard (every exec and connect asked back through the SSH connection,
# judged and appended to the log), alternating per round:
#   true     N x `/bin/true` (fork + exec) in a shell loop
#   build    `make -j2` of a synthetic C project (NFILES tiny files: the most exec-heavy
#            build there is; gcc, cc1, as per file, then ld)
#   zlib     `make -j2` of zlib (15 files of a real C library, from the libz-sys crate
#            in the cargo registry: `cargo fetch` puts it there), its static library
#            and a program linked against it
# Times are taken inside the session (`date +%s%N` around the loop), so connection
# setup is not counted. Prints each round, the medians, the ratios guarded / plain and
# the added time per exec. All on 127.0.0.1 in a temp dir; stopped at exit.
#
# Usage: benches/guard_bench.sh
#   ROUNDS=5 N=1000 NFILES=24
#   GATEWAY="path/to/ssh_gateway"   (default: the ssh_gateway example, release build)
#   GUARD="path/to/gatehouse-guard" (default: release build)
set -euo pipefail
ROUNDS=${ROUNDS:-5}
N=${N:-1000}
NFILES=${NFILES:-24}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-/var/tmp/gatehouse-target-ssh-rel}
if [[ -z "${GATEWAY:-}" || -z "${GUARD:-}" ]]; then
  (cd "$ROOT" && CARGO_TARGET_DIR=$target_dir cargo build --release -q \
    -p gatehouse-proxy-ssh --example ssh_gateway -p gatehouse-guard --bin gatehouse-guard)
fi
GATEWAY=${GATEWAY:-$target_dir/release/examples/ssh_gateway}
GUARD=${GUARD:-$target_dir/release/gatehouse-guard}
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
USER_NAME=$(id -un)

work=$(mktemp -d /tmp/gh-guard-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

ssh-keygen -q -t ed25519 -N '' -f "$work/client"
mkdir -p /run/sshd 2>/dev/null || true
mkdir -p "$work/home"

start_sshd() { # name extra-config -> sets PORT_OUT
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
MaxStartups 200:30:400
$2
CFG
  "$SSHD" -D -e -f "$d/sshd_config" 2>"$d/log" &
  pids+=($!)
  wait_port "$port"
  PORT_OUT=$port
}

# Both accounts get the same clean environment (this machine's dotfiles aside).
start_sshd plain "ForceCommand env HOME=$work/home PATH=/usr/bin:/bin /bin/bash -c \"\$SSH_ORIGINAL_COMMAND\""; PLAIN=$PORT_OUT
start_sshd guarded "ForceCommand env HOME=$work/home PATH=/usr/bin:/bin $GUARD
AcceptEnv GATEHOUSE_GUARD_*
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes"; GUARDED=$PORT_OUT

GPORT=$(free_port)
cat > "$work/allow.rules" <<'RULES'
rule allow_ssh { when ssh.kind in [session_open, exec, shell, shell_line, sftp, env, process, connect] then allow }
RULES
for k in plain guarded; do ssh-keygen -q -t ed25519 -N '' -f "$work/agent-$k"; done
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
name = "plain"
protocol = "ssh"
upstream = "127.0.0.1:$PLAIN"
user = "$USER_NAME"
key = { file = "$work/client" }
[[target]]
name = "guarded"
protocol = "ssh"
upstream = "127.0.0.1:$GUARDED"
user = "$USER_NAME"
key = { file = "$work/client" }
guard = true
guard_socket_dir = "$work"
[[ssh.agent_key]]
identity = "agent:plain"
target = "plain"
public_key = "$(cat "$work/agent-plain.pub")"
[[ssh.agent_key]]
identity = "agent:guarded"
target = "guarded"
public_key = "$(cat "$work/agent-guarded.pub")"
CFG
"$GATEWAY" "$work/gatehouse.toml" >"$work/gw.log" 2>&1 &
pids+=($!)
wait_port "$GPORT"

run_ssh() { # target command
  ssh -F /dev/null -p "$GPORT" -i "$work/agent-$1" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes \
    -o PreferredAuthentications=publickey "$1@127.0.0.1" "$2"
}

# The C project: NFILES translation units and a Makefile.
proj="$work/proj"; mkdir -p "$proj"
for i in $(seq "$NFILES"); do
  cat > "$proj/f$i.c" <<C
#include <stdio.h>
#include <string.h>
int f$i(int x) { char b[64]; snprintf(b, sizeof b, "%d", x * $i); return (int)strlen(b) + x % $i; }
C
done
{
  printf '#include <stdio.h>\n'
  for i in $(seq "$NFILES"); do printf 'int f%d(int);\n' "$i"; done
  printf 'int main(void) { int s = 0;\n'
  for i in $(seq "$NFILES"); do printf '  s += f%d(%d);\n' "$i" "$i"; done
  printf '  printf("%%d\\n", s); return 0; }\n'
} > "$proj/main.c"
objs=$(for i in $(seq "$NFILES"); do printf 'f%d.o ' "$i"; done)
printf 'prog: main.o %s\n\tcc -o prog main.o %s\n%%.o: %%.c\n\tcc -O1 -c -o $@ $<\nclean:\n\trm -f *.o prog\n' "$objs" "$objs" > "$proj/Makefile"

# zlib, a real small C library, from the cargo registry (a dependency of the workspace).
zsrc=${ZLIB_SRC:-$(cd "$ROOT" && cargo metadata --format-version 1 2>/dev/null | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "libz-sys":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "src", "zlib")); break')}
[[ -f "$zsrc/deflate.c" ]] || { echo "zlib sources not found (got '$zsrc'): run 'cargo fetch' or set ZLIB_SRC" >&2; exit 1; }
zproj="$work/zlib"; mkdir -p "$zproj"; cp "$zsrc"/*.c "$zsrc"/*.h "$zproj"/
cat > "$zproj/main.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "zlib.h"
int main(void) {
  unsigned char in[4096], z[8192], out[4096]; uLongf zl = sizeof z, ol = sizeof out;
  for (unsigned i = 0; i < sizeof in; i++) in[i] = (unsigned char)(i * 7 % 251);
  if (compress2(z, &zl, in, sizeof in, 9) != Z_OK || uncompress(out, &ol, z, zl) != Z_OK) return 1;
  printf("%lu %d\n", (unsigned long)zl, memcmp(in, out, sizeof in));
  return 0;
}
C
zobjs=$(cd "$zproj" && ls *.c | grep -v '^main.c$' | sed 's/\.c$/.o/' | tr '\n' ' ')
printf 'prog: main.o libz.a\n\tcc -o prog main.o libz.a\nlibz.a: %s\n\tar rcs libz.a %s\n%%.o: %%.c\n\tcc -O2 -D_LARGEFILE64_SOURCE=1 -DHAVE_HIDDEN -c -o $@ $<\nclean:\n\trm -f *.o libz.a prog\n' "$zobjs" "$zobjs" > "$zproj/Makefile"

true_cmd='s=$(date +%s%N); for i in $(seq '"$N"'); do /bin/true; done; e=$(date +%s%N); echo $(( (e - s) / 1000 ))'
build_cmd='cd '"$proj"' && make -s clean && s=$(date +%s%N) && make -s -j2 prog && ./prog >/dev/null && e=$(date +%s%N) && echo $(( (e - s) / 1000 ))'
zlib_cmd='cd '"$zproj"' && make -s clean && s=$(date +%s%N) && make -s -j2 prog && ./prog >/dev/null && e=$(date +%s%N) && echo $(( (e - s) / 1000 ))'

# Warm up (page cache, the gateway's first connections).
for t in plain guarded; do for c in "$true_cmd" "$build_cmd" "$zlib_cmd"; do run_ssh "$t" "$c" >/dev/null; done; done

declare -A res
printf '# round: workload target µs\n'
for r in $(seq "$ROUNDS"); do
  order="plain guarded"; (( r % 2 == 0 )) && order="guarded plain"
  for w in true build zlib; do
    for t in $order; do
      cmd=$true_cmd; [[ $w == build ]] && cmd=$build_cmd; [[ $w == zlib ]] && cmd=$zlib_cmd
      us=$(run_ssh "$t" "$cmd" | tail -1)
      [[ $us =~ ^[0-9]+$ ]] || { echo "round $r $w $t failed: $us" >&2; tail -20 "$work/gw.log" >&2; exit 1; }
      res[$w.$t]+="$us "
      printf 'r%d %-5s %-7s %10d\n' "$r" "$w" "$t" "$us"
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '\n| workload | plain (median) | guarded (median) | ratio |\n| --- | --- | --- | --- |\n'
for w in true build zlib; do
  p=$(echo "${res[$w.plain]}" | median); g=$(echo "${res[$w.guarded]}" | median)
  label="$N x /bin/true"; [[ $w == build ]] && label="make -j2, $NFILES files"; [[ $w == zlib ]] && label="make -j2, zlib"
  printf '| %s | %.1f ms | %.1f ms | %.2f |\n' "$label" "$(echo "$p / 1000" | bc -l)" "$(echo "$g / 1000" | bc -l)" "$(echo "$g / $p" | bc -l)"
  if [[ $w == true ]]; then
    printf '\nper exec: plain %.1f µs, guarded %.1f µs, added %.1f µs\n' \
      "$(echo "$p / $N" | bc -l)" "$(echo "$g / $N" | bc -l)" "$(echo "($g - $p) / $N" | bc -l)"
  fi
done
