# The two commands of the README: `make demo` and `make test`.
#
# Everything here builds, tests and releases with Go 1.27.3: the go command
# of the machine (1.26 is enough to start) fetches that toolchain from the
# module proxy the first time (76 MB, about 10 s). go1.26.8's standard
# library has vulnerabilities our code reaches (`make vulncheck` lists 12).
export GOTOOLCHAIN ?= go1.27.3
GO        ?= go
PKGS      ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 15m

.PHONY: all build binaries release release-version image chart test lint vet staticcheck fmt-check tidy-check bench-peers demo sandbox up bench chaos fuzz test-deps vulncheck

all: lint test

# VERSION is stamped into the binaries (--version, logs, smartrent_build_info)
# and labels the image; a tag like v1.2.0 on the commit makes it that.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
PLATFORMS ?= amd64 arm64
LDFLAGS   := -s -w -X github.com/smartrent-bridge/bridge/internal/version.stamped=$(VERSION) -X github.com/smartrent-bridge/bridge/internal/version.stampedRevision=$(REVISION)
COMMANDS  := bridge webhook-ingress smartrentctl

# build puts the three binaries for this machine in bin/.
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(COMMANDS))

# binaries cross-compiles static binaries for linux/$(PLATFORMS) into dist/bin/linux_<arch>/.
binaries:
	@for arch in $(PLATFORMS); do \
	  echo "building linux/$$arch"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
	    -o dist/bin/linux_$$arch/ $(addprefix ./cmd/,$(COMMANDS)) || exit 1; \
	done

# RELEASE_VERSION is the chart's appVersion: the image tag the chart pulls
# by default is the version a release builds and the image is pushed as.
RELEASE_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' deploy/helm/smartrent-bridge/Chart.yaml)

# release: dist/release/ holds an archive per OS and architecture (linux:
# the three binaries; darwin: smartrentctl), a CycloneDX SBOM per binary
# and SHA256SUMS, all of version RELEASE_VERSION (scripts/release.sh).
release:
	GO=$(GO) scripts/release.sh $(RELEASE_VERSION) dist/release

release-version:
	@echo $(RELEASE_VERSION)

# image builds the container image without Docker: an OCI layout in
# dist/image (push: crane push dist/image REF) and dist/smartrent-bridge-<arch>.tar
# for docker load. See tools/image and the Dockerfile.
image: binaries
	$(GO) run ./tools/image -bin dist/bin -out dist/image -tar dist -platforms $(subst $(space),$(comma),$(PLATFORMS)) -version $(VERSION) -revision $(REVISION)
comma := ,
space := $(empty) $(empty)

# test installs what the suite needs (Chromium for the sandbox page test,
# when it can; Node.js for the conformance suite), checks style, and runs
# every test with the race detector.
test: test-deps lint vulncheck image chart
	$(GO) test $(TESTFLAGS) $(PKGS)

# vulncheck fails on any known vulnerability our code reaches, with the
# Go vulnerability database as the module proxy serves it (see the script).
vulncheck:
	scripts/vulncheck.sh

# chart renders deploy/helm/smartrent-bridge with the Helm SDK and checks
# the objects (its own module: Helm stays out of the product's go.mod).
chart:
	cd deploy/helm/charttest && $(GO) vet ./... && $(GO) test -count=1 ./...

test-deps:
	@scripts/ensure-chromium.sh
	@scripts/ensure-node.sh

lint: fmt-check vet staticcheck tidy-check

# tidy-check fails when go.mod or go.sum is out of step with the imports.
tidy-check:
	$(GO) mod tidy -diff
	cd deploy/helm/charttest && $(GO) mod tidy -diff

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) tool staticcheck $(PKGS)

# sandbox runs the fake Inbank as a server, for trying the customer page.
sandbox:
	$(GO) run ./cmd/inbank-sandbox

# up runs the whole product locally and keeps it running until Ctrl-C:
# NATS on 127.0.0.1:4222, the Inbank sandbox on :8081, the ingress on :8080,
# the bridge's metrics on :9090, for the README's commands.
up:
	$(GO) run ./cmd/stack

# demo runs the whole flow in one process (embedded NATS, Inbank sandbox,
# ingress, bridge) and exits 0 when every order reached its expected state.
# DEMO_INTERACTIVE=1 make demo lets you act as the customer in a browser.
demo:
	$(GO) run ./cmd/demo

# chaos runs the real binaries as processes and breaks them (kill -9,
# NATS restarts, a cluster leader stop, Inbank faults, callback chaos);
# each scenario prints orders, completed, lost and duplicate side effects.
chaos:
	$(GO) run ./tools/soak

# bench prints each rate as a ratio to its baseline measured in the same
# run (median of BENCH_COUNT runs): the ingress against raw JetStream sync
# publishes on one server with sync_interval always; the bridge process
# against the Little's-law bound C/(k·L) at C = 64 and C = 256 (k = 2 calls
# before session.created, made together since the calculation and the
# session are concurrent), with its latency overhead, memory and start-up
# time; our bridge against the bare stateless bridge (tools/barebridge)
# at C = 64 and C = 256, rows alternated, each on a fresh nats-server
# process (ours/bare ratios of orders/s, p99 and CPU per order of the bridge
# and of nats-server, and of the bytes each bridge allocates per order);
# a reconcile pass with 1,000 open orders among 200,000
# finished ones against the 1,000 alone (reconcile-scaling ratio); 3
# bridges against 1 on a three-node R3 cluster (bridges-3-vs-1 ratio);
# then the hot paths' Go benchmarks.
BENCH_COUNT ?= 7
bench:
	$(GO) test -run '^$$' -bench 'BenchmarkIngress$$' -benchtime 2s -count $(BENCH_COUNT) ./internal/ingress \
	  | tee .bench-ingress.txt \
	  | $(GO) run ./tools/benchratio -baseline BenchmarkIngress=raw_publish -target BenchmarkIngress/ingress_handler=0.75
	$(GO) run ./tools/soak bench
	$(GO) run ./tools/soak bench -c 256 -mem-orders 0
	$(GO) run ./tools/soak versus -c 64
	$(GO) run ./tools/soak versus -c 256
	$(GO) run ./tools/reconcilebench
	$(GO) run ./tools/soak scale
	scripts/bench-peers.sh
	$(GO) test -run '^$$' -bench . -benchmem ./internal/callbacktoken ./internal/events ./internal/handlers ./internal/orderstore ./internal/quote ./schemas

# bench-peers runs only the side-by-side comparison of the ingress with a
# bare handler, Watermill and Benthos (../shared/bench/peers, ~4 min) and
# prints ingress-vs-bare, ingress-vs-benthos and ingress-cpu-vs-bare, for the
# rows as shipped, ours first, and their mean (PEERS_ORDER=shipped: one pass).
bench-peers:
	scripts/bench-peers.sh

# fuzz runs each fuzz target for a bounded time; the seed corpora in
# testdata/fuzz run in every make test.
fuzz:
	$(GO) test ./internal/inbank -run '^$$' -fuzz FuzzDecodeResponse -fuzztime 20s
	$(GO) test ./internal/events -run '^$$' -fuzz FuzzDecode -fuzztime 20s
	$(GO) test ./internal/ingress -run '^$$' -fuzz FuzzHandler -fuzztime 20s
	$(GO) test ./internal/callbacktoken -run '^$$' -fuzz FuzzVerify -fuzztime 20s
	$(GO) test ./internal/handlers -run '^$$' -fuzz FuzzOrderValidation -fuzztime 20s
