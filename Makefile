# trustgate — the two commands a newcomer needs:
#   make demo   build Caddy with trustgate and run it in front of the demo app, with the
#               development OpenID Provider; open the printed URL
#   make test   install what the tests need (chromium, redis-server, Node.js, the pinned
#               OpenID Provider), vet, build, validate Caddyfile.example, and run every test,
#               the end-to-end ones included (fails, never skips, when a prerequisite is missing)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := bin

.PHONY: all build demo test bench e2e-deps vet prereqs clean

all: build

build: prereqs
	$(GO) build -o $(BIN)/caddy ./caddy-build
	$(GO) build -o $(BIN)/trustgate-devop ./internal/oidctest/devop
	$(GO) build -o $(BIN)/trustgate-demo-app ./demo/app

demo: build
	scripts/demo.sh

# Private XDG dirs: Caddy keeps its storage and autosave.json there, and the tests must
# neither read nor write the user's.
test: prereqs e2e-deps
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	export XDG_DATA_HOME="$$tmp/data" XDG_CONFIG_HOME="$$tmp/config"; \
	echo "== go vet"; $(GO) vet ./...; \
	echo "== build the custom Caddy and check the module is in it"; \
	$(GO) build -o "$$tmp/caddy" ./caddy-build; \
	"$$tmp/caddy" list-modules | grep -qx http.handlers.trustgate; \
	echo "== caddy validate Caddyfile.example (no provider running)"; \
	TRUSTGATE_ISSUER=http://127.0.0.1:9000 TRUSTGATE_CLIENT_ID=trustgate TRUSTGATE_CLIENT_SECRET=dev \
	TRUSTGATE_SECRET=validate-only-secret-0123456789abcdef \
	"$$tmp/caddy" validate --config Caddyfile.example --adapter caddyfile 2>/dev/null; \
	echo "== go test (race detector on)"; \
	$(GO) test -race -count=1 -json ./... | $(GO) run ./internal/testreport; \
	echo "== allocation tests (race detector off: it changes allocation counts)"; \
	$(GO) test -count=1 -json ./session/ ./trust/ | $(GO) run ./internal/testreport

# Load benchmark against plain reverse_proxy in the same run (wrk, installed when missing);
# writes bench/RESULTS.md. Takes a few minutes; see bench/README.md.
bench: prereqs
	bench/run.sh

# chromium, redis-server, Node.js (apt, as root) and oidc-provider (npm ci into .cache/e2e/op).
e2e-deps:
	scripts/e2e-deps.sh

vet: prereqs
	$(GO) vet ./...

prereqs:
	@command -v $(GO) >/dev/null || { echo "make: Go is required (1.26 or newer): https://go.dev/dl" >&2; exit 1; }
	@v=$$($(GO) env GOVERSION | sed 's/^go//'); major=$${v%%.*}; rest=$${v#*.}; minor=$${rest%%.*}; \
	if [ "$$major" -lt 1 ] || { [ "$$major" -eq 1 ] && [ "$$minor" -lt 26 ]; }; then \
		echo "make: Go 1.26 or newer is required (found go$$v): https://go.dev/dl" >&2; exit 1; fi

clean:
	rm -rf $(BIN) .cache
