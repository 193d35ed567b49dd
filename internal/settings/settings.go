// Package settings reads tokenpivot's app settings (environment variables),
// one name each, as the infrastructure sets them.
package settings

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// The app settings. infra/bicep and infra/terraform set every one of them.
const (
	StorageAccountURL       = "TOKENPIVOT_STORAGE_ACCOUNT_URL"
	StorageConnectionString = "TOKENPIVOT_STORAGE_CONNECTION_STRING"
	StateStorageAccountURL  = "TOKENPIVOT_STATE_STORAGE_ACCOUNT_URL"
	InteractiveContainer    = "TOKENPIVOT_INTERACTIVE_CONTAINER"
	NonInteractiveContainer = "TOKENPIVOT_NONINTERACTIVE_CONTAINER"
	StateContainer          = "TOKENPIVOT_STATE_CONTAINER"
	AlertsContainer         = "TOKENPIVOT_ALERTS_CONTAINER"
	IncidentsContainer      = "TOKENPIVOT_INCIDENTS_CONTAINER"
	Rule                    = "TOKENPIVOT_RULE"
	SafeIPs                 = "TOKENPIVOT_SAFE_IPS"
	SafeNetworks            = "TOKENPIVOT_SAFE_NETWORKS"
	AllowedLateness         = "TOKENPIVOT_ALLOWED_LATENESS"
)

// Settings are the values of the app settings, defaults filled in.
type Settings struct {
	// StorageAccountURL is the export account's blob service URL (production,
	// DefaultAzureCredential); StorageConnectionString is for Azurite/dev and
	// wins when set. A local directory path is accepted by the CLI only.
	StorageAccountURL       string
	StorageConnectionString string
	// StateStorageAccountURL holds state, alerts and incidents when they live
	// in another account than the exports; "" means the export account.
	StateStorageAccountURL string

	InteractiveContainer    string
	NonInteractiveContainer string
	StateContainer          string
	AlertsContainer         string
	IncidentsContainer      string

	// Rule is rule YAML text or a path to it; "" means the bundled rule.
	Rule            string
	SafeIPs         []string
	SafeNetworks    []string
	AllowedLateness time.Duration
}

// Defaults returns the settings with every default filled in.
func Defaults() Settings {
	return Settings{
		InteractiveContainer:    "am-signinlogs",
		NonInteractiveContainer: "am-aadnoninteractiveusersigninlogs",
		StateContainer:          "tokenpivot-state",
		AlertsContainer:         "tokenpivot-alerts",
		IncidentsContainer:      "tokenpivot-incidents",
		AllowedLateness:         168 * time.Hour,
	}
}

// FromEnv reads the settings from getenv (os.Getenv when nil).
func FromEnv(getenv func(string) string) (Settings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s := Defaults()
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	str(StorageAccountURL, &s.StorageAccountURL)
	str(StorageConnectionString, &s.StorageConnectionString)
	str(StateStorageAccountURL, &s.StateStorageAccountURL)
	str(InteractiveContainer, &s.InteractiveContainer)
	str(NonInteractiveContainer, &s.NonInteractiveContainer)
	str(StateContainer, &s.StateContainer)
	str(AlertsContainer, &s.AlertsContainer)
	str(IncidentsContainer, &s.IncidentsContainer)
	s.Rule = getenv(Rule)
	s.SafeIPs = SplitList(getenv(SafeIPs))
	s.SafeNetworks = SplitList(getenv(SafeNetworks))
	if v := strings.TrimSpace(getenv(AllowedLateness)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return s, fmt.Errorf("%s=%q: want a positive Go duration such as 168h", AllowedLateness, v)
		}
		s.AllowedLateness = d
	}
	if s.InteractiveContainer == s.NonInteractiveContainer {
		return s, fmt.Errorf("%s and %s name the same container %q", InteractiveContainer, NonInteractiveContainer, s.InteractiveContainer)
	}
	return s, nil
}

// Storage returns the export storage spec: the connection string when set,
// else the account URL.
func (s Settings) Storage() string {
	if s.StorageConnectionString != "" {
		return s.StorageConnectionString
	}
	return s.StorageAccountURL
}

// StateStorage returns the state storage spec: StateStorageAccountURL, else
// the export storage.
func (s Settings) StateStorage() string {
	if s.StateStorageAccountURL != "" && s.StorageConnectionString == "" {
		return s.StateStorageAccountURL
	}
	return s.Storage()
}

// SplitList splits a comma- or newline-separated list, dropping empty entries.
func SplitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == ';' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
