# Cassata. `make` alone lists the targets; `make run` and `make test` are the
# two a newcomer needs. Tests start their own redis-server processes (see
# store/redisstore/redistest), so `make test` needs no running services.

GO           ?= go
BIN          ?= bin/cassata
# Extra flags for `go test`; drop -race here if it makes the suite too slow.
TEST_FLAGS   ?= -race
TEST_TIMEOUT ?= 14m
PKGS         ?= ./...
# Arguments for cmd/cassata-bench, e.g. `make bench BENCH_ARGS="-events 100000"`.
BENCH_ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help generate check-generated build run deps test bench lint clean

help: ## Show this help
	@echo 'Usage: make <target> [VAR=value]'
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo 'Variables: GO=$(GO) BIN=$(BIN) TEST_FLAGS=$(TEST_FLAGS) TEST_TIMEOUT=$(TEST_TIMEOUT) PKGS=$(PKGS) BENCH_ARGS=$(BENCH_ARGS)'

generate: ## Regenerate code (templ components) with go generate
	$(GO) generate ./...

# Generated *_templ.go files are committed; regenerating must not change them.
check-generated: generate ## Fail if generated *_templ.go files are not committed and current
	@changed="$$(git status --porcelain --untracked-files=all -- '*_templ.go')"; \
	if [ -n "$$changed" ]; then \
		echo 'Generated files differ from what is committed; run `make generate` and commit:' >&2; \
		echo "$$changed" >&2; \
		exit 1; \
	fi

build: check-generated ## Build the cassata binary (into bin/cassata; override with BIN=)
	$(GO) build -o $(BIN) ./cmd/cassata

run: ## Run everything in one process with embedded defaults (cassata dev)
	$(GO) run ./cmd/cassata dev

deps: ## Install redis-server (used by tests and bench) when missing; needs root and apt-get
	@if command -v redis-server >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo 'redis-server is not installed, and this target can only install it as root with apt-get.' >&2; \
		echo 'Install Redis 7 or later yourself, e.g. `sudo apt-get install -y redis-server`, then retry.' >&2; \
		exit 1; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	if [ -z "$$(find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock 2>/dev/null | head -n 1)" ] \
		|| ! apt-get install -y redis-server; then \
		apt-get update && apt-get install -y redis-server; \
	fi; \
	command -v redis-server >/dev/null 2>&1 || { echo 'redis-server still not on PATH after install' >&2; exit 1; }

test: deps check-generated ## Run go vet and every test against real redis-server processes
	$(GO) vet $(PKGS)
	CASSATA_REQUIRE_REDIS=1 $(GO) test $(TEST_FLAGS) -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

bench: deps ## Run the load benchmark cmd/cassata-bench (flags via BENCH_ARGS="...")
	$(GO) run ./cmd/cassata-bench $(BENCH_ARGS)

lint: ## Check formatting (gofmt) and run go vet
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo 'These files need gofmt -w:' >&2; echo "$$unformatted" >&2; exit 1; \
	fi
	$(GO) vet $(PKGS)

clean: ## Remove build output and coverage files
	rm -rf bin/ coverage.out coverage.html *.coverprofile
