package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// The blob-size sweep (-blobsweep): the interactive hour processed, then
// ONE non-interactive blob of growing size through `process --workers 1`,
// with and without GOMEMLIMIT=350MiB: peak RSS must not grow with the blob
// (DESIGN.md 8), CPU per row should stay flat. The Parquet blobs are
// `gen`'s realistic layout (time-ordered, so every 100k-row row group holds
// most of the tenant's users; 2% roaming, thousands of pairs) written as
// one file; the JSON Lines blobs are the same rows converted, in the two
// forms a tenant exports them: Log Analytics data export (one object per
// row, the table's columns) and the Entra diagnostic-settings archive
// (resource-log records), each as one plain append-style blob (PT1H.json).
var sweepSizes = []struct {
	label string
	ratio string // --ni-per-interactive for 200k interactive rows
	rows  int
}{
	{"0.1", "0.5", 100_000},
	{"0.5", "2.5", 500_000},
	{"1", "5", 1_000_000},
	{"2", "10", 2_000_000},
	{"4", "20", 4_000_000},
}

// sweepJSON are the JSON Lines cases: made from the Parquet blob of label.
var sweepJSON = []string{"0.5", "2"}

// sweepLimit is the Go memory limit of the second configuration: what
// infra sets for a 512 MB instance.
const sweepLimit = "350MiB"

type sweepCase struct {
	name  string // "Parquet 0.5M", "JSON Lines (data export) 2M"
	hour  string // the gen folder: its interactive files build the state
	blob  string // the non-interactive blob, a file
	dest  string // its name in the non-interactive container
	rows  int
	bytes int64
}

func blobSweep(ctx context.Context, c config, bin string, w io.Writer) error {
	var cases []sweepCase
	for _, s := range sweepSizes {
		dir := filepath.Join(c.data, "blob-"+s.label)
		args := []string{"gen", "--users", "100000", "--hours", "1",
			"--interactive-per-hour", "200000", "--ni-per-interactive", s.ratio,
			"--rows-per-file", fmt.Sprint(s.rows), "--row-group-rows", "100000", "--attacks", "2", "--lookalikes", "0",
			"--time-ordered", "--roam-rate", "0.02", "--seed", fmt.Sprint(c.seed)}
		if err := ensureData(ctx, bin, dir, args); err != nil {
			return err
		}
		blob, err := largestFile(filepath.Join(dir, noninteractiveContainer))
		if err != nil {
			return err
		}
		cases = append(cases, sweepCase{name: "Parquet " + s.label + "M", hour: dir, blob: blob,
			dest: strings.TrimPrefix(blob, filepath.Join(dir, noninteractiveContainer)+"/"), rows: s.rows})
		for _, j := range sweepJSON {
			if j != s.label {
				continue
			}
			for _, form := range []string{"data export", "diagnostic archive"} {
				out := filepath.Join(dir, "json-"+strings.ReplaceAll(form, " ", "-")+".json")
				if err := ensureJSON(blob, out, form); err != nil {
					return err
				}
				dest := "WorkspaceResourceId=/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/law/y=2026/m=11/d=20/h=00/m=00/PT1H.json"
				if form == "diagnostic archive" {
					dest = "tenantId=00000000-0000-0000-0000-000000000000/y=2026/m=11/d=20/h=00/m=00/PT1H.json"
				}
				cases = append(cases, sweepCase{name: "JSON Lines (" + form + ") " + s.label + "M", hour: dir, blob: out, dest: dest, rows: s.rows})
			}
		}
	}
	if c.sweepOnly != "" {
		re, err := regexp.Compile(c.sweepOnly)
		if err != nil {
			return fmt.Errorf("-sweep-only: %w", err)
		}
		cases = slices.DeleteFunc(cases, func(sc sweepCase) bool { return !re.MatchString(sc.name) })
	}
	fmt.Fprintln(w, "## Blob-size sweep: one non-interactive blob through `process --workers 1`, interactive hour processed")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| NI blob | rows | size | peak RSS | CPU | CPU µs/row | peak RSS, GOMEMLIMIT="+sweepLimit+" | CPU then |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, sc := range cases {
		fi, err := os.Stat(sc.blob)
		if err != nil {
			return err
		}
		sc.bytes = fi.Size()
		var got [2]sample
		for k, env := range [][]string{nil, {"GOMEMLIMIT=" + sweepLimit}} {
			if got[k], err = sweepOne(ctx, c, bin, sc, env); err != nil {
				return err
			}
			logf("blobsweep: %s %v: %.1f s CPU, %.0f MiB", sc.name, env, got[k].cpu.Seconds(), float64(got[k].peakRSS)/(1<<20))
		}
		fmt.Fprintf(w, "| %s | %.1fM | %.1f MB | %.0f MiB | %.1f s | %.1f | %.0f MiB | %.1f s |\n", sc.name, float64(sc.rows)/1e6,
			float64(sc.bytes)/1e6, float64(got[0].peakRSS)/(1<<20), got[0].cpu.Seconds(), got[0].cpu.Seconds()*1e6/float64(sc.rows),
			float64(got[1].peakRSS)/(1<<20), got[1].cpu.Seconds())
	}
	fmt.Fprintln(w)
	return nil
}

