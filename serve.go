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
	"time"

	"github.com/tokenpivot/tokenpivot/internal/function"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// shutdownGrace is how long in-flight invocations may finish after SIGTERM.
const shutdownGrace = 30 * time.Second

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr, "[--addr HOST:PORT]")
	addr := fs.String("addr", "", "listen `address` (default :$FUNCTIONS_CUSTOMHANDLER_PORT, else :8080)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *addr == "" {
		// All interfaces: the Functions host connects on the port it chose.
		*addr = ":" + envOr("FUNCTIONS_CUSTOMHANDLER_PORT", "8080")
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

	s, err := settings.FromEnv(nil)
	if err != nil {
		return err
	}
	p, _, exports, err := newPipeline(ctx, s, logger)
	if err != nil {
		return err
	}
	if err := p.EnsureContainers(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var serviceURL string
	if a, ok := exports.(*store.Azure); ok {
		serviceURL = a.ServiceURL()
	} else {
		logger.Warn("export storage is a local directory: every event will be refused; ProcessExport and Sweep still work")
	}
	h, err := function.New(function.Config{Pipeline: p, ServiceURL: serviceURL, Logger: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return serve(ctx, ln, h, logger)
}

// serve answers on ln until ctx ends, then lets in-flight invocations finish
// for up to shutdownGrace. Invocations do not inherit ctx: SIGTERM should
// not cut a blob half-way (though that is safe, see pipeline).
func serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	logger.Info("custom handler listening", slog.String("addr", ln.Addr().String()))
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", slog.Duration("grace", shutdownGrace))
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
