# Developer shortcuts. The test suite is scripts/test (what CI runs); nothing
# here is part of it.

# BENCH_FLAGS are passed to the benchmark harness, e.g. BENCH_FLAGS=-scaling.
BENCH_FLAGS ?=

.PHONY: bench bench-go
# bench: tokenpivot detect vs DuckDB on the generated realistic hour of
# exports, then the sparse one (BENCH_FLAGS=-sparse=false skips it), the
# pipeline's peak memory, and (with BENCH_FLAGS=-scaling) the scaling table. Needs Go, Node 20 and npm; caches data under $TMPDIR/tokenpivot-bench.
bench:
	go run ./tools/bench $(BENCH_FLAGS)

# bench-go: the Go micro-benchmarks (reader, candidate filter, join, pipeline).
bench-go:
	go test -run '^$$' -bench . -benchmem ./internal/signin ./internal/detect ./internal/pipeline
