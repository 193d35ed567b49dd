// Command bench is tokenpivot's performance benchmark (`make bench`): it
// generates one heavy hour of exports, runs `tokenpivot detect` and DuckDB
// (tools/bench/duckdb/rule.mjs, the same rule as SQL) side by side on the same files,
// checks that both return the same rows, and prints wall time, CPU time and
// peak RSS of each as a Markdown table with the ratios; then the event
// pipeline's peak RSS on the hour's non-interactive blobs and, with -scaling,
// how detect grows with the non-interactive row count.
//
// The headline hour is the realistic one (`gen --benchmark`: time-ordered,
// so each row group holds most users, 2% roaming, ~40k result rows); the
// sparse hour (`gen --benchmark-sparse`: rows grouped by user, only the
// planted pivots match) follows as a second case unless -sparse=false.
//
// Run it from the repository root:
//
//	go run ./tools/bench [-data DIR] [-runs N] [-sparse=false] [-scaling] [-pipeline=false]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

const (
	interactiveContainer    = "am-signinlogs"
	noninteractiveContainer = "am-aadnoninteractiveusersigninlogs"
	// pipelineLimit is the memory of the smallest Flex Consumption instance.
	pipelineLimit = 512 << 20
)

type config struct {
	data     string // cache of generated hours and outputs
	runs     int
	threads  int // DuckDB threads
	scaling  bool
	sparse   bool // also the sparse hour, after the realistic one
	pipeline bool
	seed     uint64
	repo     string // repository root
	// blobsweep runs only the blob-size sweep (blobsweep.go); bin, when
	// set, is the CLI to measure instead of one built from the repository
	// (e.g. a baseline built from another commit).
	blobsweep bool
	sweepOnly string // a regexp of the sweep's case names to run
	bin       string
}

func main() {
	var c config
	flag.StringVar(&c.data, "data", filepath.Join(os.TempDir(), "tokenpivot-bench"), "`dir`ectory caching the generated exports, the binary and outputs")
	flag.IntVar(&c.runs, "runs", 3, "measured runs of each tool, after one warm-up")
	flag.IntVar(&c.threads, "duckdb-threads", 2, "DuckDB threads (the target machine has 2 cores)")
	flag.BoolVar(&c.scaling, "scaling", false, "also measure 0.5M, 1M, 2M and 4M non-interactive rows (realistic layout)")
	flag.BoolVar(&c.sparse, "sparse", true, "also measure the sparse hour (gen --benchmark-sparse) after the realistic one")
	flag.BoolVar(&c.pipeline, "pipeline", true, "also measure `tokenpivot process` on the hour's non-interactive blobs")
	flag.Uint64Var(&c.seed, "seed", 1, "generator seed")
	flag.BoolVar(&c.blobsweep, "blobsweep", false, "measure only the blob-size sweep: one non-interactive blob of 0.1M-4M rows (Parquet) and 0.5M, 2M (JSON Lines) through `process --workers 1`")
	flag.StringVar(&c.sweepOnly, "sweep-only", "", "run only the sweep cases whose name matches this `regexp` (e.g. 'Parquet|data export 2M')")
	flag.StringVar(&c.bin, "bin", "", "measure this tokenpivot binary instead of building the repository's")
	flag.Parse()
	if c.runs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, out io.Writer) error {
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	c.repo = repo
	if err := os.MkdirAll(c.data, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(c.data, "tokenpivot")
	if c.bin != "" {
		bin = c.bin
	} else {
		logf("building %s", bin)
		if err := command(ctx, repo, "go", "build", "-o", bin, ".").Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	if c.blobsweep {
		m, err := describeHost()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "## Machine\n\n%s\n", m)
		return blobSweep(ctx, c, bin, out)
	}
	if err := ensureNodeDeps(ctx, repo); err != nil {
		return err
	}

	m, err := describeMachine(ctx, repo)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "## Machine\n\n%s\n", m)

	cases := []benchCase{realistic}
	if c.sparse {
		cases = append(cases, sparse)
	}
	for _, bc := range cases {
		hour := filepath.Join(c.data, bc.dir)
		if err := ensureData(ctx, bin, hour, bc.gen(c)); err != nil {
			return err
		}
		rows, err := countRows(hour)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "## %s hour\n\n`tokenpivot %s`: %s\n\n%s\n\n", bc.title, strings.Join(bc.gen(c), " "), rows, bc.about)

		cmp, err := compare(ctx, c, bin, hour, bc.dir, c.runs)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "### tokenpivot detect vs DuckDB (%d runs each, after a warm-up; median, min-max)\n\n", c.runs)
		cmp.writeTable(out)
		fmt.Fprintf(out, "\nBoth returned the same %d result rows.\n\n", cmp.rows)

		if c.pipeline {
			p, err := measurePipeline(ctx, c, bin, hour)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "### Pipeline: `tokenpivot process` on the hour's non-interactive blobs, interactive state present\n\n")
			p.write(out)
		}
	}
	if c.scaling {
		if err := scaling(ctx, c, bin, out); err != nil {
			return err
		}
	}
	return nil
}

