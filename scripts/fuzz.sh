#!/bin/bash
# Runs every cargo-fuzz target for SECONDS each (default 60), two at a time,
# on nightly with AddressSanitizer. Corpora live in fuzz/corpus/<target>
# (kept between runs, not committed); a crash stops its target and leaves
# the input in fuzz/artifacts/<target>/ — fix it and add it as a regression
# test. Prints one line per target: runs, corpus size, crashes.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
# (builds the targets named, or every target; a failed build is shown in full)
build() { cargo +nightly fuzz build --fuzz-dir fuzz -O "$@" >/dev/null 2>&1 || cargo +nightly fuzz build --fuzz-dir fuzz -O "$@"; }
if [ $# -gt 0 ]; then
  for t in "${targets[@]}"; do build "$t"; done
else
  build
fi
mkdir -p fuzz/logs
run() {
  local t="$1"
  mkdir -p "fuzz/corpus/$t"
  local status=0
  cargo +nightly fuzz run --fuzz-dir fuzz -O "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"fuzz/logs/$t.log" 2>&1 || status=$?
  local runs corpus crashes
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  crashes=$(find "fuzz/artifacts/$t" -type f 2>/dev/null | wc -l)
  printf '%-16s %4ss  runs %-10s corpus %-6s crashes %s%s\n' "$t" "$seconds" "$runs" "$corpus" "$crashes" \
    "$([ "$status" = 0 ] || echo "  (exit $status: see fuzz/logs/$t.log)")"
}
failed=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run "${targets[i]}" &
  a=$!
  b=""
  if [ $((i + 1)) -lt ${#targets[@]} ]; then
    run "${targets[i + 1]}" &
    b=$!
  fi
  wait "$a" || failed=1
  [ -z "$b" ] || wait "$b" || failed=1
done
if find fuzz/artifacts -type f 2>/dev/null | grep -q .; then
  echo "fuzz: crashes found (fuzz/artifacts)"
  exit 1
fi
exit "$failed"
