#!/usr/bin/env bash
# The full capacity run (about 15-20 minutes on 2 cores): every scenario against the gateway
# and its baselines, connection scaling to 50,000 charge points, report and plots into
# benches/results/. Never run in CI; `ocpp-gateway bench --smoke` is what the tests exercise.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-benches/results}"
mkdir -p "$out"
{ echo "nproc: $(nproc)"; grep -m1 'model name' /proc/cpuinfo; uname -srm; } > "$out/machine.txt"
python3 -m ocpp_gateway.cli bench --out "$out" "${@:2}"
# Logs of the targets stay out of the repository; the report, its JSON and the plots are kept.
mkdir -p "$out/logs" && mv -f "$out"/*.log "$out/logs/" 2>/dev/null || true
python3 -m ocpp_gateway.cli bench plan --charge-points 50000 --profile realistic-1.6 \
    --from "$out/report.json" | tee "$out/plan-50k-realistic-1.6.txt"
