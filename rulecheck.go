package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tokenpivot/tokenpivot/internal/kql"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// runRule is `tokenpivot rule check FILE`: compile a Sentinel rule's YAML
// and print the plan the engine would run, or the refusal (exit 2) naming
// the line and the operator.
func runRule(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintln(stderr, "usage: tokenpivot rule check FILE")
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: tokenpivot rule check FILE")
		return usagef("want: rule check FILE")
	}
	fs := newFlagSet("rule check", stderr, "FILE")
	files, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("name one rule YAML file")
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		return usageError{err}
	}
	r, err := rule.Load(files[0], data)
	if err != nil {
		var ke *kql.Error
		if errors.As(err, &ke) {
			return usageError{fmt.Errorf("refused: %w", err)}
		}
		return usageError{err}
	}
	fmt.Fprintf(stdout, "rule %s: %q compiles\n", files[0], r.Name)
	fmt.Fprint(stdout, r.Plan.String())
	return nil
}
