#!/usr/bin/env bash
# Crash soak: kills a real `vouch serve` with SIGKILL at random moments under concurrent load
# and checks, after every restart, that every acknowledged entry is there with the leaf hash
# it was acknowledged with, that idempotency keys still find their entries, that proofs
# verify against the signed checkpoint, and that `vouch verify-ledger` passes offline.
#
# Usage: scripts/crash-soak.sh [CYCLES] [MAX_SECONDS]
#   CYCLES       kills to make (default 50; env CYCLES)
#   MAX_SECONDS  stop starting new cycles after this long (default 1800; env MAX_SECONDS)
# Env: CLIENTS (concurrent clients, default 8), SEED (for the kill moments), PROFILE (release,
# or debug for a quick try), KEEP=1 keeps the work directory, VOUCH_SOAK_DIR sets it.
#
# The cycles rotate through the durability modes fsync, interval and none: SIGKILL keeps the
# page cache, so no mode may lose an acknowledged entry to it. Exit status 0 means every
# cycle found every acknowledged entry.
set -euo pipefail

CYCLES=${1:-${CYCLES:-50}}
MAX_SECONDS=${2:-${MAX_SECONDS:-1800}}
CLIENTS=${CLIENTS:-8}
SEED=${SEED:-$$}
RANDOM=$SEED

cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
echo "crash-soak: building ($PROFILE)"
cargo build --profile "${PROFILE/debug/dev}" --quiet -p vouch-server --bin vouch -p vouch-tests --bin vouch-soak
VOUCH=$PWD/target/$PROFILE/vouch
SOAK=$PWD/target/$PROFILE/vouch-soak

WORK=${VOUCH_SOAK_DIR:-$(mktemp -d -t vouch-crash-soak.XXXXXX)}
mkdir -p "$WORK"
DATA=$WORK/data
ACKS=$WORK/acks
SERVER_PID=
LOAD_PID=

cleanup() {
    [[ -n $LOAD_PID ]] && kill "$LOAD_PID" 2>/dev/null || true
    [[ -n $SERVER_PID ]] && kill -9 "$SERVER_PID" 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "crash-soak: work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

fail() {
    echo "crash-soak: FAILED: $*" >&2
    echo "crash-soak: server log tail:" >&2
    tail -n 20 "$WORK/server.err" >&2 || true
    KEEP=1
    exit 1
}

# The server configuration and `start_server` (sets SERVER_PID, URL and VKEY).
# shellcheck source=scripts/soak-lib.sh
source "$PWD/scripts/soak-lib.sh"
write_soak_config

start=$SECONDS
modes=(fsync interval none)
cycle=0
while ((cycle < CYCLES && SECONDS - start < MAX_SECONDS)); do
    cycle=$((cycle + 1))
    mode=${modes[$(((cycle - 1) % 3))]}
    start_server --durability "$mode"
    if [[ -s $ACKS ]]; then
        "$SOAK" check --server "$URL" --acks "$ACKS" --vkey "$VKEY" >"$WORK/check.out" 2>&1 \
            || { cat "$WORK/check.out"; fail "cycle $cycle: acknowledged entries lost"; }
        echo "crash-soak: restart $((cycle - 1)) $(cut -d: -f2- "$WORK/check.out" | cut -d';' -f1)"
    fi
    "$SOAK" load --server "$URL" --acks "$ACKS" --cycle "$cycle" --clients "$CLIENTS" \
        --seconds 60 >"$WORK/load.out" 2>&1 &
    LOAD_PID=$!
    # Kill after 0.3 to 3 s of load.
    delay_ms=$((300 + RANDOM % 2700))
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    kill -9 "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    wait "$LOAD_PID" || { cat "$WORK/load.out"; fail "cycle $cycle: the load got an unexpected error"; }
    LOAD_PID=
    "$VOUCH" verify-ledger --data-dir "$DATA" >"$WORK/verify.out" 2>&1 \
        || { cat "$WORK/verify.out"; fail "cycle $cycle: verify-ledger after the kill"; }
    printf 'crash-soak: cycle %d (%s): killed after %d ms with%s\n' \
        "$cycle" "$mode" "$delay_ms" "$(head -n 1 "$WORK/load.out" | cut -d: -f3)"
done

# A last restart checks the last kill, then a clean shutdown and an offline audit.
start_server --durability fsync
"$SOAK" check --server "$URL" --acks "$ACKS" --vkey "$VKEY" >"$WORK/check.out" 2>&1 \
    || { cat "$WORK/check.out"; fail "after the last kill: acknowledged entries lost"; }
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "vouch serve did not stop cleanly"
SERVER_PID=
"$VOUCH" verify-ledger --data-dir "$DATA" >"$WORK/verify.out" 2>&1 \
    || { cat "$WORK/verify.out"; fail "verify-ledger after the clean shutdown"; }
echo "crash-soak: $(cat "$WORK/check.out")"
echo "crash-soak: verify-ledger: $(grep -m1 'entries:' "$WORK/verify.out" | tr -s ' ')"
echo "crash-soak: PASSED: $cycle kills (seed $SEED) in $((SECONDS - start)) s, 0 acknowledged entries lost"
