#!/usr/bin/env bash
# Load benchmark of trustgate against Caddy's plain reverse_proxy (`make bench`).
# Installs wrk, and Apache with mod_auth_openidc (the login benchmark's peer; not with
# -peer-logins=false or -logins 0), with apt as root (otherwise prints the command and fails),
# and redis-server (scripts/e2e-deps.sh) when missing, builds the custom Caddy, the upstream and
# the driver into .cache/bench/, and runs the driver, which writes its section of
# bench/RESULTS.md.
# Flags go to the driver: bench/run.sh -h lists them; a quick run: bench/run.sh -rounds 1 -duration 3s
set -euo pipefail
cd "$(dirname "$0")/.."

invoked="bench/run.sh${*:+ $*}"
if [ -n "${MAKELEVEL:-}" ] && [ $# -eq 0 ]; then invoked="make bench"; fi

# The peer runs unless a flag says otherwise (-peer-logins=false, -logins 0).
peer=1
prev=
for a in "$@"; do
	case "$a" in
	-peer-logins=false | --peer-logins=false | -peer-logins=0 | --peer-logins=0 | -logins=0 | --logins=0 | -logins=0s | --logins=0s) peer= ;;
	0 | 0s) case "$prev" in -logins | --logins) peer= ;; esac ;;
	esac
	prev=$a
done

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ -n "$peer" ]; then
	command -v apache2 >/dev/null 2>&1 || [ -x /usr/sbin/apache2 ] || missing+=(apache2)
	[ -e /usr/lib/apache2/modules/mod_auth_openidc.so ] || missing+=(libapache2-mod-auth-openidc)
fi
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench: ${missing[*]} missing; install with:" >&2
		echo "  sudo apt-get install -y ${missing[*]}" >&2
		[ -n "$peer" ] && echo "  (or skip the login benchmark's peer, Apache mod_auth_openidc, with -peer-logins=false)" >&2
		exit 1
	fi
	echo "bench: apt-get install ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The driver runs an Apache of its own, only during the login runs: the packaged service
	# the install may have started would idle on port 80 beside the measurement.
	if [[ " ${missing[*]} " == *" apache2 "* ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet apache2 2>/dev/null; then
		echo "bench: stopping and disabling the apache2 service the install started"
		systemctl disable --now apache2 >/dev/null 2>&1 || true
	fi
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
