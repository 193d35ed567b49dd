// Package rule is the rule's configuration: the known-safe IPs and networks,
// and the Sentinel rule YAML's metadata used to render alerts and incidents.
package rule

import (
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenpivot/tokenpivot/internal/kql"
)

// Rule is a Sentinel scheduled analytics rule as its YAML describes it: the
// metadata that alerts and incidents are rendered from, and the safe lists
// held in its query.
type Rule struct {
	// File is the name Load was given, for messages.
	File string

	ID          string
	Name        string
	Version     string
	Kind        string
	Description string
	// Severity is Informational, Low, Medium or High.
	Severity   string
	Tactics    []string
	Techniques []string // relevantTechniques

	QueryFrequency   time.Duration // zero when absent
	QueryPeriod      time.Duration // zero when absent
	TriggerOperator  string
	TriggerThreshold int

	EntityMappings []EntityMapping
	// CustomDetails map a detail name to a result column, in YAML order.
	CustomDetails         []KV
	AlertDetailsOverride  AlertDetailsOverride
	IncidentConfiguration IncidentConfiguration
	// EventGrouping is eventGroupingSettings.aggregationKind: SingleAlert
	// (the default) or AlertPerResult.
	EventGrouping string

	Query string
	// SafeIPs are the entries of `let KnownSafeIPs = dynamic([...]);`.
	SafeIPs []string
	// SafeNetworks are the entries of `let KnownSafeNetworks = datatable(network: string) [...];`.
	SafeNetworks []string
	// Plan is the query compiled (internal/kql): what the engine runs.
	// SafeIPs and SafeNetworks are the lists its safe tests read.
	Plan *kql.Plan
}

// EntityMapping maps result columns to the identifiers of one entity.
type EntityMapping struct {
	EntityType    string // Account, IP, Host...
	FieldMappings []FieldMapping
}

// FieldMapping maps one entity identifier to a result column.
type FieldMapping struct {
	Identifier string // FullName, Address...
	ColumnName string
}

// KV is one entry of an ordered mapping.
type KV struct {
	Key, Value string
}

// AlertDetailsOverride renders alert fields from result columns. The formats
// hold {{Column}} placeholders.
type AlertDetailsOverride struct {
	AlertDisplayNameFormat  string
	AlertDescriptionFormat  string
	AlertSeverityColumnName string
	AlertTacticsColumnName  string
	AlertDynamicProperties  []DynamicProperty
}

// DynamicProperty sets an alert property from a result column.
type DynamicProperty struct {
	AlertProperty string // AlertLink, ProductName, RemediationSteps...
	Value         string // a column name
}

// IncidentConfiguration says whether and how alerts become incidents.
type IncidentConfiguration struct {
	CreateIncident bool
	Grouping       Grouping
}

// Grouping is incidentConfiguration.groupingConfiguration.
type Grouping struct {
	Enabled              bool
	ReopenClosedIncident bool
	// LookbackDuration bounds a group: alerts join an incident whose first
	// alert is at most this much older. Sentinel's default is 5h.
	LookbackDuration time.Duration
	MatchingMethod   MatchingMethod
	GroupByEntities  []string // entity types
	// GroupByAlertDetails are DisplayName and/or Severity.
	GroupByAlertDetails  []string
	GroupByCustomDetails []string // keys of CustomDetails
}

// MatchingMethod is how alerts are grouped into incidents.
type MatchingMethod string

// The matching methods Sentinel knows.
const (
	// AnyAlert groups all the rule's alerts within the lookback.
	AnyAlert MatchingMethod = "AnyAlert"
	// Selected groups alerts whose selected entities and details match.
	Selected MatchingMethod = "Selected"
	// AllEntities groups alerts whose entities all match (Sentinel's default).
	AllEntities MatchingMethod = "AllEntities"
)

// Aggregation kinds of eventGroupingSettings.
const (
	SingleAlert    = "SingleAlert"
	AlertPerResult = "AlertPerResult"
)

