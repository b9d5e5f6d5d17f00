# Entry points: make run, make test, make bench, make fuzz. Targets run module by module.
MODULES := $(patsubst %/go.mod,%,$(wildcard */go.mod))
FUZZTIME ?= 10s
BENCHTIME ?= 1x
GOTEST ?= go test

TEST_TARGETS := $(addprefix test/,$(MODULES))
FUZZ_TARGETS := $(addprefix fuzz/,$(MODULES))
BENCH_TARGETS := $(addprefix bench/,$(MODULES))

.PHONY: run build test bench fuzz vet fmt check $(TEST_TARGETS) $(FUZZ_TARGETS) $(BENCH_TARGETS)

# Built into bin/ rather than "go run", so the command lines serve prints name a binary
# that outlives this run.
run: build
	./bin/alknet serve

build:
	mkdir -p bin && go build -o bin/alknet ./cmd/alknet

test: $(TEST_TARGETS)

# Static pattern rules: plain pattern rules are skipped for .PHONY targets.
# core runs with the race detector; every module shuffles test order.
$(TEST_TARGETS): test/%:
	cd $* && $(GOTEST) $(if $(filter core,$*),-race) -shuffle=on -count=1 -timeout 30m ./...

# Each fuzz target runs for FUZZTIME (go test allows one -fuzz target per run).
fuzz: $(FUZZ_TARGETS)

$(FUZZ_TARGETS): fuzz/%:
	@cd $* && for pkg in $$(go list ./...); do \
		for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(CURDIR)/scripts/fuzz-target $$pkg $$f $(FUZZTIME) || exit 1; \
		done; \
	done

bench: $(BENCH_TARGETS)

$(BENCH_TARGETS): bench/%:
	cd $* && go test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 60m ./...

vet:
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done

fmt:
	gofmt -l -w $(MODULES)

# check fails if formatting or go mod tidy would change the tree.
check: vet
	@test -z "$$(gofmt -l $(MODULES))" || (gofmt -l $(MODULES); echo "gofmt needed"; exit 1)
	@for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy -diff) || exit 1; done
