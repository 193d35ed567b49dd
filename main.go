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
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

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
		{"upload", "copy a folder laid out like an account (gen's output) into one, e.g. Azurite", runUpload},
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
	memlimit.Apply(share, os.Getenv("GOMEMLIMIT"))
	stopProfiles := startProfiles(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	stopProfiles()
	os.Exit(code)
}

// startProfiles writes Go profiles for developers measuring a command (see
// docs/performance.md): TOKENPIVOT_CPUPROFILE=FILE for the whole run, and
// TOKENPIVOT_MEMPROFILE=FILE for the heap's allocations at exit, and
// TOKENPIVOT_HEAPPEAK=FILE for the live heap at its peak (watchHeapPeak).
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
	peakDone := watchHeapPeak(os.Getenv("TOKENPIVOT_HEAPPEAK"), stderr)
	return func() {
		peakDone()
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
	if len(args) == 0 {
		// No command is bad usage: the list goes where errors go.
		usage(stderr)
		return exitBad
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	case "help":
		// help CMD is CMD -h: both print the command's help on stdout.
		if len(args) == 1 {
			usage(stdout)
			return exitOK
		}
		if len(args) > 2 {
			fmt.Fprintf(stderr, "tokenpivot help: want one command, got %q\n", args[1:])
			return exitBad
		}
		args = []string{args[1], "-h"}
	case "-version", "--version", "version":
		writeVersion(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		// Help that was asked for is the answer, so it goes to stdout (and
		// through the same redaction as stderr).
		errOut := stderr
		if wantsHelp(args[1:]) {
			rw := settings.NewRedactingWriter(stdout)
			defer rw.Close()
			errOut = rw
		}
		err := c.run(ctx, args[1:], stdout, errOut)
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "tokenpivot %s: %s\n", c.name, message(c.name, err))
			return exitBad
		case signin.IsFormatError(err), errors.As(err, new(badInputError)):
			fmt.Fprintf(stderr, "tokenpivot %s: %s\n", c.name, message(c.name, err))
			return exitBad
		default:
			fmt.Fprintf(stderr, "tokenpivot %s: %s\n", c.name, message(c.name, err))
			return exitError
		}
	}
	fmt.Fprintf(stderr, "tokenpivot: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitBad
}

// wantsHelp reports whether args ask for help (-h, -help, --help) before
// any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// message is err's text without a repeat of the command's name at its start
// (packages prefix their errors with their own name, which is often the
// command's: "tokenpivot exports: exports: ..." says it twice).
func message(name string, err error) string {
	msg := err.Error()
	for strings.HasPrefix(msg, name+": ") {
		msg = strings.TrimPrefix(msg, name+": ")
	}
	return msg
}

// writeVersion prints the module version and the VCS revision the binary was
// built from, as the Go toolchain recorded them: `go install ...@v1.2.3`
// gives the tag, a build in a clone the revision and whether it was modified.
func writeVersion(w io.Writer) {
	fmt.Fprintln(w, versionString())
}

func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "tokenpivot (no build information)"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, when, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	out := "tokenpivot " + version
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		out += fmt.Sprintf(" (revision %s", rev)
		if when != "" {
			out += ", " + when
		}
		out += modified + ")"
	}
	return out + " " + bi.GoVersion
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tokenpivot <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "'tokenpivot help <command>' (or <command> -h) prints a command's flags;")
	fmt.Fprintln(w, "'tokenpivot --version' the version. Exit codes: 0 success, 1 failure, 2 bad usage or input.")
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("tokenpivot "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tokenpivot %s %s\n\n", name, synopsis)
		printFlags(fs, stderr)
	}
	return fs
}

// printFlags is flag.PrintDefaults wrapped to 80 columns: the flag and its
// argument on a line, the usage indented under it.
func printFlags(fs *flag.FlagSet, w io.Writer) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if arg != "" {
			head += " " + arg
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(w, head)
		line := "     "
		for _, word := range strings.Fields(usage) {
			if len(line)+1+len(word) > 80 && strings.TrimSpace(line) != "" {
				fmt.Fprintln(w, line)
				line = "     "
			}
			line += " " + word
		}
		if strings.TrimSpace(line) != "" {
			fmt.Fprintln(w, line)
		}
	})
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := parseQuietly(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// parseQuietly parses args: asked for (-h), the usage is printed; a mistake
// is returned as a usage error naming the flag, without the whole usage
// after it (the flag package prints both, and the message came twice).
func parseQuietly(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	}
	msg := err.Error()
	msg = strings.Replace(msg, "flag provided but not defined: -", "unknown flag --", 1)
	msg = strings.Replace(msg, " for flag -", " for flag --", 1)
	msg = strings.Replace(msg, "flag needs an argument: -", "flag needs an argument: --", 1)
	name := strings.TrimPrefix(fs.Name(), "tokenpivot ")
	return usagef("%s (tokenpivot help %s lists the flags)", msg, name)
}

// parseArgs parses flags that may come before, between or after the
// positional arguments, which it returns.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseQuietly(fs, args); err != nil {
			return nil, err
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

// watchHeapPeak writes a heap profile to file (when not "") each time the
// heap in use grows 10% past the largest seen, polling every 100 ms, so the
// last one written shows what was live at the peak: what peak RSS is made
// of. It returns a function that stops the watch.
func watchHeapPeak(file string, stderr io.Writer) (stop func()) {
	if file == "" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var peak uint64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse < peak+peak/10 {
				continue
			}
			peak = ms.HeapInuse
			f, err := os.Create(file)
			if err == nil {
				err = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(stderr, "tokenpivot: TOKENPIVOT_HEAPPEAK: %v\n", err)
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}
