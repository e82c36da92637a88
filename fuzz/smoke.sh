#!/usr/bin/env bash
# Fuzz smoke run for CI: every fuzz target for FUZZ_SECONDS seconds (default 20). The targets
# are whatever `cargo fuzz list` names (the [[bin]]s of fuzz/Cargo.toml: decode_batch,
# open_partition_dir, config_properties, offsets_log, txn_state_log, server_request), so a new
# target needs no change here. The fuzz crate turns on embroker's `server` feature by default
# (fuzz/Cargo.toml), which server_request needs.
#
# Exit status: 0 when every target ran clean, or when the toolchain cannot build fuzz targets
# here (then it prints "skipped: ..." and why: a smoke run must not fail CI for a missing
# tool); non-zero when a target crashes, hangs or runs out of memory (the input is saved under
# fuzz/artifacts/<target>/ and the command to reproduce it is printed).
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# The targets are built once with AddressSanitizer (cargo-fuzz's default); if that build
# fails, once more without a sanitizer. New inputs go to a scratch directory, so the
# checked-in corpus only changes by hand (after `cargo fuzz cmin`, see fuzz/README.md).
set -uo pipefail

seconds="${FUZZ_SECONDS:-20}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here" || exit 1
export RUSTC_BOOTSTRAP=1
# Two cores shared with the rest of CI: build with both, fuzz with one process per target.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

skip() {
    echo "fuzz smoke: skipped: $*"
    exit 0
}

command -v cargo >/dev/null 2>&1 || skip "cargo is not installed"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz smoke: installing cargo-fuzz (one time)"
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || skip "cargo install cargo-fuzz failed"
fi

targets=$(cargo fuzz list 2>/dev/null) || skip "cargo fuzz list failed"
[ -n "$targets" ] || skip "no fuzz targets found"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

sanitizer=()
note=""
if ! cargo fuzz build >"$scratch/build.log" 2>&1; then
    echo "fuzz smoke: build with AddressSanitizer failed; trying --sanitizer none"
    sanitizer=(--sanitizer none)
    note=" (no sanitizer)"
    if ! cargo fuzz build "${sanitizer[@]}" >"$scratch/build.log" 2>&1; then
        tail -n 20 "$scratch/build.log"
        skip "this toolchain cannot build the fuzz targets (see the build log above)"
    fi
fi
failed=()
for target in $targets; do
    mkdir -p "$scratch/$target" "artifacts/$target"
    echo "fuzz smoke: $target for ${seconds}s"
    # -timeout: an input that takes 30 s is a hang; -rss_limit_mb: a leak or a runaway
    # allocation. Output goes to a log that is shown only on failure.
    if cargo fuzz run "${sanitizer[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1; then
        grep -E '^stat::number_of_executed_units|DONE' "$scratch/$target.log" |
            sed "s/^/fuzz smoke: $target: /"
    else
        echo "fuzz smoke: $target FAILED"
        # The panic message first (it can be far above the end of a long stack), then the end.
        grep -m 1 -A 1 'panicked at' "$scratch/$target.log"
        tail -n 40 "$scratch/$target.log"
        echo "fuzz smoke: reproduce with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $target artifacts/$target/<file>"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz smoke: crashes in: ${failed[*]}"
    exit 1
fi
echo "fuzz smoke: all targets ran ${seconds}s without a crash$note"