// sweepOne lays out a fresh storage folder, processes the case's
// interactive exports (not measured), then its one non-interactive blob
// (measured, with env added).
func sweepOne(ctx context.Context, c config, bin string, sc sweepCase, env []string) (sample, error) {
	// One folder per sweep: two sweeps (before and after) may share the data.
	dir := filepath.Join(c.data, fmt.Sprintf("sweep-run-%d", os.Getpid()))
	if err := os.RemoveAll(dir); err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	for _, cn := range []string{interactiveContainer, noninteractiveContainer} {
		if err := os.MkdirAll(filepath.Join(dir, cn), 0o755); err != nil {
			return sample{}, err
		}
	}
	if err := linkTree(filepath.Join(sc.hour, interactiveContainer), filepath.Join(dir, interactiveContainer)); err != nil {
		return sample{}, err
	}
	if _, err := measureEnv(ctx, nil, bin, "process", "--storage", dir, "--workers", "1"); err != nil {
		return sample{}, err
	}
	if err := linkFile(sc.blob, filepath.Join(dir, noninteractiveContainer, sc.dest)); err != nil {
		return sample{}, err
	}
	return measureEnv(ctx, env, bin, "process", "--storage", dir, "--workers", "1")
}

// measureEnv is measure with variables added to the child's environment.
func measureEnv(ctx context.Context, env []string, name string, args ...string) (sample, error) {
	cmd := command(ctx, "", name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("%s %v: %w", name, args, err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return sample{}, fmt.Errorf("%s: no rusage on this system", name)
	}
	return sample{wall: time.Since(start), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), peakRSS: ru.Maxrss * 1024}, nil
}

// linkFile hard-links src to dst (GBs of JSON are not copied per run) and
// sets its times to now: lateness is judged by Last-Modified.
func linkFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err != nil {
		return err
	}
	now := time.Now()
	return os.Chtimes(dst, now, now)
}

func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		return linkFile(path, filepath.Join(dst, rel))
	})
}

func largestFile(dir string) (string, error) {
	var best string
	var size int64 = -1
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil && fi.Size() > size {
			best, size = path, fi.Size()
		}
		return err
	})
	if best == "" && err == nil {
		err = fmt.Errorf("no files in %s", dir)
	}
	return best, err
}

// dynamicColumns hold JSON text in Parquet; data export writes them as
// objects.
var dynamicColumns = map[string]bool{"DeviceDetail": true, "LocationDetails": true, "Status": true,
	"AuthenticationDetails": true, "AuthenticationProcessingDetails": true, "ConditionalAccessPolicies": true,
	"MfaDetail": true, "NetworkLocationDetails": true, "TokenProtectionStatusDetails": true}

