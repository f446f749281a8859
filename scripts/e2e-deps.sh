#!/usr/bin/env bash
# Installs what the end-to-end tests need on a fresh Debian machine: chromium, redis-server,
# Node.js and npm (apt, when running as root; otherwise prints the command and fails), then
# the pinned OpenID Provider (e2e/op/package-lock.json) into .cache/e2e/op with `npm ci`.
# Called by `make test` and `make e2e-deps`; does nothing when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
	if [ "$(id -u)" != 0 ]; then
		echo "e2e-deps: missing $*; install with:" >&2
		echo "  sudo apt-get update && sudo apt-get install -y $*" >&2
		exit 1
	fi
	echo "e2e-deps: apt-get install $*"
	if [ -z "${APT_UPDATED:-}" ]; then
		apt-get update -qq
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
	apt_install "${missing[@]}"
fi
# Debian's nodejs comes without npm (NodeSource's includes it): install it separately.
command -v npm >/dev/null 2>&1 || apt_install npm

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
	echo "e2e-deps: Node.js $(node --version) is too old for oidc-provider 9 (need 20 or newer)" >&2
	exit 1
fi

op=.cache/e2e/op
mkdir -p "$op"
if ! cmp -s e2e/op/package-lock.json "$op/package-lock.json" || [ ! -f "$op/node_modules/oidc-provider/package.json" ]; then
	echo "e2e-deps: npm ci (oidc-provider, pinned in e2e/op/package-lock.json)"
	cp e2e/op/package.json e2e/op/package-lock.json "$op/"
	(cd "$op" && npm ci --no-audit --no-fund --loglevel=error)
fi
