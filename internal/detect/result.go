package detect

import (
	"fmt"
	"strings"
	"time"
)

// Result is one row of the rule's final project, in the query's column order,
// plus the two source rows' Ids (not output columns) for alert ids and dedup.
type Result struct {
	NISignInTime          time.Time
	InteractiveTime       time.Time
	UserPrincipalName     string
	AppDisplayName        string // the non-interactive row's
	NIIPAddress           string
	NICountry             string
	InteractiveIP         string
	InteractiveCountry    string
	CorrelationId         string // the non-interactive row's
	UniqueTokenIdentifier string
	TimeSinceInteractive  time.Duration

	InteractiveId    string `json:"-"`
	NonInteractiveId string `json:"-"`

	// Extra are the columns a tuned rule's project adds after the eleven
	// (kql.Plan.Extra), in its order; nil for the bundled rule.
	Extra Extra `json:"-"`
}

// Extra are a row's added output columns: one pointer, so that the bundled
// rule's rows (which have none) grow by 8 bytes only, and Result stays
// comparable (two rows with added columns compare equal only when they
// share them; Compare and ContentKey compare the values).
type Extra struct{ d *extraData }

type extraData struct {
	names  *[]string // shared by every row of a rule
	values []string
}

// NewExtra returns added columns: names (shared, not copied) and values.
func NewExtra(names *[]string, values []string) Extra {
	if names == nil || len(*names) == 0 {
		return Extra{}
	}
	return Extra{&extraData{names, values}}
}

// Len is the number of added columns.
func (e Extra) Len() int {
	if e.d == nil {
		return 0
	}
	return len(*e.d.names)
}

// Names are the added columns' names.
func (e Extra) Names() []string {
	if e.d == nil {
		return nil
	}
	return *e.d.names
}

// Values are the added columns' texts.
func (e Extra) Values() []string {
	if e.d == nil {
		return nil
	}
	return e.d.values
}

// column is one result column: its name, its value as text (times in
// RFC 3339 UTC with as many fractional digits as they have, the timespan as
// KQL prints it), how to set it from that text, and its shorter form in the
// table printer.
type column struct {
	name  string
	text  func(*Result) string
	set   func(*Result, string) error
	brief func(*Result) string
}

// columns is the one table of the result columns, in the query's final
// `project` order (DESIGN.md section 1). JSON Lines, CSV, the table printer,
// Column (templates, entities, custom details) and the content keys all
// derive from it.
var columns = [...]column{
	timeColumn("NISignInTime", func(r *Result) *time.Time { return &r.NISignInTime }),
	timeColumn("InteractiveTime", func(r *Result) *time.Time { return &r.InteractiveTime }),
	stringColumn("UserPrincipalName", func(r *Result) *string { return &r.UserPrincipalName }),
	stringColumn("AppDisplayName", func(r *Result) *string { return &r.AppDisplayName }),
	stringColumn("NIIPAddress", func(r *Result) *string { return &r.NIIPAddress }),
	stringColumn("NICountry", func(r *Result) *string { return &r.NICountry }),
	stringColumn("InteractiveIP", func(r *Result) *string { return &r.InteractiveIP }),
	stringColumn("InteractiveCountry", func(r *Result) *string { return &r.InteractiveCountry }),
	stringColumn("CorrelationId", func(r *Result) *string { return &r.CorrelationId }),
	stringColumn("UniqueTokenIdentifier", func(r *Result) *string { return &r.UniqueTokenIdentifier }),
	timespanColumn("TimeSinceInteractive", func(r *Result) *time.Duration { return &r.TimeSinceInteractive }),
}

func stringColumn(name string, field func(*Result) *string) column {
	text := func(r *Result) string { return *field(r) }
	return column{
		name:  name,
		text:  text,
		set:   func(r *Result, s string) error { *field(r) = s; return nil },
		brief: text,
	}
}

func timeColumn(name string, field func(*Result) *time.Time) column {
	return column{
		name: name,
		text: func(r *Result) string { return FormatTime(*field(r)) },
		set: func(r *Result, s string) error {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return fmt.Errorf("%q is not an RFC 3339 time", s)
			}
			*field(r) = t.UTC()
			return nil
		},
		brief: func(r *Result) string { return field(r).UTC().Format(briefTime) },
	}
}

// briefTime is the table printer's time layout (UTC, to the second).
const briefTime = "2006-01-02 15:04:05"

func timespanColumn(name string, field func(*Result) *time.Duration) column {
	text := func(r *Result) string { return FormatTimespan(*field(r)) }
	return column{
		name: name,
		text: text,
		set: func(r *Result, s string) (err error) {
			*field(r), err = ParseTimespan(s)
			return err
		},
		brief: text,
	}
}

// Columns are the result's column names in output order.
var Columns = columnNames()

// columnIndex maps a column name to its place in columns.
var columnIndex = func() map[string]int {
	m := make(map[string]int, len(columns))
	for i, c := range columns {
		m[c.name] = i
	}
	return m
}()

func columnNames() []string {
	out := make([]string, len(columns))
	for i, c := range columns {
		out[i] = c.name
	}
	return out
}

// Column returns the value of the named result column as text (times in
// RFC 3339 UTC, the timespan as KQL prints it); false for an unknown column.
func Column(r Result, name string) (string, bool) {
	i, ok := columnIndex[name]
	if !ok {
		for k, n := range r.Extra.Names() {
			if n == name {
				return r.Extra.Values()[k], true
			}
		}
		return "", false
	}
	return columns[i].text(&r), true
}

// Fields returns the texts of r's columns, in column order (as Column
// gives each).
func Fields(r Result) []string {
	out := make([]string, len(columns), len(columns)+r.Extra.Len())
	for i, c := range columns {
		out[i] = c.text(&r)
	}
	out = append(out, r.Extra.Values()...)
	return out
}

// ContentKey identifies a row by the text of all its columns (not its
// Ids): the columns' texts in order, NUL-joined. Alert documents store
// hashes of it, so it must never change for a given row.
func ContentKey(r Result) string {
	var b strings.Builder
	for i, c := range columns {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(c.text(&r))
	}
	for _, v := range r.Extra.Values() {
		b.WriteByte(0)
		b.WriteString(v)
	}
	return b.String()
}
