# The two commands of the README: `make demo` and `make test`.
GO        ?= go
PKGS      ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 15m

.PHONY: all build test lint vet staticcheck fmt-check demo sandbox bench fuzz test-deps

all: lint test

build:
	$(GO) build $(PKGS)

# test installs what the suite needs (Chromium for the sandbox page test,
# when it can), checks style, and runs every test with the race detector.
test: test-deps lint
	$(GO) test $(TESTFLAGS) $(PKGS)

test-deps:
	@scripts/ensure-chromium.sh

lint: fmt-check vet staticcheck

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

demo: sandbox

fuzz:
	$(GO) test ./internal/inbank -run '^$$' -fuzz FuzzDecodeResponse -fuzztime 20s
