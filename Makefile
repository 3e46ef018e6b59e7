# edgecert — see README.md. `make help` lists the targets.

VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X github.com/edgecert/edgecert/daemon.Version=$(VERSION)
BIN         := bin
# Target of make build: Linux, this machine's architecture unless ARCH=amd64|arm64.
ARCH        ?= $(shell go env GOARCH)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Packages whose tests need root and a booted container run under appliance-test.
GOTEST      ?= go test

.PHONY: default build release test test-short promtool stress lint tidy-check bench bench-attack demo appliance-test help clean

default: lint test build

build: ## static, trimmed, version-stamped linux/$(ARCH) binary at bin/edgecert (ARCH=amd64|arm64)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/edgecert .

release: ## dist/: static linux/amd64+arm64 binaries, .deb packages (nfpm), SHA256SUMS; version from the git tag
	scripts/release.sh

test: promtool ## all unit and integration tests, race detector on (the README's test command)
	$(GOTEST) -race -count=1 -timeout 20m ./...

test-short: promtool ## the -short tier: unit tests, in-process fakes, short attack suite (about 45 s on 2 cores; see BENCHMARKS.md)
	$(GOTEST) -short -count=1 ./...

stress: ## the -short suite 20 times in a row under stress-ng CPU load (RUNS=20)
	scripts/stress.sh -n $(or $(RUNS),20)

promtool: ## promtool for the alert rule tests in monitoring/ (installs Debian's prometheus package when missing; root)
	@command -v promtool >/dev/null 2>&1 || scripts/install-deps.sh monitoring

attack: ## the attack suite in its long form: every row of issue 8 at full scale, default limits (several minutes)
	go test -count=1 -timeout 30m -run 'TestAttack$$' -v ./daemon -attack.long

lint: ## go vet, staticcheck, gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...

tidy-check: ## go.mod and go.sum are tidy
	go mod tidy && git diff --exit-code go.mod go.sum

bench: build ## edgecert vs a bare net/http server and nginx on loopback (installs nginx and wrk), plus Go benchmarks; see BENCHMARKS.md
	scripts/bench/run.sh

bench-attack: build ## issue 8's attacks that nginx shares, edgecert and nginx side by side: a normal client's latency, closes, RSS (about 12 minutes; installs nginx when missing, root); see BENCHMARKS.md
	scripts/bench/attack.sh

demo: build ## the whole flow locally, no AWS: local CA, Route 53 API, DNS, daemon on https://demo.test:8443 (127.0.0.1); root in bin/demo-root.pem
	go build -o $(BIN)/devrig ./internal/devrig/cmd/devrig
	$(BIN)/devrig -demo -root-file $(BIN)/demo-root.pem -- $(BIN)/edgecert run

appliance-test: ## boots the AMI's provisioning in systemd-nspawn and checks the service (root)
	scripts/appliance/test.sh

fleet-test: ## 3+1 daemons in network namespaces sharing certificates through S3, against the local CA (root); EDGECERT_FLEET_BIN=path tests another binary
	scripts/fleet/test.sh

fleet-bench: ## fleet benchmarks: publish -> last host serving, S3 requests per host per hour (root); see BENCHMARKS.md
	scripts/fleet/test.sh -bench

clean:
	rm -rf $(BIN) dist

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'