// DefaultLookback is Sentinel's default lookbackDuration.
const DefaultLookback = 5 * time.Hour

// Error is a problem in a rule file: the file, the line when known (else 0),
// the field as a dotted YAML path, and what is wrong.
type Error struct {
	File  string
	Line  int
	Field string
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rule ")
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

//go:embed token-theft-pivot.yaml
var defaultYAML []byte

var defaultRule = sync.OnceValue(func() *Rule {
	r, err := Load("token-theft-pivot.yaml", defaultYAML)
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return r
})

// Default returns the bundled rule, "Interactive to Non-Interactive Token
// Theft Pivot". Callers must not modify it.
func Default() *Rule { return defaultRule() }

// DefaultYAML returns the bundled rule's YAML.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// rawRule is the YAML's shape; unknown keys (requiredDataConnectors...) are ignored.
type rawRule struct {
	ID                    string               `yaml:"id"`
	Name                  string               `yaml:"name"`
	Version               string               `yaml:"version"`
	Kind                  string               `yaml:"kind"`
	Description           string               `yaml:"description"`
	Severity              string               `yaml:"severity"`
	QueryFrequency        string               `yaml:"queryFrequency"`
	QueryPeriod           string               `yaml:"queryPeriod"`
	TriggerOperator       string               `yaml:"triggerOperator"`
	TriggerThreshold      int                  `yaml:"triggerThreshold"`
	Tactics               []string             `yaml:"tactics"`
	RelevantTechniques    []string             `yaml:"relevantTechniques"`
	Query                 string               `yaml:"query"`
	EntityMappings        []rawEntityMapping   `yaml:"entityMappings"`
	CustomDetails         yaml.Node            `yaml:"customDetails"`
	AlertDetailsOverride  rawAlertOverride     `yaml:"alertDetailsOverride"`
	IncidentConfiguration rawIncidentConfig    `yaml:"incidentConfiguration"`
	EventGroupingSettings rawEventGroupingSpec `yaml:"eventGroupingSettings"`
}

type rawEntityMapping struct {
	EntityType    string `yaml:"entityType"`
	FieldMappings []struct {
		Identifier string `yaml:"identifier"`
		ColumnName string `yaml:"columnName"`
	} `yaml:"fieldMappings"`
}

type rawAlertOverride struct {
	AlertDisplayNameFormat  string `yaml:"alertDisplayNameFormat"`
	AlertDescriptionFormat  string `yaml:"alertDescriptionFormat"`
	AlertSeverityColumnName string `yaml:"alertSeverityColumnName"`
	AlertTacticsColumnName  string `yaml:"alertTacticsColumnName"`
	AlertDynamicProperties  []struct {
		AlertProperty string `yaml:"alertProperty"`
		Value         string `yaml:"value"`
	} `yaml:"alertDynamicProperties"`
}

type rawIncidentConfig struct {
	CreateIncident        bool `yaml:"createIncident"`
	GroupingConfiguration struct {
		Enabled              bool     `yaml:"enabled"`
		ReopenClosedIncident bool     `yaml:"reopenClosedIncident"`
		LookbackDuration     string   `yaml:"lookbackDuration"`
		MatchingMethod       string   `yaml:"matchingMethod"`
		GroupByEntities      []string `yaml:"groupByEntities"`
		GroupByAlertDetails  []string `yaml:"groupByAlertDetails"`
		GroupByCustomDetails []string `yaml:"groupByCustomDetails"`
	} `yaml:"groupingConfiguration"`
}

type rawEventGroupingSpec struct {
	AggregationKind string `yaml:"aggregationKind"`
}

// Load parses a Sentinel rule YAML. name is the file or blob name, used in
// errors. Invalid YAML, a missing id/name/severity/query, a bad duration, an
// unknown matching method or an invalid entry in the query's safe lists is
// an *Error naming the file and the field.
func Load(name string, data []byte) (r *Rule, err error) {
	var root yaml.Node
	if err := decodeYAML(data, &root); err != nil {
		line, msg := yamlError(err)
		return nil, &Error{File: name, Line: line, Err: fmt.Errorf("invalid YAML (is the indentation intact?): %s", msg)}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{File: name, Err: errors.New("empty file")}
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, &Error{File: name, Line: doc.Line, Err: fmt.Errorf("not a rule: the document is a %s, not a mapping", kindName(doc.Kind))}
	}
	var raw rawRule
	if err := decodeNode(doc, &raw); err != nil {
		line, msg := yamlError(err)
		return nil, &Error{File: name, Line: line, Err: fmt.Errorf("wrong type: %s", msg)}
	}
	fail := func(field, format string, args ...any) error {
		return &Error{File: name, Line: lineOf(doc, field), Field: field, Err: fmt.Errorf(format, args...)}
	}

	r = &Rule{
		File:             name,
		ID:               strings.TrimSpace(raw.ID),
		Name:             strings.TrimSpace(raw.Name),
		Version:          strings.TrimSpace(raw.Version),
		Kind:             raw.Kind,
		Description:      raw.Description,
		Tactics:          raw.Tactics,
		Techniques:       raw.RelevantTechniques,
		TriggerOperator:  raw.TriggerOperator,
		TriggerThreshold: raw.TriggerThreshold,
		Query:            raw.Query,
	}
	for _, f := range []struct{ field, v string }{{"id", r.ID}, {"name", r.Name}, {"query", strings.TrimSpace(r.Query)}} {
		if f.v == "" {
			return nil, fail(f.field, "required")
		}
	}
	if r.Severity, err = canonical(raw.Severity, "Informational", "Low", "Medium", "High"); err != nil {
		return nil, fail("severity", "%v", err)
	}
	for _, f := range []struct {
		field string
		raw   string
		dst   *time.Duration
	}{{"queryFrequency", raw.QueryFrequency, &r.QueryFrequency}, {"queryPeriod", raw.QueryPeriod, &r.QueryPeriod}} {
		if f.raw == "" {
			continue
		}
		if *f.dst, err = ParseDuration(f.raw); err != nil {
			return nil, fail(f.field, "%v", err)
		}
	}

	for i, m := range raw.EntityMappings {
		field := fmt.Sprintf("entityMappings[%d]", i)
		if strings.TrimSpace(m.EntityType) == "" {
			return nil, fail(field+".entityType", "required")
		}
		em := EntityMapping{EntityType: m.EntityType}
		for j, fm := range m.FieldMappings {
			if fm.Identifier == "" || fm.ColumnName == "" {
				return nil, fail(fmt.Sprintf("%s.fieldMappings[%d]", field, j), "identifier and columnName are required")
			}
			em.FieldMappings = append(em.FieldMappings, FieldMapping{Identifier: fm.Identifier, ColumnName: fm.ColumnName})
		}
		if len(em.FieldMappings) == 0 {
			return nil, fail(field+".fieldMappings", "required")
		}
		r.EntityMappings = append(r.EntityMappings, em)
	}

	if r.CustomDetails, err = orderedMap(&raw.CustomDetails); err != nil {
		return nil, fail("customDetails", "%v", err)
	}

	ao := raw.AlertDetailsOverride
	r.AlertDetailsOverride = AlertDetailsOverride{
		AlertDisplayNameFormat:  ao.AlertDisplayNameFormat,
		AlertDescriptionFormat:  ao.AlertDescriptionFormat,
		AlertSeverityColumnName: ao.AlertSeverityColumnName,
		AlertTacticsColumnName:  ao.AlertTacticsColumnName,
	}
	for _, p := range ao.AlertDynamicProperties {
		r.AlertDetailsOverride.AlertDynamicProperties = append(r.AlertDetailsOverride.AlertDynamicProperties,
			DynamicProperty{AlertProperty: p.AlertProperty, Value: p.Value})
	}

	r.EventGrouping = SingleAlert
	if k := raw.EventGroupingSettings.AggregationKind; k != "" {
		if r.EventGrouping, err = canonical(k, SingleAlert, AlertPerResult); err != nil {
			return nil, fail("eventGroupingSettings.aggregationKind", "%v", err)
		}
	}

	if r.IncidentConfiguration, err = incidentConfig(raw.IncidentConfiguration, r.CustomDetails, fail); err != nil {
		return nil, err
	}

	if r.SafeIPs, r.SafeNetworks, err = safeLists(r.Query); err != nil {
		var qe *queryError
		line := lineOf(doc, "query")
		if errors.As(err, &qe) && line > 0 {
			if n := valueNode(doc, "query"); n != nil && n.Style&yaml.LiteralStyle != 0 {
				line += qe.line // the block's first line follows the "|" line
			}
		}
		return nil, &Error{File: name, Line: line, Field: "query", Err: err}
	}
	// The engine runs what the query says, or refuses it (DESIGN.md 8).
	if r.Plan, err = kql.Compile(r.Query); err != nil {
		line := lineOf(doc, "query")
		var ke *kql.Error
		if errors.As(err, &ke) && line > 0 {
			if n := valueNode(doc, "query"); n != nil && n.Style&yaml.LiteralStyle != 0 {
				line += ke.Pos.Line
			} else {
				line = 0
			}
		}
		return nil, &Error{File: name, Line: line, Field: "query", Err: err}
	}
	if sm := r.Plan.Summary; sm != nil {
		// Its refusal by process and serve names the rule file's line.
		if n := valueNode(doc, "query"); n != nil && n.Style&yaml.LiteralStyle != 0 && lineOf(doc, "query") > 0 {
			sm.FileLine = lineOf(doc, "query") + sm.At.Line
		}
	}
	r.SafeIPs, r.SafeNetworks = r.Plan.SafeIPs, r.Plan.SafeNetworks
	// The lists as KQL reads them: two adjacent strings are one.
	for _, ip := range r.SafeIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, &Error{File: name, Line: lineOf(doc, "query"), Field: "query",
				Err: fmt.Errorf("safe IP list entry %q is not an IP address (in KQL two adjacent strings are one: is a comma missing?)", ip)}
		}
	}
	for _, n := range r.SafeNetworks {
		if _, err := parsePrefix(n); err != nil {
			return nil, &Error{File: name, Line: lineOf(doc, "query"), Field: "query",
				Err: fmt.Errorf("safe network list entry %q: %v (in KQL two adjacent strings are one: is a comma missing?)", n, err)}
		}
	}
	return r, nil
}

