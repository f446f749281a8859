#!/usr/bin/env bash
# Runs the demo: the development OpenID Provider on 127.0.0.1:9000, the demo app on
# 127.0.0.1:9001, and Caddy with trustgate (Caddyfile.example) on http://localhost:8080.
# Ctrl-C stops all three. Called by `make demo` after `make build`.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
export XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"
export TRUSTGATE_ISSUER=http://127.0.0.1:9000
export TRUSTGATE_CLIENT_ID=trustgate
export TRUSTGATE_CLIENT_SECRET=trustgate-dev-secret
export TRUSTGATE_SECRET="${TRUSTGATE_SECRET:-$(head -c 48 /dev/urandom | base64 | tr -d '\n')}"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in 8080 8081 9000 9001 2019; do
	if port_busy "$p"; then
		echo "demo: port $p on 127.0.0.1 is in use; stop what runs there (or a previous demo) first" >&2
		exit 1
	fi
done

pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

bin/trustgate-devop -listen 127.0.0.1:9000 2>"$work/op.log" &
pids+=($!)
bin/trustgate-demo-app -listen 127.0.0.1:9001 -jwks http://localhost:8080/.trustgate/jwks.json \
	-assertion-issuer http://localhost:8080 &
pids+=($!)
bin/caddy run --config Caddyfile.example --adapter caddyfile 2>"$work/caddy.log" &
pids+=($!)

for _ in $(seq 1 100); do
	port_busy 8080 && port_busy 9000 && port_busy 9001 && break
	sleep 0.1
done
if ! port_busy 8080; then
	echo "demo: Caddy did not start; its log:" >&2
	cat "$work/caddy.log" >&2
	exit 1
fi

cat <<MSG

  trustgate demo is running.

  Open  http://localhost:8080/  in a browser: the development OP's login page appears;
  pick a user (e.g. "bindid-known"), and the demo app shows every identity and trust header
  trustgate sent it, and checks the signed X-Auth-Assertion against /.trustgate/jwks.json.
  /admin needs a BankID-level sign-in: "bindid-known" is asked to sign in again (step-up),
  "bindid-new" gets a 403 page. /.trustgate/me shows your profile; the app's button signs
  you out.

  BankID profile:  http://localhost:8081/  the same OP with provider bankid: sign in as
                   "ola" or "kari" (signed userinfo); no X-Auth-New-User there.
  Development OP:  http://127.0.0.1:9000   (users: bindid-known, bindid-new, ola, ase, kari, andrew)
  CIBA phone:      http://127.0.0.1:9000/device
  Logs:            $work/caddy.log, $work/op.log
  Stop:            Ctrl-C

MSG
wait -n "${pids[@]}"