// ensureJSON converts the Parquet blob src to JSON Lines at dst in form
// ("data export": the table's columns; "diagnostic archive": resource-log
// records), unless dst exists.
func ensureJSON(src, dst, form string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	logf("blobsweep: writing %s (%s)", dst, form)
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, fi.Size())
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	bw := bufio.NewWriterSize(out, 1<<20)
	leaves := pf.Schema().Columns()
	names := make([]string, len(leaves))
	for k, path := range leaves {
		names[k] = path[len(path)-1]
	}
	fields := pf.Schema().Fields()
	isTime := map[string]bool{}
	for _, fl := range fields {
		if lt := fl.Type().LogicalType(); lt != nil {
			if _, ok := lt.Value.(*format.TimestampType); ok {
				isTime[fl.Name()] = true
			}
		}
	}
	rows := make([]parquet.Row, 1024)
	for _, rg := range pf.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(rows)
			for _, row := range rows[:n] {
				rec := map[string]any{}
				for _, v := range row {
					if v.IsNull() {
						continue
					}
					name := names[v.Column()]
					switch v.Kind() {
					case parquet.ByteArray:
						s := string(v.ByteArray())
						if dynamicColumns[name] && json.Valid([]byte(s)) {
							rec[name] = json.RawMessage(s)
						} else {
							rec[name] = s
						}
					case parquet.Int64:
						if isTime[name] {
							rec[name] = time.UnixMicro(v.Int64()).UTC().Format("2006-01-02T15:04:05.0000000Z")
						} else {
							rec[name] = v.Int64()
						}
					case parquet.Int32:
						rec[name] = v.Int32()
					case parquet.Boolean:
						rec[name] = v.Boolean()
					case parquet.Double:
						rec[name] = v.Double()
					default:
						rec[name] = v.String()
					}
				}
				var line any = rec
				if form == "diagnostic archive" {
					line = resourceLog(rec)
				}
				b, err := json.Marshal(line)
				if err != nil {
					return err
				}
				bw.Write(b)
				bw.WriteByte('\n')
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
		rr.Close()
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// resourceLog is a data-export record as the Entra diagnostic setting
// archives it (internal/signin/diagnostic.go has the mapping the reader
// applies; internal/signin's tests convert the same way).
func resourceLog(la map[string]any) map[string]any {
	tid, _ := la["TenantId"].(string)
	rt := fmt.Sprint(la["ResultType"])
	rec := map[string]any{
		"time": la["TimeGenerated"], "resourceId": "/tenants/" + tid + "/providers/Microsoft.aadiam",
		"operationName": "Sign-in activity", "operationVersion": "1.0", "category": "NonInteractiveUserSignInLogs",
		"tenantId": tid, "resultType": rt, "resultSignature": "None", "durationMs": 0,
		"callerIpAddress": la["IPAddress"], "correlationId": la["CorrelationId"], "identity": la["UserDisplayName"],
		"Level": 4, "location": la["Location"],
	}
	props := map[string]any{"createdDateTime": la["TimeGenerated"]}
	rename := map[string]string{"Id": "id", "UserDisplayName": "userDisplayName", "UserPrincipalName": "userPrincipalName",
		"UserId": "userId", "AppId": "appId", "AppDisplayName": "appDisplayName", "IPAddress": "ipAddress",
		"ClientAppUsed": "clientAppUsed", "UserAgent": "userAgent", "DeviceDetail": "deviceDetail",
		"LocationDetails": "location", "CorrelationId": "correlationId", "ConditionalAccessStatus": "conditionalAccessStatus",
		"IsInteractive": "isInteractive", "AuthenticationRequirement": "authenticationRequirement",
		"UniqueTokenIdentifier": "uniqueTokenIdentifier", "Status": "status"}
	keys := make([]string, 0, len(la))
	for k := range la {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if to, ok := rename[k]; ok {
			props[to] = la[k]
		}
	}
	rec["properties"] = props
	return rec
}