// incidentConfig checks and converts incidentConfiguration.
func incidentConfig(raw rawIncidentConfig, details []KV, fail func(field, format string, args ...any) error) (IncidentConfiguration, error) {
	const gc = "incidentConfiguration.groupingConfiguration."
	g := raw.GroupingConfiguration
	out := IncidentConfiguration{CreateIncident: raw.CreateIncident, Grouping: Grouping{
		Enabled:              g.Enabled,
		ReopenClosedIncident: g.ReopenClosedIncident,
		LookbackDuration:     DefaultLookback,
		MatchingMethod:       AllEntities,
		GroupByEntities:      g.GroupByEntities,
		GroupByAlertDetails:  g.GroupByAlertDetails,
		GroupByCustomDetails: g.GroupByCustomDetails,
	}}
	if g.LookbackDuration != "" {
		d, err := ParseDuration(g.LookbackDuration)
		if err != nil {
			return out, fail(gc+"lookbackDuration", "%v", err)
		}
		if d <= 0 {
			return out, fail(gc+"lookbackDuration", "must be positive")
		}
		out.Grouping.LookbackDuration = d
	}
	if g.MatchingMethod != "" {
		m, err := canonical(g.MatchingMethod, string(AnyAlert), string(Selected), string(AllEntities))
		if err != nil {
			return out, fail(gc+"matchingMethod", "%v", err)
		}
		out.Grouping.MatchingMethod = MatchingMethod(m)
	}
	for i, d := range g.GroupByAlertDetails {
		m, err := canonical(d, "DisplayName", "Severity")
		if err != nil {
			return out, fail(fmt.Sprintf("%sgroupByAlertDetails[%d]", gc, i), "%v", err)
		}
		out.Grouping.GroupByAlertDetails[i] = m
	}
	for i, d := range g.GroupByCustomDetails {
		known := false
		for _, kv := range details {
			known = known || kv.Key == d
		}
		if !known {
			return out, fail(fmt.Sprintf("%sgroupByCustomDetails[%d]", gc, i), "%q is not a key of customDetails", d)
		}
	}
	return out, nil
}

