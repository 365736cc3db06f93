#!/usr/bin/env bash
# Draws docs/backtest-report.png, the guide's picture (src/guide/backtest.md) of `spikebreaker
# backtest --report`: three weeks of eight seeded kinds (examples/trace) with an incident two thirds
# in (a runaway on security.2fa_changed, a slow leak on email.receipt a day later), replayed with
# the defaults, the page shot in headless chromium. Usage: docs/backtest-report.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/backtest-report.png}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

cargo build --release --features cli --bin spikebreaker --example trace
target/release/examples/trace --days 21 --kinds 8 --sends 2000000 --incident > "$dir/sends.csv"
target/release/spikebreaker backtest --trace "$dir/sends.csv" --report "$dir/report.html" > /dev/null
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$dir/profile" \
    --window-size=1040,1380 --screenshot="$out" "file://$dir/report.html" 2> /dev/null
echo "written to $out"
