# Outpost build. Every tool is pinned in go.mod (`go tool ...`), so a machine
# needs only Go and what scripts/deps installs (make, and gcc for -race).

SHELL   := /bin/bash
GO      ?= go
BIN     := bin
# The name of this machine in the benchmark table (docs/PERFORMANCE.md).
BENCH_MACHINE ?= $(shell hostname)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/outpost-robotics/outpost/version.Version=$(VERSION) \
           -X github.com/outpost-robotics/outpost/version.Commit=$(COMMIT)
BINARIES := outpostd outpost outpost-cloud
# Badger corrupts data on 32-bit builds (docs/ARCHITECTURE.md, decision 1),
# so only these.
CROSS_ARCHES ?= amd64 arm64
GOFILES = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')

# Debian versions must start with a digit; untagged builds sort before 0.0.1.
DEB_VERSION ?= $(shell v=$$(git describe --tags --exact-match 2>/dev/null | sed 's/^v//'); echo $${v:-0.0.0~git$(COMMIT)})

.PHONY: all build test lint generate check-generate cross deb bench clean run demo

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

# The README's test command runs this: lint, every test with the race
# detector, the cloud's API tests a second time on PostgreSQL (without the
# race detector, which the first run already brings to the same handlers),
# and a check that the generated code is what `make generate` makes.
# A package's tests may take longer than go test's default 10 minutes on a
# cold cache: the arm64 tests cross-compile a package's tests first.
# The reliability suite's CI-sized run goes last, on its own: it times
# start to READY after SIGKILLs (at most 2 s), which
# other packages' fsync-heavy tests on the same cores would distort.
test: lint check-generate
	$(GO) test -race -count=1 -timeout 25m $$($(GO) list ./... | grep -v '/reliability$$')
	OUTPOST_CLOUD_STORE=postgres $(GO) test -count=1 -timeout 25m ./cloud
	$(GO) test -race -count=1 -v ./reliability

# `go mod tidy -diff` changes nothing; it fails, showing the diff, when the
# requirements are not what the imports need (a direct one marked indirect,
# one missing or unused).
lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@if ! out=$$($(GO) mod tidy -diff 2>&1); then \
	  echo "go.mod or go.sum is not tidy: run 'go mod tidy' and commit the result"; echo "$$out" | head -40; exit 1; \
	fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) tool buf lint

generate:
	$(GO) tool buf generate

# Generates into a scratch folder and compares, so it works without git and
# never touches the tree.
check-generate:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(GO) tool buf generate -o "$$tmp" && \
	  if ! diff -r api/gen "$$tmp/api/gen" >/dev/null; then \
	    echo "api/gen is stale: run 'make generate' and commit the result"; diff -r api/gen "$$tmp/api/gen" | head -20; exit 1; \
	  fi && echo "api/gen matches the protos"

cross:
	@for arch in $(CROSS_ARCHES); do \
	  case $$arch in \
	    amd64|arm64) ;; \
	    *) echo "refusing linux/$$arch: Outpost builds for 64-bit only (amd64, arm64)."; \
	       echo "Badger, the daemon's store, returns wrong results or panics on 32-bit builds (docs/ARCHITECTURE.md, decision 1)."; \
	       echo "Every Raspberry Pi from the 3 on and every Jetson runs a 64-bit OS: install that."; exit 1 ;; \
	  esac; \
	  mkdir -p $(BIN)/linux-$$arch && \
	  echo "building linux/$$arch" && \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-$$arch/ $(addprefix ./cmd/,$(BINARIES)) || exit 1; \
	done

# .deb packages for the 64-bit targets, from the binaries `make cross` builds.
deb: cross
	@for arch in $(CROSS_ARCHES); do \
	  rm -rf $(BIN)/deb-stage && mkdir -p $(BIN)/deb-stage && \
	  cp $(BIN)/linux-$$arch/outpostd $(BIN)/linux-$$arch/outpost $(BIN)/deb-stage/ && \
	  DEB_ARCH=$$arch DEB_VERSION='$(DEB_VERSION)' \
	    $(GO) tool nfpm package --config packaging/nfpm.yaml --packager deb --target $(BIN)/ || exit 1; \
	done

# Every package's benchmarks (BenchmarkDaemon too: it builds outpostd and
# writes 1 GB), then the headline table of each figure beside its goal,
# printed and written into docs/PERFORMANCE.md with the machine it ran on.
# BENCH_FLAGS adds go test flags (-count 3); the benchmarks' own knobs
# (OUTPOST_DRAIN_MB, OUTPOSTD_BENCH_BACKLOG_MB, ...) pass through;
# OUTPOST_BENCH_CAPTURES defaults to the goal's 10 million captures here. The table
# is written even when a benchmark fails, and make still fails then.
bench:
	@mkdir -p $(BIN)
	@set -o pipefail; OUTPOSTD_BENCH=1 OUTPOST_BENCH_CAPTURES=$${OUTPOST_BENCH_CAPTURES:-10000000} $(GO) test -run '^$$' -bench . -benchmem -timeout 60m $(BENCH_FLAGS) ./... 2>&1 | tee $(BIN)/bench.txt; \
	  status=$$?; $(GO) run ./scripts/benchtable -in $(BIN)/bench.txt -doc docs/PERFORMANCE.md -machine "$(BENCH_MACHINE)" && exit $$status

# The README's run command: the one-command demo (package demo). It starts
# outpost-cloud and two parts' outpostd on loopback from bin/ and drives them
# through the outpost CLI; DEMO_FLAGS=--keep keeps its temporary folder and keeps the cloud and the parts running for the fleet app until Ctrl-C.
DEMO_FLAGS ?=
demo: build
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/outpost-demo
	$(BIN)/outpost-demo --bin $(BIN) $(DEMO_FLAGS)

# An alias of demo; the fleet cloud alone is `bin/outpost-cloud serve`.
run: demo

# The reliability suite's long run (package reliability): the
# real binaries SIGKILLed, partitioned and over budget on loopback, one
# result line per scenario. `make test` includes its CI-sized run.
.PHONY: reliability
reliability:
	$(GO) test -count=1 -timeout 60m -v ./reliability -args -long

# Publish the examples as packages of organization PKG_ORG on the cloud the
# CLI is logged in to (or $$OUTPOST_CLOUD and $$OUTPOST_TOKEN):
# examples/modules/blinker built for amd64 and arm64 as one version of
# ORG/blinker (tagged stable), and the ML-model-style file package
# examples/packages/detector-model as ORG/detector-model for any platform.
# PKG_VERSION sets the version (default 0.1.0).
PKG_ORG ?=
PKG_VERSION ?= 0.1.0
.PHONY: package-examples
package-examples: build
	@test -n "$(PKG_ORG)" || { echo "set PKG_ORG to the organization ID: make package-examples PKG_ORG=..."; exit 2; }
	@for arch in amd64 arm64; do \
	  mkdir -p $(BIN)/packages/blinker-$$arch && \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -o $(BIN)/packages/blinker-$$arch/blinker ./examples/modules/blinker && \
	  $(BIN)/outpost package upload $(PKG_ORG)/blinker --version $(PKG_VERSION) --type module --platform linux/$$arch $(BIN)/packages/blinker-$$arch || exit 1; \
	done
	$(BIN)/outpost package tag $(PKG_ORG)/blinker $(PKG_VERSION) stable
	$(BIN)/outpost package upload $(PKG_ORG)/detector-model --version $(PKG_VERSION) --type ml_model --platform any examples/packages/detector-model

clean:
	rm -rf $(BIN)
	$(GO) clean -testcache
