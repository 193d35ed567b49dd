package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"time"
)

// sample is one finished child process as the kernel accounted it.
type sample struct {
	wall    time.Duration
	cpu     time.Duration // user + system
	peakRSS int64         // bytes: getrusage's ru_maxrss of the child
}

// measure runs name with args as a child process, its stdout to stdoutPath
// (or discarded when ""), and returns its wall time, CPU time and peak RSS.
func measure(ctx context.Context, dir, stdoutPath, name string, args ...string) (sample, error) {
	cmd := command(ctx, dir, name, args...)
	if stdoutPath != "" {
		f, err := os.Create(stdoutPath)
		if err != nil {
			return sample{}, err
		}
		defer f.Close()
		cmd.Stdout = f
	} else {
		cmd.Stdout = io.Discard
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("%s %v: %w", name, args, err)
	}
	wall := time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return sample{}, fmt.Errorf("%s: no rusage on this system", name)
	}
	return sample{
		wall:    wall,
		cpu:     cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		peakRSS: ru.Maxrss * 1024, // Linux reports KiB
	}, nil
}

// summary is the median, min and max of one figure over runs.
type summary struct{ med, min, max float64 }

func summarize(xs []float64) summary {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return summary{med: med, min: s[0], max: s[n-1]}
}

// series collects the samples of one tool.
type series []sample

func (s series) figure(f func(sample) float64) summary {
	xs := make([]float64, len(s))
	for i, x := range s {
		xs[i] = f(x)
	}
	return summarize(xs)
}

func (s series) wall() summary { return s.figure(func(x sample) float64 { return x.wall.Seconds() }) }
func (s series) cpu() summary  { return s.figure(func(x sample) float64 { return x.cpu.Seconds() }) }
func (s series) rss() summary {
	return s.figure(func(x sample) float64 { return float64(x.peakRSS) / (1 << 20) })
}

// ratios returns a[i]/b[i] pair by pair: runs alternate A B A B, so a pair
// saw the same machine load, and the ratios are steadier than the medians.
func ratios(a, b series, f func(sample) float64) summary {
	n := min(len(a), len(b))
	xs := make([]float64, n)
	for i := range n {
		xs[i] = f(a[i]) / f(b[i])
	}
	return summarize(xs)
}

func fmtSecs(s summary) string {
	if s.min == s.max {
		return fmt.Sprintf("%.2f s", s.med)
	}
	return fmt.Sprintf("%.2f s (%.2f-%.2f)", s.med, s.min, s.max)
}

func fmtMiB(s summary) string {
	if s.min == s.max {
		return fmt.Sprintf("%.0f MiB", s.med)
	}
	return fmt.Sprintf("%.0f MiB (%.0f-%.0f)", s.med, s.min, s.max)
}

func fmtRatio(s summary) string {
	if s.min == s.max {
		return fmt.Sprintf("%.2fx", s.med)
	}
	return fmt.Sprintf("%.2fx (%.2f-%.2f)", s.med, s.min, s.max)
}
