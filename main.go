// Command tokenpivot runs Sentinel's "Interactive to Non-Interactive Token
// Theft Pivot" rule over exports of SigninLogs and
// AADNonInteractiveUserSignInLogs: as a batch CLI on files, over a storage
// account, or as an Azure Functions custom handler (serve).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/tokenpivot/tokenpivot/internal/memlimit"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Exit codes: 0 success (zero alerts included), 1 a failure worth retrying
// or investigating, 2 bad usage or bad input (a file that can never be read).
const (
	exitOK    = 0
	exitError = 1
	exitBad   = 2
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"detect", "run the rule over local export files and print the result rows", runDetect},
		{"test", "run the rule over test case folders and compare with their expected rows", runTest},
		{"gen", "write synthetic hourly exports with planted token-theft pivots", runGen},
		{"process", "run the event pipeline over every export blob of a storage account or folder", runProcess},
		{"alerts", "list the alerts and incidents in a storage account or folder", runAlerts},
		{"serve", "run the Azure Functions custom handler", runServe},
		{"exports", "request and list Log Analytics export jobs (schedule --from --to, status)", runExports},
		{"rule", "check a Sentinel rule YAML (the plan its query compiles to, or why it is refused); lint rule folders for coverage", runRuleCommand},
	}
}

// usageError marks bad command-line usage or configuration (exit 2); it
// keeps the error it wraps, so errors.Is and As still see the cause.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Shares of the cgroup's memory limit given to the Go heap when GOMEMLIMIT is
// not set: serve shares its instance with the Functions host (as infra's
// GOMEMLIMIT of 11/16 of the instance does); the CLI has it to itself, less
// what is not heap (stacks, binary, page cache).
const (
	serveMemoryShare = 11.0 / 16
	cliMemoryShare   = 0.9
)

func main() {
	share := cliMemoryShare
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		share = serveMemoryShare
	}
	memlimit.Apply(share)
	stopProfiles := startProfiles(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	stopProfiles()
	os.Exit(code)
}

// startProfiles writes Go profiles for developers measuring a command (see
// docs/performance.md): TOKENPIVOT_CPUPROFILE=FILE for the whole run, and
// TOKENPIVOT_MEMPROFILE=FILE for the heap's allocations at exit.
func startProfiles(stderr io.Writer) (stop func()) {
	cpu, mem := os.Getenv("TOKENPIVOT_CPUPROFILE"), os.Getenv("TOKENPIVOT_MEMPROFILE")
	var cpuFile *os.File
	if cpu != "" {
		f, err := os.Create(cpu)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "tokenpivot: TOKENPIVOT_CPUPROFILE: %v\n", err)
		} else {
			cpuFile = f
		}
	}
	return func() {
		if cpuFile != nil {
			pprof.StopCPUProfile()
			cpuFile.Close()
		}
		if mem == "" {
			return
		}
		f, err := os.Create(mem)
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		if err != nil {
			fmt.Fprintf(stderr, "tokenpivot: TOKENPIVOT_MEMPROFILE: %v\n", err)
		}
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Help, errors and logs all go to stderr: no secret may reach it.
	rw := settings.NewRedactingWriter(stderr)
	defer rw.Close()
	return runCommand(ctx, args, stdout, rw)
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitBad
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "tokenpivot %s: %v\n", c.name, err)
			return exitBad
		case signin.IsFormatError(err), errors.As(err, new(badInputError)):
			fmt.Fprintf(stderr, "tokenpivot %s: %v\n", c.name, err)
			return exitBad
		default:
			fmt.Fprintf(stderr, "tokenpivot %s: %v\n", c.name, err)
			return exitError
		}
	}
	fmt.Fprintf(stderr, "tokenpivot: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitBad
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tokenpivot <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'tokenpivot <command> -h' for a command's flags.")
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("tokenpivot "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tokenpivot %s %s\n\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// parseArgs parses flags that may come before, between or after the
// positional arguments, which it returns.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint([]string(*l)) }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
