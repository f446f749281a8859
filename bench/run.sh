#!/usr/bin/env bash
# Load benchmark of trustgate against Caddy's plain reverse_proxy (`make bench`).
# Installs wrk (apt, as root; otherwise prints the command and fails) and redis-server
# (scripts/e2e-deps.sh) when missing, builds the custom Caddy, the upstream and the driver
# into .cache/bench/, and runs the driver, which writes bench/RESULTS.md.
# Flags go to the driver: bench/run.sh -h lists them; a quick run: bench/run.sh -rounds 1 -duration 3s
set -euo pipefail
cd "$(dirname "$0")/.."

invoked="bench/run.sh${*:+ $*}"
if [ -n "${MAKELEVEL:-}" ] && [ $# -eq 0 ]; then invoked="make bench"; fi

if ! command -v wrk >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench: wrk is missing; install it with:" >&2
		echo "  sudo apt-get install -y wrk" >&2
		exit 1
	fi
	echo "bench: apt-get install wrk"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
if ! command -v redis-server >/dev/null 2>&1; then
	scripts/e2e-deps.sh
fi

command -v go >/dev/null || { echo "bench: Go is required (1.26 or newer): https://go.dev/dl" >&2; exit 1; }
out=.cache/bench
mkdir -p "$out"
echo "bench: building Caddy with trustgate, the upstream and the driver into $out/"
go build -o "$out/caddy" ./caddy-build
go build -o "$out/upstream" ./bench/upstream
go build -o "$out/driver" ./bench/driver

export BENCH_INVOKED_AS="$invoked"
exec "$out/driver" "$@"