// benchCase is one benchmark hour: its cache folder and generator flags.
type benchCase struct {
	dir, title, about string
	flag              string // gen's benchmark flag
}

var (
	realistic = benchCase{dir: "hour-realistic", title: "Realistic", flag: "--benchmark",
		about: "Time-ordered like real exports: each row group holds most of the tenant's active users, and 2% roaming rows make thousands of pairs match."}
	sparse = benchCase{dir: "hour-sparse", title: "Sparse", flag: "--benchmark-sparse",
		about: "The benchmark's earlier shape: rows grouped by user (about 5k users a file), no roaming, so only the planted pivots match."}
)

// gen is the generator command of the case's hour.
func (bc benchCase) gen(c config) []string {
	return []string{"gen", bc.flag, "--seed", strconv.FormatUint(c.seed, 10)}
}

// repoRoot is the module root, where `go build .` builds the CLI and bench/
// holds the DuckDB side.
func repoRoot() (string, error) {
	outb, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(outb))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from the tokenpivot repository (no go.mod found)")
	}
	root := filepath.Dir(mod)
	if _, err := os.Stat(filepath.Join(root, "tools", "bench", "duckdb", "rule.mjs")); err != nil {
		return "", fmt.Errorf("tools/bench/duckdb/rule.mjs not found under %s: %w", root, err)
	}
	return root, nil
}

func ensureNodeDeps(ctx context.Context, repo string) error {
	if _, err := os.Stat(filepath.Join(repo, "tools", "bench", "duckdb", "node_modules", "@duckdb", "node-api")); err == nil {
		return nil
	}
	logf("installing DuckDB (npm ci --prefix bench)")
	if err := command(ctx, repo, "npm", "ci", "--prefix", "tools/bench/duckdb", "--no-audit", "--no-fund").Run(); err != nil {
		return fmt.Errorf("npm ci --prefix bench: %w", err)
	}
	return nil
}

// ensureData generates exports into dir with `tokenpivot <args> --out dir`
// unless an earlier run completed it (marked by a .complete file).
func ensureData(ctx context.Context, bin, dir string, args []string) error {
	mark := filepath.Join(dir, ".complete")
	want := strings.Join(args, " ")
	if b, err := os.ReadFile(mark); err == nil && string(b) == want {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	logf("generating %s: tokenpivot %s", dir, want)
	cmd := command(ctx, "", bin, append(args, "--out", dir)...)
	cmd.Stdout = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tokenpivot gen: %w", err)
	}
	return os.WriteFile(mark, []byte(want), 0o644)
}

// countRows summarizes a generated folder: files and bytes per table.
func countRows(dir string) (string, error) {
	var parts []string
	for _, c := range []string{interactiveContainer, noninteractiveContainer} {
		var n, size int64
		err := filepath.WalkDir(filepath.Join(dir, c), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			n++
			size += info.Size()
			return nil
		})
		if err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("%s %d files, %.1f MiB", c, n, float64(size)/(1<<20)))
	}
	return strings.Join(parts, "; "), nil
}

// describeMachine returns the Markdown lines naming the machine and versions.
func describeMachine(ctx context.Context, repo string) (string, error) {
	b, err := describeHost()
	if err != nil {
		return "", err
	}
	return describeTools(ctx, repo, b)
}

// describeHost is the machine part of describeMachine: CPU, memory, load
// and Go (the blob-size sweep needs no DuckDB).
func describeHost() (string, error) {
	var b strings.Builder
	model := "unknown"
	if cpu, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(cpu)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	fmt.Fprintf(&b, "- CPU: %s, %d logical CPUs (runtime.NumCPU)\n", model, runtime.NumCPU())
	if mem, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(mem), "\n")
		fmt.Fprintf(&b, "- Memory: %s\n", strings.Join(strings.Fields(line)[1:], " "))
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "- Load average at start: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	fmt.Fprintf(&b, "- %s, %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String(), nil
}

// describeTools adds Node's and DuckDB's versions to host.
func describeTools(ctx context.Context, repo, host string) (string, error) {
	var b strings.Builder
	b.WriteString(host)
	benchDir := filepath.Join(repo, "tools", "bench", "duckdb")
	nodeV, err := command(ctx, benchDir, "node", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("node --version: %w", err)
	}
	// node resolves bench/node_modules only from inside bench/.
	duck, err := command(ctx, benchDir, "node", "--input-type=module", "-e",
		`import('@duckdb/node-api').then(async m=>{const c=await (await m.DuckDBInstance.create()).connect();console.log((await c.runAndReadAll("select version()")).getRows()[0][0])})`).Output()
	if err != nil {
		return "", fmt.Errorf("DuckDB version: %w", err)
	}
	fmt.Fprintf(&b, "- Node %s, DuckDB %s (@duckdb/node-api, tools/bench/duckdb/package.json)\n", strings.TrimSpace(string(nodeV)), strings.TrimSpace(string(duck)))
	return b.String(), nil
}

func command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	if dir != "" {
		cmd.Dir = dir
	}
	cmd.Stderr = os.Stderr
	return cmd
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