// canonical returns the allowed value equal to v ignoring case, or an error
// listing the allowed values.
func canonical(v string, allowed ...string) (string, error) {
	v = strings.TrimSpace(v)
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a, nil
		}
	}
	if v == "" {
		return "", fmt.Errorf("required (one of %s)", strings.Join(allowed, ", "))
	}
	return "", fmt.Errorf("unknown value %q (want one of %s)", v, strings.Join(allowed, ", "))
}

// orderedMap reads a mapping of scalars, keeping its order.
func orderedMap(n *yaml.Node) ([]KV, error) {
	if n.Kind == 0 || n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: must be a mapping of detail name to column, not a %s", n.Line, kindName(n.Kind))
	}
	var out []KV
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode || k.Value == "" || v.Value == "" {
			return nil, fmt.Errorf("line %d: each entry must be name: Column", k.Line)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("line %d: %q appears twice", k.Line, k.Value)
		}
		seen[k.Value] = true
		out = append(out, KV{Key: k.Value, Value: v.Value})
	}
	return out, nil
}

// valueNode follows a dotted path of mapping keys and list indexes
// ("entityMappings[1].fieldMappings") from n; nil when it is not there.
func valueNode(n *yaml.Node, path string) *yaml.Node {
	for _, key := range strings.Split(path, ".") {
		index := -1
		if i := strings.IndexByte(key, '['); i >= 0 && strings.HasSuffix(key, "]") {
			index, _ = strconv.Atoi(key[i+1 : len(key)-1])
			key = key[:i]
		}
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
		if index >= 0 {
			if n.Kind != yaml.SequenceNode || index >= len(n.Content) {
				return nil
			}
			n = n.Content[index]
		}
	}
	return n
}

