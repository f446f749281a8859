// Command caddy is Caddy with the standard modules and trustgate, the OpenID Connect
// gateway. Build it with `go build -o caddy ./caddy-build` (or `make build`).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/trustgate/trustgate"
)

func main() { caddycmd.Main() }
