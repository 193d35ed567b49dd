package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tokenpivot/tokenpivot/internal/alert"
	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/exportjob"
	"github.com/tokenpivot/tokenpivot/internal/function"
	"github.com/tokenpivot/tokenpivot/internal/outbox"
	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/sentinel"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/store"
	"github.com/tokenpivot/tokenpivot/internal/webhook"
)

// The settings each command reads: only these are parsed, so a bad value of
// another never stops it.
var (
	ruleSettings    = []string{settings.Rule, settings.SafeIPs, settings.SafeNetworks, settings.IPv6SafeNetworks}
	storageSettings = []string{settings.StorageAccountURL, settings.StorageConnectionString, settings.StateStorageAccountURL}
	exportSettings  = []string{settings.InteractiveContainer, settings.NonInteractiveContainer}
	outputSettings  = []string{settings.AlertsContainer, settings.IncidentsContainer}
	stateSettings   = []string{settings.StateContainer, settings.AllowedLateness, settings.MaxExpansion}
	// deliverySettings configure the sinks alert revisions go to.
	deliverySettings = []string{settings.LogsIngestionEndpoint, settings.LogsIngestionRuleID, settings.LogsIngestionStream,
		settings.WebhookURL, settings.WebhookSecret, settings.WebhookFormat}
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
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("rule %s: no such file (--rule, %s: a file or the YAML text)", v, settings.Rule)
		}
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
		return nil, detect.Filter{}, usageError{fmt.Errorf("safe lists: %w", err)}
	}
	f := detect.Filter{Safe: safe}
	if r.Plan != nil && !r.Plan.ISafe && !r.Plan.NSafe && (len(s.SafeIPs) > 0 || len(s.SafeNetworks) > 0) {
		// The extras join the rule's safe-list tests; without one they
		// would silently do nothing.
		return nil, detect.Filter{}, usagef("%s/%s are set, but rule %s has no safe-list test (not(IPAddress in (...)) and ipv4_lookup on both tables' IPAddress) to add them to", settings.SafeIPs, settings.SafeNetworks, r.Name)
	}
	if r.Plan != nil && !r.Plan.Default() {
		f.Plan = r.Plan // a tuned rule: the engine runs its plan
	}
	return r, f, nil
}

// openStores opens the export store and the store of state, alerts and
// incidents (the same one unless the settings name another). A spec that
// can never work is a usage error; anything else may pass on a retry.
func openStores(ctx context.Context, s settings.Settings) (exports, state store.Store, err error) {
	if s.Storage() == "" {
		return nil, nil, usagef("no storage: give --storage or set %s", settings.StorageAccountURL)
	}
	if err := checkLocal(s.Storage(), "--storage"); err != nil {
		return nil, nil, err
	}
	if exports, err = store.Open(ctx, s.Storage()); err != nil {
		return nil, nil, usageError{fmt.Errorf("export storage (--storage): %s", strings.TrimPrefix(err.Error(), "store: "))}
	}
	state = exports
	if spec := s.StateStorage(); spec != s.Storage() {
		if state, err = store.Open(ctx, spec); err != nil {
			return nil, nil, usageError{fmt.Errorf("state storage (--state, %s): %s", settings.StateStorageAccountURL, strings.TrimPrefix(err.Error(), "store: "))}
		}
	}
	return exports, state, nil
}

// checkLocal refuses a storage spec that names a local folder that is not
// there, in words (the store's own error is a stat's).
func checkLocal(spec, flag string) error {
	if strings.Contains(spec, "://") || strings.Contains(spec, "=") {
		return nil
	}
	info, err := os.Stat(spec)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usagef("%s %s: no such folder (want a folder laid out like a storage account, an https://ACCOUNT.blob.core.windows.net URL or a connection string)", flag, spec)
	case err == nil && !info.IsDir():
		return usagef("%s %s: not a folder", flag, spec)
	}
	return nil
}

// newAlertWriter is the alert writer over the state store.
func newAlertWriter(state store.Store, s settings.Settings, r *rule.Rule, logger *slog.Logger) *alert.Writer {
	return &alert.Writer{Store: alert.Store{Blobs: state, AlertsContainer: s.AlertsContainer, IncidentsContainer: s.IncidentsContainer}, Rule: r, Logger: logger}
}

// deliveryTransport is the HTTP transport of the Logs Ingestion client and
// its credential; nil is azcore's default. Tests set it to trust their
// local endpoint's certificate, and nothing else differs.
var deliveryTransport policy.Transporter

