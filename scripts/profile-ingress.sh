#!/usr/bin/env bash
# Profiles the real webhook-ingress binary under the peers benchmark's load
# (16 keep-alive clients, 1 KiB JSON bodies, a valid callback URL) on a
# local nats-server, and prints the rate and the profile's top entries.
#   scripts/profile-ingress.sh [seconds]      # needs ../shared/bench/peers
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
BIN=${TMPDIR:-/tmp}/ingress-profile
mkdir -p "$BIN"
go build -o "$BIN/" ./cmd/webhook-ingress
go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2
(cd ../shared/bench/peers && go build -o "$BIN/" ./cmd/loadgen)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
"$BIN/nats-server" -js -a 127.0.0.1 -p 14322 -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
SECRET=profile-callback-secret-0123456789
NATS_URL=nats://127.0.0.1:14322 CALLBACK_SECRET=$SECRET LISTEN_ADDR=127.0.0.1:18180 METRICS_ADDR=127.0.0.1:19191 \
  LOG_LEVEL=error PPROF=true "$BIN/webhook-ingress" >"$WORK/ingress.log" 2>&1 &
ING_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:19191/readyz && break; sleep 0.1; done
TOKEN=$(go run ./tools/calltoken -secret "$SECRET" -order ORD-PROFILE-1)
curl -s -o "$WORK/cpu.pprof" "http://127.0.0.1:19191/debug/pprof/profile?seconds=$((DUR - 1))" &
CURL=$!
"$BIN/loadgen" -url "http://127.0.0.1:18180/v1/inbank/callbacks/$TOKEN" -c 16 -size 1024 -duration "${DUR}s" \
  -ingress-pid "$ING_PID" -server-pid "$NATS_PID"
wait "$CURL"
cp "$WORK/cpu.pprof" "$BIN/cpu.pprof"
echo "profile: $BIN/cpu.pprof"
go tool pprof -top -cum -nodecount=40 "$BIN/webhook-ingress" "$BIN/cpu.pprof" 2>/dev/null | grep -v "^ *0 *0%" | head -50
