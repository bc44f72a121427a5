#!/usr/bin/env bash
# Runs Vouch's fuzz targets with cargo-fuzz (libFuzzer); see fuzz/README.md.
#
#   fuzz/run-campaign.sh [options] [target...]
#
#   -d, --duration SECONDS  how long each target runs (default 600)
#   -j, --jobs N            libFuzzer jobs per target, run in parallel (default 1)
#   --smoke                 the CI smoke: every target for FUZZ_SECONDS (default 10) on a
#                           temporary copy of its seeds, one after the other, failing on the
#                           first crash, hang or leak
#   -h, --help              this text
#
# Targets run one after another, all of them when none is named. A campaign fuzzes each
# target in fuzz/corpus/<target>/, which grows as libFuzzer finds new coverage; only the
# committed seeds (seed-*) are tracked by git. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

# One set of build flags for the build and every run, so `cargo fuzz run` never rebuilds:
# release with debug assertions and overflow checks (cargo-fuzz's default), AddressSanitizer,
# and 16 codegen units, which builds much faster on a small machine than the default of 1.
BUILD_FLAGS=(--codegen-units 16)
# Options for every libFuzzer run: a hang is an input that takes more than 10 s, and memory
# is capped well below the machine's.
RUN_FLAGS=(-timeout=10 -rss_limit_mb=4096 -print_final_stats=1)

# Per-target options. The stateful targets keep a data directory, sled's and tokio's threads
# and their caches alive across inputs by design, which LeakSanitizer would report as leaks
# after every input (and rerun each input to look for them).
target_flags() {
  case "$1" in
    segment_recovery | grpc_requests) echo "-detect_leaks=0" ;;
  esac
}

duration=600
jobs=1
smoke=false
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -d | --duration) duration="$2"; shift 2 ;;
    -j | --jobs) jobs="$2"; shift 2 ;;
    --smoke) smoke=true; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "building ${#targets[@]} fuzz targets"
start=$SECONDS
cargo +nightly fuzz build "${BUILD_FLAGS[@]}"
echo "built in $((SECONDS - start)) s"

if $smoke; then
  seconds="${FUZZ_SECONDS:-10}"
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  for target in "${targets[@]}"; do
    echo "--- $target: ${seconds} s on a copy of its seeds"
    mkdir -p "$scratch/$target"
    cp corpus/"$target"/seed-* "$scratch/$target/"
    log="$scratch/$target.log"
    set +e
    cargo +nightly fuzz run "${BUILD_FLAGS[@]}" "$target" "$scratch/$target" -- \
      "${RUN_FLAGS[@]}" $(target_flags "$target") -max_total_time="$seconds" >"$log" 2>&1
    status=$?
    set -e
    grep -E '^(INFO: seed corpus|#[0-9]+[[:space:]]+DONE)' "$log" || true
    if [[ $status -ne 0 ]]; then
      tail -n 80 "$log" >&2
      echo "FAILED: fuzz target $target (exit $status); the input is in fuzz/artifacts/$target/" >&2
      exit "$status"
    fi
  done
  echo "fuzz: ${#targets[@]} passed, 0 failed"
  exit 0
fi

for target in "${targets[@]}"; do
  echo "--- $target: ${duration} s, $jobs job(s), corpus fuzz/corpus/$target"
  mkdir -p corpus/"$target"
  extra=()
  if [[ $jobs -gt 1 ]]; then
    extra=(-jobs="$jobs" -workers="$jobs")
  fi
  cargo +nightly fuzz run "${BUILD_FLAGS[@]}" "$target" -- \
    "${RUN_FLAGS[@]}" $(target_flags "$target") -max_total_time="$duration" "${extra[@]}"
done
