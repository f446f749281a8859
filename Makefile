# trustgate — the two commands a newcomer needs:
#   make demo   build Caddy with trustgate and run it in front of the demo app, with the
#               development OpenID Provider; open the printed URL
#   make test   install what the tests need (chromium, redis-server, Node.js, the pinned
#               OpenID Provider), vet, staticcheck, build, validate Caddyfile.example, and run
#               every test, the end-to-end ones included (fails, never skips, when a
#               prerequisite is missing)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := bin

# staticcheck, pinned. `go run pkg@version` fetches it through the Go module proxy (checked
# against the checksum database), builds it with this Go, caches the binary, and keeps it out
# of go.mod. v0.8.x (staticcheck 2026.2) is the series whose go.mod requires Go 1.26.
STATICCHECK_VERSION := v0.8.2
# One run over both build configurations `make test` compiles: the race-detector run sees the
# files tagged `race`, the allocation run the ones tagged `!race`.
STATICCHECK_RUN := printf 'default:\nrace: -tags=race\n' | \
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -matrix ./...

.PHONY: all build demo test bench bench-scale e2e-deps vet staticcheck prereqs clean security-report xcaddy soak chaos

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
	echo "== staticcheck $(STATICCHECK_VERSION)"; $(STATICCHECK_RUN); \
	echo "== scripts/house -check (the root's floors: arrows point down, <= 15 methods a type, <= 600 lines a file)"; \
	$(GO) run ./scripts/house -check . >"$$tmp/house.txt" || { cat "$$tmp/house.txt"; exit 1; }; \
	echo "== build the custom Caddy and check the module is in it"; \
	$(GO) build -o "$$tmp/caddy" ./caddy-build; \
	"$$tmp/caddy" list-modules | grep -qx http.handlers.trustgate; \
	echo "== caddy validate Caddyfile.example (no provider running)"; \
	TRUSTGATE_ISSUER=http://127.0.0.1:9000 TRUSTGATE_CLIENT_ID=trustgate TRUSTGATE_CLIENT_SECRET=dev \
	TRUSTGATE_SECRET=validate-only-secret-0123456789abcdef \
	"$$tmp/caddy" validate --config Caddyfile.example --adapter caddyfile 2>/dev/null; \
	echo "== caddy validate examples/*.Caddyfile (one per provider profile)"; \
	for f in examples/*.Caddyfile; do \
		OIDC_CLIENT_ID=validate OIDC_CLIENT_SECRET=validate TRUSTGATE_SECRET=validate-only-secret-0123456789abcdef \
		"$$tmp/caddy" validate --config "$$f" --adapter caddyfile >/dev/null 2>"$$tmp/validate.log" || { cat "$$tmp/validate.log"; echo "caddy validate $$f failed" >&2; exit 1; }; \
	done; \
	echo "== go test (race detector on)"; \
	$(GO) test -race -count=1 -json ./... | $(GO) run ./internal/testreport; \
	echo "== allocation tests (race detector off: it changes allocation counts)"; \
	$(GO) test -count=1 -json ./session/ ./trust/ | $(GO) run ./internal/testreport

# Build Caddy with trustgate the way the README's build section says, with xcaddy (pinned,
# fetched through the Go module proxy), from this checkout. The module is not published, and
# the proxy answers an unknown module path with an error rather than "not found", so the
# GOPROXY list ends in "off": the module resolves from the checkout alone. Run by .ci/run
# after `make test` (a first build compiles all of Caddy once more: minutes on 2 cores).
XCADDY_VERSION := v0.4.5
CADDY_VERSION := v2.11.9
xcaddy: prereqs
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; here=$$(pwd); \
	echo "== xcaddy $(XCADDY_VERSION) build $(CADDY_VERSION) --with github.com/trustgate/trustgate=$$here"; \
	( cd "$$tmp" && GOPROXY='https://proxy.golang.org|off' GOFLAGS= \
		$(GO) run github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION) build $(CADDY_VERSION) \
		--with github.com/trustgate/trustgate="$$here" --output "$$tmp/caddy" >"$$tmp/xcaddy.log" 2>&1 ) \
		|| { tail -20 "$$tmp/xcaddy.log"; exit 1; }; \
	"$$tmp/caddy" list-modules | grep -qx http.handlers.trustgate; \
	echo "xcaddy build ok: http.handlers.trustgate is in the binary"

# Load benchmark against plain reverse_proxy in the same run (wrk, installed when missing);
# writes bench/RESULTS.md. Takes a few minutes; see bench/README.md.
bench: prereqs
	bench/run.sh

# Sessions at scale: memory per session (memory store, Redis) and warm requests with
# 1,000 / 100,000 / 1,000,000 sessions stored, and 5 minutes of churn at max_sessions; writes
# the "scale" section of bench/RESULTS.md and its charts. Needs about 4 GB and 10 minutes.
bench-scale: prereqs
	bench/scale.sh

# Soak: three gateway instances on one Redis at 80% of their measured capacity for 10 minutes,
# logins and logouts mixed in; fails on any error, a lost session, or RSS or goroutines still
# growing (> 5% over the last 5 minutes). SOAK_DURATION=1m for a quick run (results then go to
# a temporary directory). Writes the "soak" section of bench/RESULTS.md and bench/soak-*.svg.
soak: prereqs
	@command -v redis-server >/dev/null 2>&1 || scripts/e2e-deps.sh
	$(GO) test -tags soak -run TestSoak -count=1 -v -timeout 30m ./bench/fault

# Chaos: under load, kill the Sentinel primary, stop the OpenID Provider, let 1,000 sessions'
# access tokens expire at once, restart Redis empty; fails when a criterion fails (see
# bench/fault). Writes the "chaos" section of bench/RESULTS.md.
chaos: prereqs
	@command -v redis-server >/dev/null 2>&1 || scripts/e2e-deps.sh
	$(GO) test -tags chaos -run TestChaos -count=1 -v -timeout 30m ./bench/fault

# chromium, redis-server, Node.js (apt, as root) and oidc-provider (npm ci into .cache/e2e/op).
e2e-deps:
	scripts/e2e-deps.sh

vet: prereqs
	$(GO) vet ./...

staticcheck: prereqs
	$(STATICCHECK_RUN)

# How many SECURITY.md cases are covered, per group: runs the tests named after a case
# (Test<GROUP><NN>_..., Fuzz<GROUP><NN>_...) with the same private XDG dirs as `make test`,
# and counts the passing ones from the go test -json output, plus the N/A and elsewhere rows
# of SECURITY-COVERAGE.md (internal/securityreport). Fails when a case is uncovered or a
# covering test failed.
security-report: prereqs e2e-deps
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	export XDG_DATA_HOME="$$tmp/data" XDG_CONFIG_HOME="$$tmp/config"; \
	$(GO) test -count=1 -json -run '^(Test|Fuzz)[A-Z]+[0-9]+_' ./... | $(GO) run ./internal/securityreport

prereqs:
	@command -v $(GO) >/dev/null || { echo "make: Go is required (1.26 or newer): https://go.dev/dl" >&2; exit 1; }
	@v=$$($(GO) env GOVERSION | sed 's/^go//'); major=$${v%%.*}; rest=$${v#*.}; minor=$${rest%%.*}; \
	if [ "$$major" -lt 1 ] || { [ "$$major" -eq 1 ] && [ "$$minor" -lt 26 ]; }; then \
		echo "make: Go 1.26 or newer is required (found go$$v): https://go.dev/dl" >&2; exit 1; fi

clean:
	rm -rf $(BIN) .cache
