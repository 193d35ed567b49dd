package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// newPipeline builds the event pipeline the settings describe: the export
// store (a storage account, Azurite, or for the CLI a local directory), the
// state store holding state, alerts and incidents, the rule with its safe
// lists, and the alert writer. It creates no containers (see
// pipeline.EnsureContainers).
func newPipeline(ctx context.Context, s settings.Settings, logger *slog.Logger) (*pipeline.Pipeline, *alert.Writer, store.Store, error) {
	exports, err := store.Open(ctx, s.Storage())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export storage (%s or %s): %w", settings.StorageAccountURL, settings.StorageConnectionString, err)
	}
	state := exports
	if spec := s.StateStorage(); spec != s.Storage() {
		if state, err = store.Open(ctx, spec); err != nil {
			return nil, nil, nil, fmt.Errorf("state storage (%s): %w", settings.StateStorageAccountURL, err)
		}
	}
	r, err := loadRule(s.Rule)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := alert.Check(r); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", settings.Rule, err)
	}
	safe, err := r.SafeList(s.SafeIPs, s.SafeNetworks, rule.SafeListOptions{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s / %s: %w", settings.SafeIPs, settings.SafeNetworks, err)
	}
	w := &alert.Writer{Store: state, AlertsContainer: s.AlertsContainer, IncidentsContainer: s.IncidentsContainer, Rule: r, Logger: logger}
	p, err := pipeline.New(pipeline.Config{
		Exports: exports, State: state,
		InteractiveContainer: s.InteractiveContainer, NonInteractiveContainer: s.NonInteractiveContainer,
		StateContainer: s.StateContainer,
		Filter:         detect.Filter{Safe: safe},
		Alerts:         w, AllowedLateness: s.AllowedLateness,
		Logger: logger,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return p, w, exports, nil
}

// loadRule reads the TOKENPIVOT_RULE value: YAML text (it has a newline), a
// path to a YAML file, or "" for the bundled rule.
func loadRule(v string) (*rule.Rule, error) {
	switch {
	case strings.TrimSpace(v) == "":
		return rule.Default(), nil
	case strings.Contains(v, "\n"):
		r, err := rule.Load(settings.Rule, []byte(v))
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	data, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", settings.Rule, err)
	}
	r, err := rule.Load(v, data)
	if err != nil {
		return nil, err
	}
	return r, nil
}