// lineOf returns the line of the value at path, or 0.
func lineOf(n *yaml.Node, path string) int {
	if v := valueNode(n, path); v != nil {
		return v.Line
	}
	return 0
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.ScalarNode:
		return "scalar"
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// yamlError returns the first line a YAML library error names and its
// message on one line without that line number.
func yamlError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var parts []string
	line := 0
	for _, p := range strings.Split(msg, "\n") {
		p = strings.TrimSpace(p)
		if m := yamlLine.FindStringSubmatch(p); m != nil {
			if line == 0 {
				line, _ = strconv.Atoi(m[1])
				p = p[len(m[0]):]
			}
		}
		parts = append(parts, p)
	}
	return line, strings.Join(parts, "; ")
}

// decodeYAML and decodeNode turn a panic inside the YAML library into an
// error: a rule file comes from users and must never crash the process.
func decodeYAML(data []byte, v *yaml.Node) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	return yaml.Unmarshal(data, v)
}

func decodeNode(n *yaml.Node, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	return n.Decode(v)
}

// SafeList combines the rule's KnownSafeIPs and KnownSafeNetworks with
// extras from flags or app settings.
func (r *Rule) SafeList(extraIPs, extraNetworks []string, opts SafeListOptions) (*SafeList, error) {
	ips := append(append([]string(nil), r.SafeIPs...), extraIPs...)
	nets := append(append([]string(nil), r.SafeNetworks...), extraNetworks...)
	// The rule's own entries were checked by Load: an error names an extra.
	return NewSafeList(ips, nets, opts)
}
