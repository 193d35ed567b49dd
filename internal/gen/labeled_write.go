package gen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// Labeled-tenant files, as WriteLabeled lays them out in its folder.
const (
	LabeledInteractive    = "interactive.jsonl"
	LabeledNonInteractive = "noninteractive.jsonl"
	LabeledLabels         = "labels.csv"
	LabeledSafeNetworks   = "safe-networks.txt"
)

// WriteLabeled writes the labeled tenant into dir as Log Analytics data
// export JSON Lines (one file a table, rows in time order per user), the
// labels sidecar (Id,label, one row a line) and the tenant's safe networks
// (its SASE egress, for --safe-networks). It returns the rows written.
func WriteLabeled(o LabeledOptions, dir string) (rows int, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	files := map[string]*bufio.Writer{}
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}()
	for _, name := range []string{LabeledInteractive, LabeledNonInteractive, LabeledLabels} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return 0, err
		}
		closers = append(closers, f)
		files[name] = bufio.NewWriterSize(f, 1<<20)
	}
	fmt.Fprintln(files[LabeledLabels], "Id,label")
	err = GenerateLabeled(o, func(u *LabeledUser) error {
		for _, t := range []struct {
			name string
			rs   []signin.Record
			tbl  signin.Table
		}{{LabeledInteractive, u.Interactive, signin.Interactive}, {LabeledNonInteractive, u.NonInteractive, signin.NonInteractive}} {
			rs := slices.Clone(t.rs)
			slices.SortStableFunc(rs, func(a, b signin.Record) int { return a.TimeGenerated.Compare(b.TimeGenerated) })
			for k := range rs {
				line, err := exportLine(&rs[k], t.tbl)
				if err != nil {
					return err
				}
				files[t.name].Write(line)
				files[t.name].WriteByte('\n')
				fmt.Fprintf(files[LabeledLabels], "%s,%s\n", rs[k].Id, u.Labels[rs[k].Id])
				rows++
			}
		}
		return nil
	})
	if err != nil {
		return rows, err
	}
	for _, w := range files {
		if err := w.Flush(); err != nil {
			return rows, err
		}
	}
	return rows, os.WriteFile(filepath.Join(dir, LabeledSafeNetworks), []byte(strings.Join(SafeNetworks(), "\n")+"\n"), 0o644)
}

// exportLine is a row as the data export writes it: SigninLogs' dynamic
// columns (LocationDetails, DeviceDetail) as JSON objects, the
// non-interactive table's as JSON text (its schema types them string).
func exportLine(r *signin.Record, t signin.Table) ([]byte, error) {
	x := r.Extra
	if x == nil {
		x = &signin.Extra{}
	}
	dyn := func(s string) any {
		if t == signin.Interactive && s != "" {
			return json.RawMessage(s)
		}
		return s
	}
	m := map[string]any{
		"TimeGenerated": r.TimeGenerated.UTC().Format("2006-01-02T15:04:05.0000000Z"), "UserPrincipalName": r.UserPrincipalName,
		"IPAddress": r.IPAddress, "Location": r.Location, "ResultType": r.ResultType,
		"AuthenticationRequirement": r.AuthenticationRequirement, "ConditionalAccessStatus": r.ConditionalAccessStatus,
		"AppDisplayName": r.AppDisplayName, "CorrelationId": r.CorrelationId, "UniqueTokenIdentifier": r.UniqueTokenIdentifier,
		"Id": r.Id, "Type": t.String(), "SessionId": x.SessionId, "AutonomousSystemNumber": x.AutonomousSystemNumber,
		"NetworkLocationDetails": x.NetworkLocationDetails, "IsThroughGlobalSecureAccess": x.IsThroughGlobalSecureAccess == "true",
		"AppId": x.AppId, "LocationDetails": dyn(x.LocationDetails), "DeviceDetail": dyn(x.DeviceDetail),
		"TokenProtectionStatusDetails": x.TokenProtectionStatusDetails,
	}
	if t == signin.NonInteractive {
		m["AuthenticationRequirement"], m["ConditionalAccessStatus"] = "singleFactorAuthentication", "notApplied"
	}
	return json.Marshal(m)
}
