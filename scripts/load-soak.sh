#!/usr/bin/env bash
# Load soak: runs a steady mixed load (appends, batches, appends that wait for a checkpoint,
# reads and inclusion proofs from several clients) against a real `vouch serve` for a bounded
# time, and reports per interval the calls, their latency, the errors and the server's
# resident set size (VmRSS). It passes when no call failed, memory stayed flat after the
# first interval and latency did not creep (see `vouch-soak soak`), and the ledger verifies
# offline afterwards.
#
# Usage: scripts/load-soak.sh [SECONDS] [INTERVAL]
#   SECONDS   how long to run the measured load (default 120; env DURATION)
#   INTERVAL  seconds per report line (default 10; env INTERVAL)
# Env: CLIENTS (default 8), PREFILL (seconds of appends before the measured load, default 60,
# so that the secondary index's cache has filled: see "Reliability" in docs/operations.md),
# MIX (mixed or reads; default mixed), DURABILITY (fsync, interval or none; default fsync),
# PROFILE (release, or debug for a quick try), KEEP=1 keeps the work directory.
set -euo pipefail

DURATION=${1:-${DURATION:-120}}
INTERVAL=${2:-${INTERVAL:-10}}
CLIENTS=${CLIENTS:-8}
PREFILL=${PREFILL:-60}
MIX=${MIX:-mixed}
DURABILITY=${DURABILITY:-fsync}

cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
echo "load-soak: building ($PROFILE)"
cargo build --profile "${PROFILE/debug/dev}" --quiet -p vouch-server --bin vouch -p vouch-tests --bin vouch-soak
VOUCH=$PWD/target/$PROFILE/vouch
SOAK=$PWD/target/$PROFILE/vouch-soak

WORK=$(mktemp -d -t vouch-load-soak.XXXXXX)
SERVER_PID=
cleanup() {
    [[ -n $SERVER_PID ]] && kill -9 "$SERVER_PID" 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "load-soak: work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

"$VOUCH" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 --metrics-listen off \
    --durability "$DURABILITY" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=
for _ in $(seq 1 300); do
    URL=$(sed -n 's/^ *grpc: *//p' "$WORK/server.out")
    [[ -n $URL ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err"; exit 1; }
    sleep 0.1
done
[[ -n $URL ]] || { echo "load-soak: vouch serve printed no address" >&2; exit 1; }

if ((PREFILL > 0)); then
    echo "load-soak: filling the ledger for $PREFILL s"
    "$SOAK" load --server "$URL" --acks /dev/null --clients "$CLIENTS" --seconds "$PREFILL" | head -n 1
fi
echo "load-soak: $CLIENTS clients ($MIX) for $DURATION s against $URL ($DURABILITY), server pid $SERVER_PID"
status=0
"$SOAK" soak --server "$URL" --pid "$SERVER_PID" --clients "$CLIENTS" --mix "$MIX" \
    --seconds "$DURATION" --interval "$INTERVAL" || status=$?

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || { echo "load-soak: vouch serve did not stop cleanly" >&2; status=1; }
SERVER_PID=
if "$VOUCH" verify-ledger --data-dir "$WORK/data" >"$WORK/verify.out" 2>&1; then
    echo "load-soak: verify-ledger: $(grep -m1 'entries:' "$WORK/verify.out" | tr -s ' ')"
else
    cat "$WORK/verify.out"
    status=1
fi
if ((status == 0)); then
    echo "load-soak: PASSED"
else
    echo "load-soak: FAILED" >&2
    KEEP=1
fi
exit "$status"
