#!/usr/bin/env bash
# Full-disk soak: runs a real `vouch serve` on a small file system, fills the file system under
# mixed load (appends with and without idempotency keys, batches, appends that wait for a
# checkpoint, reads and proofs) until appends are refused, frees the space, and checks that
# appends resume without a restart. It does this for several amounts of space left free, so
# that the refusal comes from different files (segments, offsets and Merkle node files, the
# secondary index, the leaf-hash index, checkpoints). After every round it checks that every
# acknowledged entry is there with its leaf hash, that idempotency keys still find their
# entries and that proofs verify against the signed checkpoint; at the end, after a clean
# shutdown, that `vouch verify-ledger` passes and that a restart finds every entry again.
#
# Usage: scripts/full-disk-soak.sh [ROUNDS]
#   ROUNDS  fill-and-free rounds (default 10; env ROUNDS)
# Env: FS_MIB (size of the file system, default 128), CLIENTS (default 4), PROFILE (release,
# or debug for a quick try), KEEP=1 keeps the work directory.
#
# It needs a file system it may fill: as root it mounts a tmpfs of FS_MIB MiB; otherwise set
# VOUCH_FULL_DIR to a directory on a small file system of your own (a loop-mounted image, for
# example), which the script fills and empties again. Exit status 0 means every round refused
# appends only with RESOURCE_EXHAUSTED, resumed once space was freed, and lost nothing.
set -euo pipefail

ROUNDS=${1:-${ROUNDS:-10}}
FS_MIB=${FS_MIB:-128}
CLIENTS=${CLIENTS:-4}

cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
echo "full-disk-soak: building ($PROFILE)"
cargo build --profile "${PROFILE/debug/dev}" --quiet -p vouch-server --bin vouch -p vouch-tests --bin vouch-soak
VOUCH=$PWD/target/$PROFILE/vouch
SOAK=$PWD/target/$PROFILE/vouch-soak

WORK=$(mktemp -d -t vouch-full-disk-soak.XXXXXX)
MOUNTED=
if [[ -n ${VOUCH_FULL_DIR:-} ]]; then
    FS=$VOUCH_FULL_DIR
elif [[ $(id -u) == 0 ]]; then
    FS=$WORK/fs
    mkdir -p "$FS"
    mount -t tmpfs -o "size=${FS_MIB}m" vouch-full-disk "$FS"
    MOUNTED=1
else
    echo "full-disk-soak: needs root (to mount a tmpfs) or VOUCH_FULL_DIR on a small file system" >&2
    exit 2
fi
DATA=$FS/data
FILLER=$FS/filler
ACKS=$WORK/acks
SERVER_PID=

cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -f "$FILLER"
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "full-disk-soak: work directory kept: $WORK"
    else
        [[ -n $MOUNTED ]] && umount "$FS"
        [[ -z $MOUNTED ]] && rm -rf "$DATA"
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

fail() {
    echo "full-disk-soak: FAILED: $*" >&2
    echo "full-disk-soak: server log tail:" >&2
    tail -n 20 "$WORK/server.err" >&2 || true
    exit 1
}

# The server configuration and `start_server` (sets SERVER_PID, URL and VKEY).
# shellcheck source=scripts/soak-lib.sh
source "$PWD/scripts/soak-lib.sh"
write_soak_config

check_acks() {
    "$SOAK" check --server "$URL" --acks "$ACKS" --vkey "$VKEY" >"$WORK/check.out" 2>&1 \
        || { cat "$WORK/check.out"; fail "$1: acknowledged entries lost"; }
    echo "full-disk-soak: $1: $(cut -d: -f2- "$WORK/check.out")"
}

free_kib() {
    df -k --output=avail "$FS" | tail -n 1 | tr -d ' '
}

start_server
# Bytes to leave free after filling, in KiB, cycled through the rounds.
lefts=(0 4 64 256 1024 3072 8 512 2048 128)
cycle=0
for round in $(seq 1 "$ROUNDS"); do
    left=${lefts[$(((round - 1) % ${#lefts[@]}))]}
    # Grow the ledger a little, then fill what is left but `left` KiB.
    cycle=$((cycle + 1))
    "$SOAK" load --server "$URL" --acks "$ACKS" --cycle "$cycle" --clients "$CLIENTS" \
        --seconds 1 >"$WORK/load.out" 2>&1 \
        || { cat "$WORK/load.out"; fail "round $round: appends failed before the disk was full"; }
    avail=$(free_kib)
    if ((avail > left)); then
        dd if=/dev/zero of="$FILLER" bs=1024 count=$((avail - left)) 2>/dev/null || true
    fi
    # Load until the disk is full: appends must be refused with RESOURCE_EXHAUSTED only.
    cycle=$((cycle + 1))
    if "$SOAK" load --server "$URL" --acks "$ACKS" --cycle "$cycle" --clients "$CLIENTS" \
        --seconds 20 >"$WORK/load.out" 2>&1; then
        cat "$WORK/load.out"
        fail "round $round: 20 s of appends with $left KiB free were never refused"
    fi
    if grep 'stopped on' "$WORK/load.out" | grep -qv 'ResourceExhausted'; then
        cat "$WORK/load.out"
        fail "round $round: a refusal other than RESOURCE_EXHAUSTED"
    fi
    refused=$(grep -m 1 'stopped on' "$WORK/load.out" | sed 's/.*ResourceExhausted: //' | cut -c1-90)
    # Free the space: appends must resume without a restart (a secondary index whose write
    # failed is reopened within a second).
    rm -f "$FILLER"
    sleep 2
    cycle=$((cycle + 1))
    "$SOAK" load --server "$URL" --acks "$ACKS" --cycle "$cycle" --clients "$CLIENTS" \
        --seconds 2 >"$WORK/load.out" 2>&1 \
        || { cat "$WORK/load.out"; fail "round $round: appends did not resume once space was freed"; }
    echo "full-disk-soak: round $round: $left KiB left: refused with \"$refused…\"; resumed:$(head -n 1 "$WORK/load.out" | cut -d: -f3)"
    check_acks "round $round"
done

# A clean shutdown, an offline audit, and a restart that finds everything.
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
"$VOUCH" verify-ledger --data-dir "$DATA" >"$WORK/verify.out" 2>&1 \
    || { cat "$WORK/verify.out"; fail "verify-ledger after the rounds"; }
start_server
check_acks "after a restart"
if grep -q 'poisoned' "$WORK/server.err"; then
    grep -m 3 'poisoned' "$WORK/server.err"
    fail "the ledger was poisoned; a full disk must only refuse appends"
fi
echo "full-disk-soak: passed: $ROUNDS rounds, every acknowledged entry present, the ledger verifies"
