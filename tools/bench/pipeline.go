package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// pipelineResult is `tokenpivot process` measured in two steps over one
// storage folder: first the interactive blobs (building the state), then the
// non-interactive blobs with that state present.
type pipelineResult struct {
	interactive, noninteractive sample
	workers                     int
}

// measurePipeline lays out a fresh storage folder like the account, copies
// the hour's interactive exports in and processes them, then copies the
// non-interactive exports in and processes again: the second run is the one
// that must fit the smallest Flex Consumption instance.
func measurePipeline(ctx context.Context, c config, bin, hour string) (pipelineResult, error) {
	var p pipelineResult
	p.workers = 2
	dir := filepath.Join(c.data, "pipeline")
	if err := os.RemoveAll(dir); err != nil {
		return p, err
	}
	// process wants both export containers, even while one is empty.
	for _, c := range []string{interactiveContainer, noninteractiveContainer} {
		if err := os.MkdirAll(filepath.Join(dir, c), 0o755); err != nil {
			return p, err
		}
	}
	step := func(container string) (sample, error) {
		// Copies, not links: lateness is judged by Last-Modified, which must be now.
		if err := copyTree(filepath.Join(hour, container), filepath.Join(dir, container)); err != nil {
			return sample{}, err
		}
		logf("pipeline: process %s", container)
		return measure(ctx, "", "", bin, "process", "--storage", dir, "--workers", fmt.Sprint(p.workers))
	}
	var err error
	if p.interactive, err = step(interactiveContainer); err != nil {
		return p, err
	}
	if p.noninteractive, err = step(noninteractiveContainer); err != nil {
		return p, err
	}
	return p, os.RemoveAll(dir)
}

func (p pipelineResult) write(w io.Writer) {
	fmt.Fprintf(w, "| step (`--workers %d`) | wall time | CPU time | peak RSS | limit |\n", p.workers)
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	row := func(name string, s sample, limit string) {
		fmt.Fprintf(w, "| %s | %.2f s | %.2f s | %.0f MiB | %s |\n", name, s.wall.Seconds(), s.cpu.Seconds(), float64(s.peakRSS)/(1<<20), limit)
	}
	row("interactive blobs (builds the state)", p.interactive, "")
	verdict := "within 512 MiB"
	if p.noninteractive.peakRSS > pipelineLimit {
		verdict = "**over 512 MiB**"
	}
	row("non-interactive blobs, interactive state present", p.noninteractive, verdict)
	fmt.Fprintln(w)
}

// copyTree copies the regular files under src to dst, keeping relative paths.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() || d.Name()[0] == '.' {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
