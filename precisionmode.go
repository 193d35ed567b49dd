package main

import (
	"fmt"
	"io"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/precision"
	"github.com/tokenpivot/tokenpivot/internal/settings"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// pairFilter applies a precision mode to the rows detect's index gives, in
// the batch commands (detect, test): the interactive candidates' extra
// columns are kept by row, and each non-interactive row's new result rows
// are decided as it is probed. A nil *pairFilter is exact mode: nothing is
// kept, read or removed.
type pairFilter struct {
	f *precision.Filter
	// The interactive rows' extra columns, by Id, else (as detect's alert
	// ids do) by user, time and IP.
	byID  map[string]*signin.Extra
	byAt  map[interactiveKey]*signin.Extra
	stats precision.Stats
}

type interactiveKey struct {
	upn, ip string
	t       time.Time
}

func newPairFilter(f *precision.Filter) *pairFilter {
	if f == nil {
		return nil
	}
	return &pairFilter{f: f, byID: map[string]*signin.Extra{}, byAt: map[interactiveKey]*signin.Extra{}, stats: precision.Stats{Mode: f.Mode}}
}

// options asks the reader for the mode's extra columns when one is on.
func (pf *pairFilter) options(o signin.Options) signin.Options {
	if pf != nil {
		o.Extra = append(o.Extra, pf.f.Mode.Columns()...)
	}
	return o
}

// addInteractive remembers an interactive candidate's extra columns; the
// first of a repeated Id wins, as in detect.Index.
func (pf *pairFilter) addInteractive(r *signin.Record) {
	if pf == nil || r.Extra == nil {
		return
	}
	if r.Id != "" {
		if _, ok := pf.byID[r.Id]; !ok {
			pf.byID[r.Id] = r.Extra
		}
		return
	}
	k := interactiveKey{upn: r.UserPrincipalName, ip: r.IPAddress, t: r.TimeGenerated}
	if _, ok := pf.byAt[k]; !ok {
		pf.byAt[k] = r.Extra
	}
}

// filter decides rows[from:], the result rows of non-interactive row n,
// and returns rows without those the mode suppresses.
func (pf *pairFilter) filter(rows []detect.Result, from int, n *signin.Record) []detect.Result {
	if pf == nil {
		return rows
	}
	out := rows[:from]
	for _, r := range rows[from:] {
		var ix *signin.Extra
		if r.InteractiveId != "" {
			ix = pf.byID[r.InteractiveId]
		} else {
			ix = pf.byAt[interactiveKey{upn: r.UserPrincipalName, ip: r.InteractiveIP, t: r.InteractiveTime}]
		}
		v := pf.f.Decide(&r, ix, n.Extra)
		pf.stats.Add(v)
		if v.Keep {
			out = append(out, r)
		}
	}
	return out
}

// report writes the mode's counts, one line, to w (stderr): what a SOC
// needs to audit what the mode hid.
func (pf *pairFilter) report(w io.Writer, command string) {
	if pf == nil {
		return
	}
	fmt.Fprintf(w, "%s: %s\n", command, pf.stats)
}

// pipelinePrecision refuses a precision mode in the event-driven pipeline
// (process, serve), which does not carry the modes' columns in its
// extracts yet: running exact while the setting says balanced would hide
// nothing and claim to, so the command stops and says so.
func pipelinePrecision(s settings.Settings) error {
	if !s.Precision.On() {
		return nil
	}
	return usagef("%s=%s: the precision modes run in detect and test only; process and serve (the pipeline) run exact until their extracts carry the modes' columns", settings.Precision, s.Precision)
}
