#!/usr/bin/env bash
# Sessions at scale (`make bench-scale`): memory per session (memory store and Redis) and
# warm-request throughput and p99 with 1,000 / 100,000 / 1,000,000 sessions stored. Installs
# redis-server (scripts/e2e-deps.sh) when missing; writes bench/SCALE.md. Flags go to
# bench/scale/main.go: -sessions 1000,100000 -benchtime 2s for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || { echo "bench-scale: Go is required (1.26 or newer): https://go.dev/dl" >&2; exit 1; }
if ! command -v redis-server >/dev/null 2>&1; then
	scripts/e2e-deps.sh
fi
exec go run ./bench/scale "$@"
