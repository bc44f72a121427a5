# Shared by the soak scripts (sourced, not run): the server configuration they use and how
# they start `vouch serve`. The sourcing script sets VOUCH (the binary), WORK (its work
# directory) and DATA (the data directory), and defines `fail MESSAGE`.

# Writes $WORK/vouch.toml: small segments and frequent checkpoints, so that kills and full
# disks land in roll-overs and checkpoint writes too; no metrics listener.
write_soak_config() {
    cat >"$WORK/vouch.toml" <<TOML
data_dir = "$DATA"
listen = "127.0.0.1:0"

[storage]
checkpoint_every_entries = 500
checkpoint_every_ms = 50
segment_target_bytes = 1048576

[metrics]
enabled = false
TOML
}

# Starts `vouch serve` with $WORK/vouch.toml and any further arguments, and sets SERVER_PID,
# URL and VKEY from what it prints.
start_server() {
    : >"$WORK/server.out"
    "$VOUCH" serve --config "$WORK/vouch.toml" "$@" \
        >"$WORK/server.out" 2>>"$WORK/server.err" &
    SERVER_PID=$!
    URL=
    for _ in $(seq 1 300); do
        URL=$(sed -n 's/^ *grpc: *//p' "$WORK/server.out")
        VKEY=$(sed -n 's/^ *verifier key: *//p' "$WORK/server.out" | head -n 1)
        [[ -n $URL && -n $VKEY ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || fail "vouch serve exited at start"
        sleep 0.1
    done
    fail "vouch serve printed no address in 30 s"
}
