# Cassata. `make` alone lists the targets; `make run` and `make test` are the
# two a newcomer needs. Tests start their own redis-server and MariaDB processes
# (see internal/redistest and internal/mysqltest), so `make test`
# needs no running services.

GO           ?= go
BIN          ?= bin/cassata
# Extra flags for `go test`; drop -race here if it makes the suite too slow.
TEST_FLAGS   ?= -race
TEST_TIMEOUT ?= 14m
PKGS         ?= ./...
# Arguments for cmd/cassata-bench, e.g. `make bench BENCH_ARGS="-events 100000"`.
BENCH_ARGS   ?=
# Stamped into the binary (internal/version) by build and image.
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT       ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE         ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG  := github.com/cassata/cassata/internal/version
LDFLAGS      := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT) -X $(VERSION_PKG).Date=$(DATE)
IMAGE        ?= cassata:$(VERSION)
# Fuzz targets (package:Name:budget) that `make fuzz` (and `make test`) run.
# `go test -fuzz` takes one package and one target per run. Each budget is a
# count of inputs (about 6 s on the 2-core development VM), not a duration:
# Go 1.26's fuzzer can fail a target with a bare "context deadline exceeded"
# when a -fuzztime duration ends while a loaded machine has an input in
# flight (golang/go#75804, fixed in Go 1.27); a count has no deadline.
# FUZZTIME (e.g. FUZZTIME=60s or 100000x) replaces every budget for a longer
# run. Their seed corpora (testdata/fuzz/<Name>/) also run with every plain
# `go test`.
FUZZ_TARGETS ?= ./api:FuzzCreateRequest:10000x ./api:FuzzCassataAdd:6000x ./api:FuzzBatchFast:2500x \
	./api:FuzzBatchResponseJSON:3000x ./api:FuzzBodyBytes:20000x ./scheduler:FuzzValidateHeaders:30000x \
	./scheduler/delivery:FuzzDestinationURL:15000x ./store/redisstore:FuzzCompactValues:20000x
FUZZTIME     ?=

.DEFAULT_GOAL := help
.PHONY: help generate check-generated build image run deps test fuzz bench lint clean

help: ## Show this help
	@echo 'Usage: make <target> [VAR=value]'
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo 'Variables: GO=$(GO) BIN=$(BIN) VERSION=$(VERSION) IMAGE=$(IMAGE) TEST_FLAGS=$(TEST_FLAGS) TEST_TIMEOUT=$(TEST_TIMEOUT) PKGS=$(PKGS) BENCH_ARGS=$(BENCH_ARGS)'

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
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/cassata

image: ## Build the container image (deploy/Dockerfile) as IMAGE, default cassata:<version>; needs docker
	@command -v docker >/dev/null 2>&1 || { echo 'make image needs docker on PATH' >&2; exit 1; }
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
		--build-arg DATE=$(DATE) -t $(IMAGE) .

run: ## Run everything in one process with embedded defaults (cassata dev)
	$(GO) run ./cmd/cassata dev

# Tests start their own servers on free loopback ports and never use system
# services, so deps keeps apt from starting any (no MariaDB left on 3306):
# while it installs, a temporary /usr/sbin/policy-rc.d (honoured by
# invoke-rc.d and deb-systemd-invoke) refuses service starts, unless the
# system already has its own policy.
deps: ## Install redis-server, mariadb-server and chromium (used by tests and bench) when missing; needs root and apt-get
	@pkgs=''; \
	command -v redis-server >/dev/null 2>&1 || pkgs="$$pkgs redis-server"; \
	if ! command -v mariadbd >/dev/null 2>&1 && ! command -v mysqld >/dev/null 2>&1 \
		&& [ ! -x /usr/sbin/mariadbd ] && [ ! -x /usr/sbin/mysqld ]; then pkgs="$$pkgs mariadb-server"; fi; \
	[ -x /usr/bin/chromium ] || pkgs="$$pkgs chromium"; \
	if [ -z "$$pkgs" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "Missing:$$pkgs. This target can only install them as root with apt-get." >&2; \
		echo "Install Redis 7 or later, MariaDB 10.6 or later (or MySQL 8) and Chromium yourself, e.g. \`sudo apt-get install -y$$pkgs\`, then retry." >&2; \
		exit 1; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
	fi; \
	if [ -z "$$(find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock 2>/dev/null | head -n 1)" ] \
		|| ! apt-get install -y $$pkgs; then \
		apt-get update && apt-get install -y $$pkgs; \
	fi; \
	command -v redis-server >/dev/null 2>&1 || { echo 'redis-server still not on PATH after install' >&2; exit 1; }; \
	{ command -v mariadbd || command -v mysqld || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; } >/dev/null 2>&1 \
		|| { echo 'mariadbd still not installed after install' >&2; exit 1; }; \
	[ -x /usr/bin/chromium ] || { echo '/usr/bin/chromium still missing after install' >&2; exit 1; }

# The admin UI's end-to-end tests (web/e2e) drive headless Chromium and save
# screenshots of the main pages under artifacts/screenshots.
test: deps check-generated ## Run go vet and every test against real redis-server, MariaDB and Chromium processes
	$(GO) vet $(PKGS)
	CASSATA_REQUIRE_REDIS=1 CASSATA_REQUIRE_MYSQL=1 CASSATA_REQUIRE_CHROMIUM=1 \
	CASSATA_E2E_ARTIFACTS=$(CURDIR)/artifacts/screenshots \
	$(GO) test $(TEST_FLAGS) -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	@# The Redis store once more with its test namespaces in the event layout
	@# of namespaces made before compact events (hashes), and in that of
	@# those made before packed outbox entries (compact, an entry per event).
	@# (Layout 3, packed entries without header codes, differs from the
	@# default layout 4 only in how headers are written: its own tests cover
	@# it, and CASSATA_TEST_EVENT_LAYOUT=3 runs the whole package in it.)
	CASSATA_REQUIRE_REDIS=1 CASSATA_TEST_EVENT_LAYOUT=1 \
	$(GO) test $(TEST_FLAGS) -count=1 -timeout $(TEST_TIMEOUT) ./store/redisstore
	CASSATA_REQUIRE_REDIS=1 CASSATA_TEST_EVENT_LAYOUT=2 \
	$(GO) test $(TEST_FLAGS) -count=1 -timeout $(TEST_TIMEOUT) ./store/redisstore
	@$(MAKE) --no-print-directory fuzz

# A failing input is written to <package>/testdata/fuzz/<Name>/; commit it
# with the fix so that it stays a regression test.
fuzz: ## Fuzz request parsing, answers, header and URL validation briefly (each target's budget, or FUZZTIME)
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; budget=$${rest#"$$name"}; budget=$${budget#:}; \
		override="$(FUZZTIME)"; budget=$${override:-$${budget:-6s}}; \
		echo "fuzz $$name in $$pkg for $$budget"; \
		$(GO) test -tags fuzzlean -run '^$$' -fuzz "^$$name\$$" -fuzztime $$budget $$pkg; \
	done

bench: deps ## Run the load benchmark cmd/cassata-bench (flags via BENCH_ARGS="...")
	$(GO) run ./cmd/cassata-bench $(BENCH_ARGS)

lint: ## Check formatting (gofmt) and run go vet
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo 'These files need gofmt -w:' >&2; echo "$$unformatted" >&2; exit 1; \
	fi
	$(GO) vet $(PKGS)

clean: ## Remove build output, coverage files and test artifacts (screenshots)
	rm -rf bin/ coverage.out coverage.html *.coverprofile artifacts/
