# The one gate is `make check`; `make test-all` is the test command CI runs.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/.bin
# Every go command here runs on the toolchain go.mod names (fetched through the module proxy),
# whatever GOTOOLCHAIN the machine sets: the binary and the checks see the patched standard library.
export GOTOOLCHAIN := $(shell sed -n 's/^toolchain //p' $(CURDIR)/go.mod)
GOLANGCI_VERSION := v2.15.0
GOVULNCHECK_VERSION := v1.9.0
# The vulnerability database is built from this pinned golang.org/x/vulndb. To update it, set
# the pseudo-version `go list -m golang.org/x/vulndb@latest` prints and run make vuln.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
GOLANGCI := $(BIN)/golangci-lint-$(GOLANGCI_VERSION)
GOVULNCHECK := $(BIN)/govulncheck-$(GOVULNCHECK_VERSION)
VULNDB := $(BIN)/vulndb-$(VULNDB_VERSION)

.PHONY: check fmt-check vet lint test vuln test-all fault build backends-down openapi bench soak image

check: fmt-check vet lint test vuln

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^test/backends/')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd test/compose && $(GO) vet ./...

lint: $(GOLANGCI)
	$(GOLANGCI) run ./...

# The fault suite runs after the other packages, not beside them: beside the end-to-end suite
# it can starve a backend of CPU long enough to miss its clients' deadlines.
# test/compose, the check of compose.yaml, is a module of its own: the Compose loader's
# dependencies stay out of the service's.
test:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/test/fault$$')
	cd test/compose && $(GO) test -count=1 ./...
	$(GO) test -race -count=1 ./test/fault

# govulncheck reads a database built here from the pinned golang.org/x/vulndb (so it needs no
# network beyond the module proxy) and fails on any vulnerability the code reaches.
vuln: $(GOVULNCHECK) $(VULNDB)
	$(GOVULNCHECK) -db file://$(VULNDB) ./...

# Linters are pinned and installed through the Go toolchain into .bin/.
$(GOLANGCI):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS=-buildvcs=false $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	mv $(BIN)/golangci-lint $@

$(GOVULNCHECK):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS=-buildvcs=false $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)
	mv $(BIN)/govulncheck $@

# indexdb turns the OSV reports of golang.org/x/vulndb's data/osv into the database layout
# govulncheck reads; any failure here fails make check, never a silent pass.
$(VULNDB):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS=-buildvcs=false $(GO) install golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION)
	@set -euo pipefail; \
	dir=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
	test -d "$$dir/data/osv" || { echo "golang.org/x/vulndb@$(VULNDB_VERSION) has no data/osv" >&2; exit 1; }; \
	rm -rf $@.tmp; $(BIN)/indexdb -vulns "$$dir/data/osv" -out $@.tmp; mv $@.tmp $@

# Starts (installing when needed) every backend the tests use on 127.0.0.1, then runs every
# test against them, then the vulnerability check. Under CI=true a test that cannot reach its
# backend fails.
test-all:
	@exports=$$(bash test/backends/up.sh) || { echo "test/backends/up.sh failed" >&2; exit 1; }; \
	eval "$$exports"; \
	$(MAKE) --no-print-directory test vuln

# The fault suite in its full form (about 2 000 commands per scenario): processes and backends
# killed under load, poison messages, competing servers, floods of bad requests; it prints one
# table. Its CI form runs within test-all.
fault:
	@exports=$$(bash test/backends/up.sh) || { echo "test/backends/up.sh failed" >&2; exit 1; }; \
	eval "$$exports"; \
	HEXAPOST_FAULT_SCALE=full $(GO) test -race -count=1 -v -timeout 30m ./test/fault

backends-down:
	bash test/backends/down.sh

build:
	$(GO) build -buildvcs=auto -o hexapost .

# The container image (Containerfile): the Go toolchain builds a static binary and stages it with
# the CA certificates in $(IMAGE_CONTEXT), and the first engine that works (docker with a running
# daemon, podman, buildah; or IMAGE_ENGINE) copies them onto scratch, pulling nothing.
IMAGE ?= hexapost:dev
IMAGE_CONTEXT := $(BIN)/image
IMAGE_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The source label is the remote's URL when it is one (a clone of a local path has none).
IMAGE_SOURCE ?= $(shell git config --get remote.origin.url | grep -E '^(https?|ssh|git)://|^git@')
IMAGE_ENGINE ?= $(shell if docker info >/dev/null 2>&1; then echo docker; \
	else for e in podman buildah; do command -v $$e >/dev/null && { echo $$e; break; }; done; fi)
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

image:
	@test -n "$(IMAGE_ENGINE)" || { echo "make image needs docker (with a running daemon), podman or buildah" >&2; exit 1; }
	@test -r $(CA_BUNDLE) || { echo "make image copies the CA certificates from $(CA_BUNDLE): install ca-certificates or set CA_BUNDLE" >&2; exit 1; }
	@rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -ldflags '-s -w' -o $(IMAGE_CONTEXT)/hexapost .
	install -m 0444 $(CA_BUNDLE) $(IMAGE_CONTEXT)/ca-certificates.crt
	$(IMAGE_ENGINE) build -f Containerfile -t $(IMAGE) --build-arg VERSION=$(IMAGE_VERSION) \
		--build-arg REVISION=$(IMAGE_REVISION) --build-arg SOURCE='$(IMAGE_SOURCE)' $(IMAGE_CONTEXT)
	@echo "$(IMAGE) built with $(IMAGE_ENGINE): $$($(IMAGE_ENGINE) images --format '{{.Size}}' $(IMAGE))"

openapi:
	$(GO) test ./api -run OpenAPI -update

# Measures hexapost against ceilings measured on the same machine in the same run (bare
# net/http, a raw MySQL read-append transaction, the MongoDB-wire server's raw upsert) and
# writes the README's performance table to bench.md. About five minutes;
# HEXAPOST_PERF_SECONDS sets each load's length (default 10).
bench:
	@exports=$$(bash test/backends/up.sh) || { echo "test/backends/up.sh failed" >&2; exit 1; }; \
	eval "$$exports"; \
	HEXAPOST_BENCH_OUT=$(CURDIR)/bench.md $(GO) test ./test/e2e -run '^$$' -bench Performance -benchtime 1x -timeout 30m

# Runs the command mix for five minutes (HEXAPOST_SOAK_MINUTES) at half of the maximum
# throughput and prints each process's resident memory after the first minute and at the end.
soak:
	@exports=$$(bash test/backends/up.sh) || { echo "test/backends/up.sh failed" >&2; exit 1; }; \
	eval "$$exports"; \
	$(GO) test ./test/e2e -run '^$$' -bench Soak -benchtime 1x -timeout 30m
