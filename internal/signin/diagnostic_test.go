package signin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var updateDiagnostic = flag.Bool("update-diagnostic", false, "rewrite testdata/diagnostic from testdata/cases")

// ordered is a JSON object that keeps its keys in order, as the resource
// log writer does (time first, properties last).
type ordered []kv

type kv struct {
	k string
	v any
}

func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// dynamicObject reads a Log Analytics dynamic cell, an object or its JSON text.
func dynamicObject(v any) any {
	if s, ok := v.(string); ok {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil {
			return m
		}
	}
	return v
}

// toResourceLog writes a Log Analytics row (SigninLogs or
// AADNonInteractiveUserSignInLogs, as data export writes it) as the
// diagnostic setting archives the same sign-in: the resource-log schema of
// Microsoft's sample (reference-azure-monitor-sign-ins-log-schema), the Graph
// signIn object under properties. A column the row lacks is left out; a null
// stays null.
func toResourceLog(la map[string]any) (ordered, error) {
	var rec, props ordered
	put := func(o *ordered, k, col string) {
		if v, ok := la[col]; ok {
			*o = append(*o, kv{k, v})
		}
	}
	tid, _ := la["TenantId"].(string)
	var rt string
	switch v := la["ResultType"].(type) {
	case string:
		rt = v
	case float64:
		rt = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return nil, fmt.Errorf("ResultType %v", v)
	}
	put(&rec, "time", "TimeGenerated")
	rec = append(rec, kv{"resourceId", "/tenants/" + tid + "/providers/Microsoft.aadiam"})
	put(&rec, "operationName", "OperationName")
	rec = append(rec, kv{"operationVersion", "1.0"})
	put(&rec, "category", "Category")
	rec = append(rec, kv{"tenantId", tid}, kv{"resultType", rt}, kv{"resultSignature", "None"})
	put(&rec, "resultDescription", "ResultDescription")
	rec = append(rec, kv{"durationMs", 0})
	put(&rec, "callerIpAddress", "IPAddress")
	put(&rec, "correlationId", "CorrelationId")
	put(&rec, "identity", "UserDisplayName")
	rec = append(rec, kv{"Level", 4})
	put(&rec, "location", "Location")

	put(&props, "id", "Id")
	put(&props, "createdDateTime", "TimeGenerated")
	put(&props, "userDisplayName", "UserDisplayName")
	put(&props, "userPrincipalName", "UserPrincipalName")
	put(&props, "userId", "UserId")
	put(&props, "appId", "AppId")
	put(&props, "appDisplayName", "AppDisplayName")
	put(&props, "ipAddress", "IPAddress")
	status := map[string]any{}
	if m, ok := dynamicObject(la["Status"]).(map[string]any); ok {
		status = m
	}
	code, err := strconv.Atoi(rt)
	if err != nil {
		return nil, fmt.Errorf("ResultType %q: %v", rt, err)
	}
	status["errorCode"] = code // Graph's signInStatus.errorCode is the number
	props = append(props, kv{"status", status})
	put(&props, "clientAppUsed", "ClientAppUsed")
	put(&props, "userAgent", "UserAgent")
	if v, ok := la["DeviceDetail"]; ok {
		props = append(props, kv{"deviceDetail", dynamicObject(v)})
	}
	if v, ok := la["LocationDetails"]; ok {
		props = append(props, kv{"location", dynamicObject(v)})
	}
	put(&props, "correlationId", "CorrelationId")
	put(&props, "conditionalAccessStatus", "ConditionalAccessStatus")
	put(&props, "isInteractive", "IsInteractive")
	put(&props, "authenticationRequirement", "AuthenticationRequirement")
	put(&props, "uniqueTokenIdentifier", "UniqueTokenIdentifier")
	return append(rec, kv{"properties", props}), nil
}

// diagnosticArchive converts the rule cases (testdata/cases) into the
// blobs a tenant diagnostic setting writes: per table its container, per
// hour of time one PT1H.json under tenantId=/y=/m=/d=/h=/m=00, lines in
// the cases' order. It returns the files by path.
func diagnosticArchive(tb testing.TB) map[string][]byte {
	tb.Helper()
	files := map[string][]byte{}
	for _, c := range []struct {
		file string
		t    Table
	}{{"interactive.jsonl", Interactive}, {"noninteractive.jsonl", NonInteractive}} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", c.file))
		if err != nil {
			tb.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var la map[string]any
			d := json.NewDecoder(strings.NewReader(line))
			if err := d.Decode(&la); err != nil {
				tb.Fatal(err)
			}
			rec, err := toResourceLog(la)
			if err != nil {
				tb.Fatalf("%s: %v", c.file, err)
			}
			tm, err := time.Parse(time.RFC3339Nano, la["TimeGenerated"].(string))
			if err != nil {
				tb.Fatal(err)
			}
			name := path.Join(c.t.DiagnosticContainer(), "tenantId="+la["TenantId"].(string),
				tm.UTC().Format("y=2006/m=01/d=02/h=15"), "m=00", "PT1H.json")
			b, err := json.Marshal(rec)
			if err != nil {
				tb.Fatal(err)
			}
			files[name] = append(append(files[name], b...), '\n')
		}
	}
	return files
}

