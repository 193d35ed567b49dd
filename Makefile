# Developer shortcuts. The test suite is scripts/test (what CI runs); `make
# check` runs the static checks CI runs before it.

# BENCH_FLAGS are passed to the benchmark harness, e.g. BENCH_FLAGS=-scaling.
BENCH_FLAGS ?=

# STATICCHECK is the pinned staticcheck, fetched through the module proxy.
STATICCHECK ?= go run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: bench bench-go check

# check: the static checks CI runs before the tests (.ci/run): gofmt, go vet,
# staticcheck (staticcheck.conf) and a tidy go.mod.
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(STATICCHECK) ./...
	go mod tidy -diff

# bench: tokenpivot detect vs DuckDB on the generated realistic hour of
# exports, then the sparse one (BENCH_FLAGS=-sparse=false skips it), the
# pipeline's peak memory, and (with BENCH_FLAGS=-scaling) the scaling table. Needs Go, Node 20 and npm; caches data under $TMPDIR/tokenpivot-bench.
bench:
	go run ./tools/bench $(BENCH_FLAGS)

# bench-go: the Go micro-benchmarks (reader, candidate filter, join, pipeline).
bench-go:
	go test -run '^$$' -bench . -benchmem ./internal/signin ./internal/detect ./internal/pipeline