// newOutbox is the outbox in the state container with the sinks the
// settings turn on: Sentinel when the Logs Ingestion endpoint is set, the
// webhook when its URL is. Without either it still records every revision
// (for the sinks of the roster, and for a sink added later to backfill).
func newOutbox(state store.Store, s settings.Settings, logger *slog.Logger) (*outbox.Outbox, error) {
	var sinks []outbox.Sink
	if s.LogsIngestionEndpoint != "" {
		if s.LogsIngestionRuleID == "" {
			return nil, usagef("%s is set but %s (the data collection rule's immutable id) is not", settings.LogsIngestionEndpoint, settings.LogsIngestionRuleID)
		}
		cred, err := sentinel.NewCredential(deliveryTransport)
		if err != nil {
			return nil, fmt.Errorf("logs ingestion credential: %w", err)
		}
		sk, err := sentinel.New(sentinel.Config{Endpoint: s.LogsIngestionEndpoint, RuleID: s.LogsIngestionRuleID, Stream: s.LogsIngestionStream,
			Credential: cred, Transport: deliveryTransport, Logger: logger.With(slog.String("sink", "sentinel"))})
		if err != nil {
			return nil, usageError{err}
		}
		sinks = append(sinks, sk)
	}
	if s.WebhookURL != "" {
		wh, err := webhook.New(webhook.Config{URL: s.WebhookURL, Secret: s.WebhookSecret, Format: s.WebhookFormat,
			Logger: logger.With(slog.String("sink", "webhook"))})
		if err != nil {
			return nil, usageError{fmt.Errorf("%s/%s: %w", settings.WebhookURL, settings.WebhookSecret, err)}
		}
		sinks = append(sinks, wh)
	}
	// Leases are judged by every deliverer (serve's instances, a `process`
	// on an operator's machine): on the store's clock, not their own.
	clock := &store.Clock{Store: state, Container: s.StateContainer}
	return &outbox.Outbox{Store: state, Container: s.StateContainer, AlertsContainer: s.AlertsContainer, Sinks: sinks, Logger: logger, Now: clock.Now}, nil
}

// app is what newPipeline builds from the settings: the event pipeline and
// the parts of it the commands use beside it.
type app struct {
	pipeline *pipeline.Pipeline
	// alerts writes alert and incident documents into the state store.
	alerts *alert.Writer
	// exports holds the export blobs; state holds state, alerts and
	// incidents (the same store unless the settings name another).
	exports, state store.Store
	// outbox records every alert revision, and delivers it to the sinks
	// the settings turn on (none: recorded only).
	outbox *outbox.Outbox
}

// newPipeline builds the event pipeline the settings describe, with its
// stores, alert writer and outbox. It creates no containers (see
// pipeline.EnsureContainers).
func newPipeline(ctx context.Context, s settings.Settings, logger *slog.Logger) (*app, error) {
	if err := pipelinePrecision(s); err != nil {
		return nil, err
	}
	r, f, err := loadFilter(s)
	if err != nil {
		return nil, err
	}
	exports, state, err := openStores(ctx, s)
	if err != nil {
		return nil, err
	}
	w := newAlertWriter(state, s, r, logger)
	ob, err := newOutbox(state, s, logger)
	if err != nil {
		return nil, err
	}
	w.Revisions = ob
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
		return nil, usageError{err}
	}
	return &app{pipeline: p, alerts: w, exports: exports, state: state, outbox: ob}, nil
}

// exportsHTTPClient carries the export job client's token and API requests
// (nil: exportjob's default); tests point it at their TLS server.
var exportsHTTPClient *http.Client

// newExportJobs is the ScheduleExports timer's scheduler the settings
// describe, over the pipeline's stores: the hours' state in the state
// container, and the export store, where an ambiguous create's output is
// looked up. It is nil when export scheduling is off. A misconfiguration
// does not stop serve (the pipeline works without export jobs): every
// invocation of the timer fails with it, naming the setting.
func newExportJobs(s settings.Settings, state, exports store.Store) function.ExportScheduler {
	cfg, err := s.ExportJobConfig()
	if err == nil && !cfg.Enabled() {
		return nil
	}
	var made *exportjob.Scheduler
	if err == nil {
		var cl *exportjob.Client
		if cl, err = exportjob.NewClient(cfg, exportsHTTPClient); err == nil {
			made = &exportjob.Scheduler{Config: cfg, API: cl, Store: state, Container: s.StateContainer, Output: exports}
		}
	}
	return func(_ context.Context, log *slog.Logger) (*exportjob.Scheduler, error) {
		if err != nil {
			return nil, err
		}
		run := *made
		run.Logger = log
		return &run, nil
	}
}
