package aggregate_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenpivot/tokenpivot/internal/aggregate"
	"github.com/tokenpivot/tokenpivot/internal/opstate/opstatetest"
)

// duckCases are summarize queries written by hand in DuckDB SQL from their
// KQL, each with the spec the compiler would produce from that KQL: the
// second independent evaluation, beside the brute-force reference. Rows
// arrive as JSON Lines with T and LM (the blob's Last-Modified) in unix ns.
var duckCases = []struct {
	name string
	kql  string
	spec aggregate.Spec
	sql  string // %[1]s: the rows file
}{
	{
		name: "bin 1h, every aggregation",
		kql: `summarize count(), countif(ResultType != "0"), dcount(IPAddress), make_set(Location, 3), make_set(AppDisplayName),
  min(TimeGenerated), max(TimeGenerated), arg_max(TimeGenerated, *), arg_min(TimeGenerated, *)
  by UserPrincipalName, bin(TimeGenerated, 1h) | where count_ >= 3`,
		spec: aggregate.Spec{Rule: "duck-bin-1h", Keys: 1, Bin: time.Hour, Aggs: allAggs, Having: atLeast(0, 3), Lateness: 2 * time.Hour},
		sql: `WITH src AS (
  SELECT * FROM read_json('%[1]s', format = 'newline_delimited', columns = {Id: 'VARCHAR', T: 'BIGINT', LM: 'BIGINT',
    UPN: 'VARCHAR', IP: 'VARCHAR', Location: 'VARCHAR', App: 'VARCHAR', ResultType: 'VARCHAR'})
), ontime AS (SELECT * FROM src WHERE T >= LM - 7200000000000),            -- late rows dropped
rows AS (SELECT * FROM ontime QUALIFY row_number() OVER (PARTITION BY Id ORDER BY LM) = 1), -- each Id once
binned AS (SELECT *, T - T %% 3600000000000 AS Bin FROM rows),
loc AS (SELECT UPN, Bin, Location AS V, T, Id FROM binned WHERE Location IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY UPN, Bin, Location ORDER BY T, Id) = 1),
app AS (SELECT UPN, Bin, App AS V, T, Id FROM binned
        QUALIFY row_number() OVER (PARTITION BY UPN, Bin, App ORDER BY T, Id) = 1),
locs AS (SELECT UPN, Bin, list(V ORDER BY T, Id) AS L FROM loc GROUP BY ALL),
apps AS (SELECT UPN, Bin, list(V ORDER BY T, Id) AS L FROM app GROUP BY ALL),
agg AS (SELECT UPN, Bin, count(*) AS n, count(*) FILTER (WHERE ResultType <> '0') AS fails,
          count(DISTINCT IP) AS ips, min(T) AS t0, max(T) AS t1,
          first(Id ORDER BY T DESC, Id) AS last_id, first(Id ORDER BY T, Id) AS first_id
        FROM binned GROUP BY ALL)
SELECT concat_ws('|', agg.UPN, agg.Bin, n, fails, ips, coalesce(array_to_string(locs.L[1:3], ','), ''),
         array_to_string(apps.L, ','), t0, t1, last_id, first_id) AS line
FROM agg LEFT JOIN locs USING (UPN, Bin) JOIN apps USING (UPN, Bin)
WHERE n >= 3`,
	},
	{
		name: "schedule 1h/1h, whole window",
		kql:  `summarize dcount(Location), ... by UserPrincipalName | where dcount_Location >= 2  (queryFrequency 1h, queryPeriod 1h)`,
		spec: aggregate.Spec{Rule: "duck-sched", Keys: 1, Aggs: allAggs, Having: atLeast(2, 2), Lateness: 2 * time.Hour,
			Schedule: &aggregate.Schedule{Anchor: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Frequency: time.Hour, Period: time.Hour}},
		sql: `WITH src AS (
  SELECT * FROM read_json('%[1]s', format = 'newline_delimited', columns = {Id: 'VARCHAR', T: 'BIGINT', LM: 'BIGINT',
    UPN: 'VARCHAR', IP: 'VARCHAR', Location: 'VARCHAR', App: 'VARCHAR', ResultType: 'VARCHAR'})
), ontime AS (SELECT * FROM src WHERE T >= LM - 7200000000000),
rows AS (SELECT * FROM ontime QUALIFY row_number() OVER (PARTITION BY Id ORDER BY LM) = 1),
-- the run at T (on the hour) sees T-1h < TimeGenerated <= T
runs AS (SELECT *, T + (3600000000000 - T %% 3600000000000) %% 3600000000000 AS Run FROM rows),
agg AS (SELECT UPN, Run, count(*) AS n, count(DISTINCT IP) AS ips, count(DISTINCT Location) AS locs, min(T) AS t0, max(T) AS t1
        FROM runs GROUP BY ALL)
SELECT concat_ws('|', UPN, Run, n, ips, locs, t0, t1) AS line FROM agg WHERE ips >= 2`,
	},
}

