#!/usr/bin/env bash
# The webhook-ingress against its peers, as a user choosing one would see
# it: ../shared/bench/peers/run.sh (the same HTTP load on the same
# nats-server in one run: a bare net/http handler, Watermill, Benthos and
# ours), then the ratios the project tracks, one per line:
#   ingress-vs-bare <sync> ratio X      rate of ours / the bare handler's (target >= 0.95)
#   ingress-vs-benthos <sync> ratio X   rate of ours / Benthos's (target >= 1.15)
#   ingress-cpu-vs-bare <sync> ratio X  CPU per request, ours / bare (target <= 1.2)
# Skipped (exit 0) where the peers folder is not beside the project.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=../shared/bench/peers
if [ ! -f "$PEERS/run.sh" ]; then
  echo "bench-peers: $PEERS not found; the side-by-side comparison is skipped"
  exit 0
fi
TOOLS=${TMPDIR:-/tmp}/peers-tools
mkdir -p "$TOOLS"
[ -x "$TOOLS/nats-server" ] || go build -o "$TOOLS/nats-server" github.com/nats-io/nats-server/v2
[ -x "$TOOLS/nats" ] || GOBIN=$TOOLS go install github.com/nats-io/natscli/nats@v0.5.0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
PROJECT=$PWD NATS_BIN=$TOOLS bash "$PEERS/run.sh" | tee "$out"
# Table rows: variant row description… rate p50 p99 errs /raw srv ing drv other%
awk '($1=="always"||$1=="default") && NF>=11 { rate[$1,$2]=$(NF-8); ing[$1,$2]=$(NF-2) }
END {
  for (v in seen) {}
  split("always default", vs, " ")
  for (i=1; i<=2; i++) { v=vs[i]
    if (rate[v,"project"]=="" || rate[v,"ideal"]=="") continue
    printf "ingress-vs-bare %s ratio %.2f\n", v, rate[v,"project"]/rate[v,"ideal"]
    if (rate[v,"benthos"]!="") printf "ingress-vs-benthos %s ratio %.2f\n", v, rate[v,"project"]/rate[v,"benthos"]
    if (ing[v,"ideal"]+0>0) printf "ingress-cpu-vs-bare %s ratio %.2f\n", v, ing[v,"project"]/ing[v,"ideal"]
  }
}' "$out"
