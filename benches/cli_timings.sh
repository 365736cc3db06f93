#!/usr/bin/env bash
# Whole-process timings of the `spikebreaker` tool, for the guide (src/guide/backtest.md): each
# command run several times, one-core and two-core runs interleaved so that both see the same
# machine load, and the median of each printed with their ratio. The logs are generated
# (examples/trace), never committed. Usage: benches/cli_timings.sh [RUNS] (5 by default); needs
# about 3 GB in $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

cargo build --release --features cli --bin spikebreaker --example trace
bin=target/release/spikebreaker
trace=target/release/examples/trace
$trace --days 7 --kinds 500 --sends 5000000 > "$dir/many.csv"
$trace --days 14 --kinds 4 --sends 20000000 > "$dir/four.csv"
$trace --days 30 --kinds 20 --sends 50000000 > "$dir/big.csv"

# Seconds of wall-clock time a command takes.
seconds() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -n 1; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The machine's own ceiling, the reference for the speed-up: two 1-core runs side by side, whose
# work is as parallel as work gets. On a machine whose two cores are whole, they take as long as
# one run (a ceiling of 2x); on shared or throttled ones, longer.
side_by_side() {
    local start end
    start=$(date +%s.%N)
    $bin backtest --threads 1 --trace "$dir/many.csv" >/dev/null &
    $bin backtest --threads 1 --trace "$dir/many.csv" >/dev/null
    wait
    end=$(date +%s.%N)
    awk "BEGIN { printf \"%.2f\\n\", $end - $start }"
}

: > "$dir/t1"; : > "$dir/t2"; : > "$dir/pair"; : > "$dir/four"
for _ in $(seq "$runs"); do
    seconds $bin backtest --threads 1 --trace "$dir/many.csv" >> "$dir/t1"
    seconds $bin backtest --threads 2 --trace "$dir/many.csv" >> "$dir/t2"
    side_by_side >> "$dir/pair"
    seconds $bin backtest --trace "$dir/four.csv" >> "$dir/four"
done
one=$(median < "$dir/t1"); two=$(median < "$dir/t2"); pair=$(median < "$dir/pair"); four=$(median < "$dir/four")
sends=$(grep -c , "$dir/four.csv")
echo "backtest, 500 kinds, 7 days, 5 M sends: 1 core ${one} s, 2 cores ${two} s, speed-up $(awk "BEGIN { printf \"%.2f\", $one / $two }")x (runs: $(tr '\n' ' ' < "$dir/t1")/ $(tr '\n' ' ' < "$dir/t2"))"
echo "the machine's ceiling: two 1-core runs side by side in ${pair} s, $(awk "BEGIN { printf \"%.2f\", 2 * $one / $pair }")x the work of one in its time; the backtest's speed-up is $(awk "BEGIN { printf \"%.0f\", 100 * ($one / $two) / (2 * $one / $pair) }")% of it (runs: $(tr '\n' ' ' < "$dir/pair"))"
echo "backtest, 4 kinds, 14 days: $((sends - 1)) sends in ${four} s: $(awk "BEGIN { printf \"%.1f\", ($sends - 1) / $four / 1e6 }") M sends a second (runs: $(tr '\n' ' ' < "$dir/four"))"
echo "tune, 20 kinds, 30 days, 50 M sends, 24 settings: $(seconds $bin tune --trace "$dir/big.csv") s"