// TestMatchesDuckDB: the operator, fed blob by blob in a random order with
// redeliveries, against DuckDB's evaluation of the hand-written SQL.
func TestMatchesDuckDB(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: the DuckDB evaluation needs it")
	}
	duck, err := filepath.Abs(filepath.Join("..", "..", "tools", "bench", "duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(duck, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Fatalf("DuckDB is not installed: run npm ci in %s (scripts/test does)", duck)
	}
	blobs := opstatetest.Generate(opstatetest.Options{Seed: 21, Hours: 6, Users: 15, RowsPerHour: 200})
	dir := t.TempDir()
	rowsFile := filepath.Join(dir, "rows.jsonl")
	var b strings.Builder
	for _, bl := range blobs {
		for _, s := range bl.Rows {
			m := map[string]any{"Id": s.Id, "T": s.Time.UnixNano(), "LM": bl.Source.LastModified.UnixNano(),
				"UPN": s.UPN, "IP": s.IP, "Location": s.Location, "App": s.App, "ResultType": s.ResultType}
			if s.LocationNull {
				m["Location"] = nil
			}
			line, _ := json.Marshal(m)
			b.Write(append(line, '\n'))
		}
	}
	if err := os.WriteFile(rowsFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, c := range duckCases {
		t.Run(c.name, func(t *testing.T) {
			want := runDuckDB(t, duck, fmt.Sprintf(c.sql, rowsFile))
			if len(want) == 0 {
				t.Fatal("DuckDB found no rows: the data does not exercise the query")
			}
			sink := newRecorder()
			queue := opstatetest.Queue(randFor(uint64(i)), len(blobs), len(blobs)/2)
			run(t, newOp(t, newLocal(t), c.spec), blobs, queue, 2, sink)
			var got []string
			for _, r := range sink.results() {
				v := r.Values
				if c.spec.Schedule != nil {
					got = append(got, strings.Join([]string{r.Key[0], fmt.Sprint(r.Run.UnixNano()), fmt.Sprint(v[0].N), fmt.Sprint(v[2].N),
						fmt.Sprint(len(v[3].Set)), fmt.Sprint(v[5].Time.UnixNano()), fmt.Sprint(v[6].Time.UnixNano())}, "|"))
					continue
				}
				got = append(got, strings.Join([]string{r.Key[0], fmt.Sprint(r.Bin.UnixNano()), fmt.Sprint(v[0].N), fmt.Sprint(v[1].N),
					fmt.Sprint(v[2].N), strings.Join(v[3].Set, ","), strings.Join(v[4].Set, ","),
					fmt.Sprint(v[5].Time.UnixNano()), fmt.Sprint(v[6].Time.UnixNano()), v[7].RecordId, v[8].RecordId}, "|"))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%d results, DuckDB %d", len(got), len(want))
				for k := range min(len(got), len(want)) {
					if got[k] != want[k] {
						t.Fatalf("first difference:\n got %s\nwant %s", got[k], want[k])
					}
				}
			}
			t.Logf("%d results agree", len(got))
		})
	}
}

// runDuckDB runs one query through tools/bench/duckdb/sql.mjs and returns
// its line column, sorted.
func runDuckDB(t *testing.T, duck, sql string) []string {
	t.Helper()
	dir := t.TempDir()
	q, out := filepath.Join(dir, "q.sql"), filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(q, []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("node", filepath.Join(duck, "sql.mjs"), q, out).CombinedOutput(); err != nil {
		t.Fatalf("duckdb: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var row struct{ Line string }
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, row.Line)
	}
	slices.Sort(lines)
	return lines
}

func randFor(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 99)) }
