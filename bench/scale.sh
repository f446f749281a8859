#!/usr/bin/env bash
# Sessions at scale (`make bench-scale`): memory per session (memory store and Redis), warm-request
# throughput and p99 with 1,000 / 100,000 / 1,000,000 sessions stored, and 5 minutes of churn at
# the max_sessions bound. Installs redis-server (scripts/e2e-deps.sh) when missing; writes the
# "scale" section of bench/RESULTS.md and bench/scale-*.svg. Flags go to bench/scale/main.go:
# -sessions 1000,100000 -benchtime 2s -churn 30s for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || { echo "bench-scale: Go is required (1.26 or newer): https://go.dev/dl" >&2; exit 1; }
if ! command -v redis-server >/dev/null 2>&1; then
	scripts/e2e-deps.sh
fi
exec go run ./bench/scale "$@"
