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

// The settings each command reads: only these are parsed, so a bad value of
// another never stops it.
var (
	ruleSettings    = []string{settings.Rule, settings.SafeIPs, settings.SafeNetworks, settings.IPv6SafeNetworks}
	storageSettings = []string{settings.StorageAccountURL, settings.StorageConnectionString, settings.StateStorageAccountURL}
	exportSettings  = []string{settings.InteractiveContainer, settings.NonInteractiveContainer}
	outputSettings  = []string{settings.AlertsContainer, settings.IncidentsContainer}
	stateSettings   = []string{settings.StateContainer, settings.AllowedLateness, settings.MaxExpansion}
)

func join(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// loadRule reads the rule a setting names: YAML text (it has a newline), a
// path to a YAML file, or "" for the bundled rule; and checks the columns
// its alert templates and details refer to.
func loadRule(v string) (*rule.Rule, error) {
	var r *rule.Rule
	switch {
	case strings.TrimSpace(v) == "":
		r = rule.Default()
	case strings.Contains(v, "\n"):
		var err error
		if r, err = rule.Load(settings.Rule, []byte(v)); err != nil {
			return nil, err
		}
	default:
		data, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("rule: %w", err)
		}
		if r, err = rule.Load(v, data); err != nil {
			return nil, err
		}
	}
	if err := alert.Check(r); err != nil {
		return nil, fmt.Errorf("rule %s: %w", r.Name, err)
	}
	return r, nil
}

// loadFilter is the rule and its candidate filter, safe lists included.
func loadFilter(s settings.Settings) (*rule.Rule, detect.Filter, error) {
	r, err := loadRule(s.Rule)
	if err != nil {
		return nil, detect.Filter{}, usageError{err}
	}
	safe, err := r.SafeList(s.SafeIPs, s.SafeNetworks, rule.SafeListOptions{HonorIPv6Networks: s.IPv6SafeNetworks})
	if err != nil {
		return nil, detect.Filter{}, usageError{fmt.Errorf("safe lists (%s, %s): %w", settings.SafeIPs, settings.SafeNetworks, err)}
	}
	return r, detect.Filter{Safe: safe}, nil
}

// openStores opens the export store and the store of state, alerts and
// incidents (the same one unless the settings name another). A spec that
// can never work is a usage error; anything else may pass on a retry.
func openStores(ctx context.Context, s settings.Settings) (exports, state store.Store, err error) {
	if s.Storage() == "" {
		return nil, nil, usagef("no storage: give --storage or set %s", settings.StorageAccountURL)
	}
	if exports, err = store.Open(ctx, s.Storage()); err != nil {
		return nil, nil, usageError{fmt.Errorf("export storage: %w", err)}
	}
	state = exports
	if spec := s.StateStorage(); spec != s.Storage() {
		if state, err = store.Open(ctx, spec); err != nil {
			return nil, nil, usageError{fmt.Errorf("state storage (%s): %w", settings.StateStorageAccountURL, err)}
		}
	}
	return exports, state, nil
}

// newAlertWriter is the alert writer over the state store.
func newAlertWriter(state store.Store, s settings.Settings, r *rule.Rule, logger *slog.Logger) *alert.Writer {
	return &alert.Writer{Store: state, AlertsContainer: s.AlertsContainer, IncidentsContainer: s.IncidentsContainer, Rule: r, Logger: logger,
		// The rule's eventGroupingSettings: one alert per result row, or
		// (the default) one per account, interactive sign-in and NI IP.
		PerRow: r.EventGrouping == rule.AlertPerResult}
}

// newPipeline builds the event pipeline the settings describe. It creates
// no containers (see pipeline.EnsureContainers).
func newPipeline(ctx context.Context, s settings.Settings, logger *slog.Logger) (*pipeline.Pipeline, *alert.Writer, store.Store, error) {
	r, f, err := loadFilter(s)
	if err != nil {
		return nil, nil, nil, err
	}
	exports, state, err := openStores(ctx, s)
	if err != nil {
		return nil, nil, nil, err
	}
	w := newAlertWriter(state, s, r, logger)
	p, err := pipeline.New(pipeline.Config{
		Exports: exports, State: state,
		InteractiveContainer: s.InteractiveContainer, NonInteractiveContainer: s.NonInteractiveContainer,
		StateContainer:  s.StateContainer,
		Filter:          f,
		Alerts:          w,
		AllowedLateness: s.AllowedLateness,
		MaxExpansion:    s.MaxExpansion,
		Logger:          logger,
	})
	if err != nil {
		return nil, nil, nil, usageError{err}
	}
	return p, w, exports, nil
}
