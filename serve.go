package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/function"
	"github.com/tokenpivot/tokenpivot/internal/settings"
)

// serverLimits are the HTTP server's timeouts and the shutdown schedule.
type serverLimits struct {
	// ReadHeader and Read bound how long a client may take to send a
	// request's headers and its whole body: the Functions host sends from
	// the same machine, in milliseconds, so anything slower is a stuck or
	// hostile client holding a connection.
	ReadHeader, Read time.Duration
	// Write bounds the time from the end of the request headers to the end of
	// the response. It must not cut a ProcessExport the host still waits for:
	// host.json's functionTimeout is 10 min, after which the host gives up on
	// the invocation itself; the extra minute covers a slow start of the body.
	Write time.Duration
	// Idle closes keep-alive connections the host no longer uses.
	Idle time.Duration
	// Grace is how long in-flight invocations may finish after SIGTERM;
	// then their contexts are cancelled and they get Drain more to return.
	// Cutting work is safe: the ledger's done entry is written last, so the
	// next delivery (or the Sweep) redoes it.
	Grace, Drain time.Duration
}

var defaultLimits = serverLimits{
	ReadHeader: 5 * time.Second,
	Read:       30 * time.Second,
	Write:      11 * time.Minute,
	Idle:       2 * time.Minute,
	Grace:      3 * time.Second,
	Drain:      2 * time.Second,
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr, "[--addr HOST:PORT]")
	addr := fs.String("addr", "", "listen `address` (default 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, else 127.0.0.1:8080)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tokenpivot serve [--addr HOST:PORT]\n\n")
		printFlags(fs, stderr)
		fmt.Fprintf(stderr, "\nserve is configured by app settings (environment variables):\n\n")
		settings.WriteHelp(stderr)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *addr == "" {
		*addr = defaultAddr(os.Getenv)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

	s, err := settings.FromEnvOnly(settings.All()...).Load(os.Getenv)
	if err != nil {
		return usageError{err}
	}
	a, err := newPipeline(ctx, s, logger)
	if err != nil {
		return err
	}
	if err := a.pipeline.EnsureContainers(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	serviceURL := a.exports.ServiceURL()
	if serviceURL == "" {
		logger.Warn("export storage is a local directory: every event will be refused; ProcessExport and Sweep still work")
	}
	cfg := function.Config{Pipeline: a.pipeline, Exports: a.exports, ServiceURL: serviceURL, Logger: logger,
		ExportJobs: newExportJobs(s, a.state, a.exports)}
	if len(a.outbox.Sinks) > 0 {
		cfg.Delivery = a.outbox
		for _, sk := range a.outbox.Sinks {
			logger.Info("alert delivery on", slog.String("sink", sk.Name()))
		}
	}
	h, err := function.New(cfg)
	if err != nil {
		return err
	}
	budget, source := h.MemoryBudget()
	logger.Info("memory budget for blobs in flight", slog.Int64("bytes", budget), slog.String("source", source))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return serve(ctx, ln, h, logger, defaultLimits)
}

// defaultAddr is the loopback address on the port the Functions host chose:
// the host connects to 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, and the
// functions, which have no authentication of their own, must not be reachable
// from the network.
func defaultAddr(getenv func(string) string) string {
	port := getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	if port == "" {
		port = "8080"
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// serve answers on ln until ctx ends, then lets in-flight invocations finish
// for lim.Grace, cancels their contexts, and waits lim.Drain for them to
// return. Invocations run under their own context (not ctx), so that SIGTERM
// gives them the grace first.
func serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, lim serverLimits) error {
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var inflight sync.WaitGroup
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inflight.Add(1)
			defer inflight.Done()
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return work },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// ln is bound already: say so before serving, so that whoever waits for
	// an answer (the host, a test) finds the line written once it has one.
	logger.Info("custom handler listening", slog.String("addr", ln.Addr().String()))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", slog.Duration("grace", lim.Grace))
	sctx, cancel := context.WithTimeout(context.Background(), lim.Grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// The grace is over: cancel what is still running, which the next
		// delivery redoes, and give it a moment to answer.
		logger.Warn("grace over: cancelling in-flight invocations", slog.Duration("drain", lim.Drain))
		cancelWork()
		drained := make(chan struct{})
		go func() { inflight.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(lim.Drain):
			logger.Warn("in-flight invocations did not return after cancellation; closing their connections")
		}
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