const diagnosticDir = "../../testdata/diagnostic"

// TestDiagnosticArchiveIsTheCases: testdata/diagnostic is exactly the rule
// cases in the resource-log form (go test -run TestDiagnosticArchive
// -update-diagnostic rewrites it), so the tests that read it elsewhere
// (pipeline, detect) compare the same sign-ins in both forms.
func TestDiagnosticArchiveIsTheCases(t *testing.T) {
	want := diagnosticArchive(t)
	if *updateDiagnostic {
		if err := os.RemoveAll(diagnosticDir); err != nil {
			t.Fatal(err)
		}
		for name, data := range want {
			p := filepath.Join(diagnosticDir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := map[string][]byte{}
	err := filepath.WalkDir(diagnosticDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "README.md" {
			return err
		}
		rel, _ := filepath.Rel(diagnosticDir, p)
		got[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range want {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s differs from the converted cases (run with -update-diagnostic)", name)
		}
		if !IsExportName(name) {
			t.Errorf("%s is not an export name", name)
		}
	}
	for name := range got {
		if want[name] == nil {
			t.Errorf("%s is not a converted case", name)
		}
	}
}

// scanForm scans data as table t and returns its records and Stats.
func scanForm(tb testing.TB, name string, data []byte, t Table, opts Options) ([]Record, Stats, error) {
	tb.Helper()
	var out []Record
	opts.Name, opts.Table = name, t
	st, err := Scan(context.Background(), bytes.NewReader(data), int64(len(data)), opts, func(b []Record) error {
		out = append(out, b...)
		return nil
	})
	return out, st, err
}

// TestResourceLogEqualsLogAnalytics: the rule cases read from either form
// are the same records, field by field, for both tables.
func TestResourceLogEqualsLogAnalytics(t *testing.T) {
	files := diagnosticArchive(t)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names) // hours in order: the cases' order within each
	for _, c := range []struct {
		file string
		t    Table
	}{{"interactive.jsonl", Interactive}, {"noninteractive.jsonl", NonInteractive}} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", c.file))
		if err != nil {
			t.Fatal(err)
		}
		want, st, err := scanForm(t, c.file, data, c.t, Options{})
		if err != nil || st.Form != LogAnalyticsForm {
			t.Fatalf("%s: %v, form %q", c.file, err, st.Form)
		}
		var got []Record
		for _, n := range names {
			if !strings.HasPrefix(n, c.t.DiagnosticContainer()+"/") {
				continue
			}
			recs, st, err := scanForm(t, n, files[n], c.t, Options{})
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if st.Form != ResourceLogForm || st.Format != JSONLines || st.SkippedRows != 0 || st.BlankedCells != 0 {
				t.Errorf("%s: stats %+v", n, st)
			}
			got = append(got, recs...)
		}
		byTime := func(a, b Record) int { return a.TimeGenerated.Compare(b.TimeGenerated) }
		slices.SortStableFunc(want, byTime)
		slices.SortStableFunc(got, byTime)
		diffRecords(t, got, want)
	}
}

// msSample is Microsoft's documented SignInLogs record
// (reference-azure-monitor-sign-ins-log-schema), with its placeholders
// filled in and the fields the rule reads that the sample lacks added.
const msSample = `{"time":"2019-03-12T16:02:15.5522137Z","resourceId":"/tenants/72f988bf-86f1-41af-91ab-2d7cd011db47/providers/Microsoft.aadiam",` +
	`"operationName":"Sign-in activity","operationVersion":"1.0","category":"SignInLogs","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47",` +
	`"resultType":"50140","resultSignature":"None","resultDescription":"This error occurred due to 'Keep me signed in' interrupt when the user was signing-in.",` +
	`"durationMs":0,"callerIpAddress":"131.107.159.86","correlationId":"a75a10bd-c126-486b-9742-c03110d36262","identity":"Timothy Perkins","Level":4,"location":"US",` +
	`"properties":{"id":"0231f922-93fa-4005-bb11-b344eca03c01","createdDateTime":"2019-03-12T16:02:15.5522137+00:00","userDisplayName":"Timothy Perkins",` +
	`"userPrincipalName":"timothy@contoso.com","userId":"d2d6ec6b-3b4a-4e59-a3e5-7a3d2b4f2f10","appId":"c44b4083-3bb0-49c1-b47d-974e53cbdf3c",` +
	`"appDisplayName":"Azure Portal","ipAddress":"131.107.159.86","status":{"errorCode":50140,"failureReason":"This error occurred due to 'Keep me signed in' interrupt when the user was signing-in."},` +
	`"clientAppUsed":"Browser","deviceDetail":{"operatingSystem":"Windows 10","browser":"Chrome 72.0.3626"},` +
	`"location":{"city":"Bellevue","state":"Washington","countryOrRegion":"US","geoCoordinates":{"latitude":45,"longitude":122}},` +
	`"correlationId":"a75a10bd-c126-486b-9742-c03110d36262","conditionalAccessStatus":"notApplied","appliedConditionalAccessPolicies":[],` +
	`"isRisky":false,"authenticationRequirement":"singleFactorAuthentication","uniqueTokenIdentifier":"yJvvCk6LB0OvpwCNpfWLAA"}}`

var msSampleRecord = Record{
	TimeGenerated:             time.Date(2019, 3, 12, 16, 2, 15, 552213700, time.UTC),
	UserPrincipalName:         "timothy@contoso.com",
	IPAddress:                 "131.107.159.86",
	Location:                  "US",
	ResultType:                "50140",
	AuthenticationRequirement: "singleFactorAuthentication",
	ConditionalAccessStatus:   "notApplied",
	AppDisplayName:            "Azure Portal",
	CorrelationId:             "a75a10bd-c126-486b-9742-c03110d36262",
	UniqueTokenIdentifier:     "yJvvCk6LB0OvpwCNpfWLAA",
	Id:                        "0231f922-93fa-4005-bb11-b344eca03c01",
}

// editRecord returns msSample with edit applied to the top level and to
// properties (both maps).
func editRecord(tb testing.TB, edit func(top, props map[string]any)) string {
	tb.Helper()
	var top map[string]any
	d := json.NewDecoder(strings.NewReader(msSample))
	d.UseNumber()
	if err := d.Decode(&top); err != nil {
		tb.Fatal(err)
	}
	edit(top, top["properties"].(map[string]any))
	b, err := json.Marshal(top)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestResourceLogMapping: each rule column comes from its documented
// source, and from the chosen fallback when the source is absent.
func TestResourceLogMapping(t *testing.T) {
	with := func(f func(*Record)) Record {
		r := msSampleRecord
		f(&r)
		return r
	}
	tests := []struct {
		name  string
		table Table
		edit  func(top, props map[string]any)
		want  Record
	}{
		{"Microsoft's sample", Interactive, func(_, _ map[string]any) {}, msSampleRecord},
		{"success: resultType 0", Interactive, func(top, p map[string]any) {
			top["resultType"] = "0"
			p["status"] = map[string]any{"errorCode": 0}
		}, with(func(r *Record) { r.ResultType = "0" })},
		{"no resultType: status.errorCode", Interactive, func(top, p map[string]any) {
			delete(top, "resultType")
			p["status"] = map[string]any{"errorCode": 0}
		}, with(func(r *Record) { r.ResultType = "0" })},
		{"resultType wins over status.errorCode", Interactive, func(top, p map[string]any) {
			top["resultType"] = "0"
		}, with(func(r *Record) { r.ResultType = "0" })},
		{"numeric resultType", Interactive, func(top, _ map[string]any) { top["resultType"] = 0 },
			with(func(r *Record) { r.ResultType = "0" })},
		{"Location is the top-level location", Interactive, func(top, _ map[string]any) { top["location"] = "DE" },
			with(func(r *Record) { r.Location = "DE" })},
		{"no location: countryOrRegion", Interactive, func(top, p map[string]any) {
			delete(top, "location")
			p["location"] = map[string]any{"city": "Paris", "countryOrRegion": "FR"}
		}, with(func(r *Record) { r.Location = "FR" })},
		{"null location, null countryOrRegion: empty", Interactive, func(top, p map[string]any) {
			top["location"] = nil
			p["location"] = map[string]any{"city": "Moscow", "countryOrRegion": nil}
		}, with(func(r *Record) { r.Location = "" })},
		{"IPAddress is properties.ipAddress", Interactive, func(top, p map[string]any) {
			top["callerIpAddress"] = "10.0.0.1"
			p["ipAddress"] = "2001:db8::7"
		}, with(func(r *Record) { r.IPAddress = "2001:db8::7" })},
		{"no properties.ipAddress: callerIpAddress", Interactive, func(top, p map[string]any) {
			top["callerIpAddress"] = "10.0.0.1"
			delete(p, "ipAddress")
		}, with(func(r *Record) { r.IPAddress = "10.0.0.1" })},
		{"null properties.ipAddress stays empty", Interactive, func(top, p map[string]any) {
			p["ipAddress"] = nil
		}, with(func(r *Record) { r.IPAddress = "" })},
		{"no correlationId: properties.correlationId", Interactive, func(top, p map[string]any) {
			delete(top, "correlationId")
			p["correlationId"] = "c-props"
		}, with(func(r *Record) { r.CorrelationId = "c-props" })},
		{"no time: createdDateTime", Interactive, func(top, p map[string]any) {
			delete(top, "time")
			p["createdDateTime"] = "2019-03-12T16:02:15.5+00:00"
		}, with(func(r *Record) { r.TimeGenerated = time.Date(2019, 3, 12, 16, 2, 15, 500000000, time.UTC) })},
		{"conditionalAccessStatus by number", Interactive, func(_, p map[string]any) { p["conditionalAccessStatus"] = 1 },
			with(func(r *Record) { r.ConditionalAccessStatus = "failure" })},
		{"conditionalAccessStatus success", Interactive, func(_, p map[string]any) { p["conditionalAccessStatus"] = "success" },
			with(func(r *Record) { r.ConditionalAccessStatus = "success" })},
		{"values are not re-cased", Interactive, func(_, p map[string]any) {
			p["authenticationRequirement"] = "SingleFactorAuthentication"
			p["userPrincipalName"] = "Timothy@Contoso.com"
		}, with(func(r *Record) {
			r.AuthenticationRequirement = "SingleFactorAuthentication"
			r.UserPrincipalName = "Timothy@Contoso.com"
		})},
		{"optional fields absent", Interactive, func(top, p map[string]any) {
			delete(p, "appDisplayName")
			delete(p, "uniqueTokenIdentifier")
			delete(p, "id")
			delete(top, "correlationId")
			delete(p, "correlationId")
		}, with(func(r *Record) { r.AppDisplayName, r.UniqueTokenIdentifier, r.Id, r.CorrelationId = "", "", "", "" })},
		{"non-interactive", NonInteractive, func(top, p map[string]any) {
			top["category"] = "NonInteractiveUserSignInLogs"
			top["resultType"] = "0"
			p["isInteractive"] = false
		}, with(func(r *Record) {
			r.ResultType = "0"
			r.AuthenticationRequirement, r.ConditionalAccessStatus = "", "" // not read for this table
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := editRecord(t, tc.edit)
			got, st, err := scanForm(t, "PT1H.json", []byte(line+"\n"), tc.table, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Form != ResourceLogForm || st.Rows != 1 {
				t.Fatalf("stats %+v", st)
			}
			diffRecords(t, got, []Record{tc.want})
		})
	}
}

// TestResourceLogErrors: a file holds one form and one category; what does
// not fit is a FormatError naming file, row and category; bad cells follow
// the lenient rules, named by their resource-log field.
func TestResourceLogErrors(t *testing.T) {
	rl := msSample
	ni := editRecord(t, func(top, _ map[string]any) { top["category"] = "NonInteractiveUserSignInLogs" })
	la := exportLine(t, sampleRecords[0], nil)
	badUPN := editRecord(t, func(_, p map[string]any) { p["userPrincipalName"] = 7 })
	noUPN := editRecord(t, func(_, p map[string]any) { delete(p, "userPrincipalName") })
	badApp := editRecord(t, func(_, p map[string]any) { p["appDisplayName"] = []any{"x"} })
	noLoc := editRecord(t, func(top, p map[string]any) { delete(top, "location"); delete(p, "location") })
	propsString := editRecord(t, func(top, _ map[string]any) { top["properties"] = "{}" })
	tests := []struct {
		name    string
		lines   []string
		table   Table
		row     int64
		col     string
		msg     string // in the error (or FirstSkipped / FirstBlanked)
		skipped bool   // the row is skipped, not the file
		blanked bool
	}{
		{"Log Analytics then resource log", []string{la, rl}, Interactive, 2, "", "resource-log form (category \"SignInLogs\"", false, false},
		{"resource log then Log Analytics", []string{rl, la}, Interactive, 2, "", "not in the resource-log form", false, false},
		{"non-interactive record in SigninLogs", []string{rl, ni}, Interactive, 2, "category", `category "NonInteractiveUserSignInLogs" is not SigninLogs's ("SignInLogs")`, false, false},
		{"interactive file read as non-interactive", []string{rl}, NonInteractive, 1, "category", `category "SignInLogs" is not AADNonInteractiveUserSignInLogs's`, false, false},
		{"properties not an object later", []string{rl, propsString}, Interactive, 2, "", "not in the resource-log form", false, false},
		{"unreadable userPrincipalName skips the row", []string{rl, badUPN}, Interactive, 2, "properties.userPrincipalName", "want a string", true, false},
		{"unreadable appDisplayName blanks the value", []string{rl, badApp}, Interactive, 1, "properties.appDisplayName", "want a string", false, true},
		{"no record has userPrincipalName", []string{noUPN}, Interactive, 0, "properties.userPrincipalName", "required column is missing", false, false},
		{"no record has a location", []string{noLoc}, Interactive, 0, "location", "required column is missing", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(strings.Join(tc.lines, "\n") + "\n")
			_, st, err := scanForm(t, "insights-logs-signinlogs/x/PT1H.json", data, tc.table, Options{})
			var fe *FormatError
			switch {
			case tc.skipped:
				fe = st.FirstSkipped
				if err != nil || st.SkippedRows != 1 {
					t.Fatalf("err %v, stats %+v", err, st)
				}
			case tc.blanked:
				fe = st.FirstBlanked
				if err != nil || st.BlankedCells != 1 || st.Rows != 2 {
					t.Fatalf("err %v, stats %+v", err, st)
				}
				tc.row = 2
			default:
				if !errors.As(err, &fe) {
					t.Fatalf("err %v, want a FormatError", err)
				}
			}
			if fe == nil || fe.File != "insights-logs-signinlogs/x/PT1H.json" || fe.Row != tc.row || fe.Column != tc.col || !strings.Contains(fe.Error(), tc.msg) {
				t.Fatalf("error %+v (%v), want row %d column %q: %s", fe, fe, tc.row, tc.col, tc.msg)
			}
		})
	}
}

// TestResourceLogGrowingBlob: a PT1H.json append blob read as it grows
// (Final false, each read resuming at Consumed through a SectionReader with
// PositionBase) gives the records of one read of the whole blob, with the
// same position ids; the partial last line waits for the next read.
func TestResourceLogGrowingBlob(t *testing.T) {
	var lines []string
	for i := range 5 {
		lines = append(lines, editRecord(t, func(top, p map[string]any) {
			top["resultType"] = "0"
			p["uniqueTokenIdentifier"] = fmt.Sprintf("tok%d", i)
			if i%2 == 1 {
				delete(p, "id") // gets a position id
			}
		}))
	}
	blob := []byte(strings.Join(lines, "\n") + "\n")
	opts := Options{PositionIds: "@blob#"}
	want, _, err := scanForm(t, "PT1H.json", blob, Interactive, opts)
	if err != nil || len(want) != 5 {
		t.Fatalf("%d records, %v", len(want), err)
	}
	var got []Record
	var from int64
	for _, size := range []int{len(lines[0]) / 2, len(lines[0]) + 1 + len(lines[1]) + 10, len(blob) - 3, len(blob)} {
		r := io.NewSectionReader(bytes.NewReader(blob[:size]), from, int64(size)-from)
		o := opts
		o.PositionBase = from
		o.Name, o.Table = "PT1H.json", Interactive
		st, err := Scan(context.Background(), r, int64(size)-from, o, func(b []Record) error {
			got = append(got, b...)
			return nil
		})
		if err != nil {
			t.Fatalf("read to %d: %v", size, err)
		}
		if st.Read > 0 && st.Form != ResourceLogForm {
			t.Errorf("read to %d: form %q", size, st.Form)
		}
		from += st.Consumed
	}
	if from != int64(len(blob)) {
		t.Fatalf("consumed %d of %d", from, len(blob))
	}
	diffRecords(t, got, want)
	if !IsPositionId(got[1].Id) || got[0].Id != msSampleRecord.Id {
		t.Errorf("ids %q %q", got[0].Id, got[1].Id)
	}
}

// BenchmarkScanForms reads the same sign-ins in both forms (Microsoft's
// sample, 4096 lines): the resource-log form costs its larger records.
func BenchmarkScanForms(b *testing.B) {
	rl := msSample
	la := exportLine(b, msSampleRecord, nil)
	for _, f := range []struct{ name, line string }{{"log-analytics", la}, {"resource-log", rl}} {
		data := []byte(strings.Repeat(f.line+"\n", 4096))
		b.Run(f.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for range b.N {
				if _, _, err := scanForm(b, "PT1H.json", data, Interactive, Options{Keep: func(*Record) bool { return false }}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
