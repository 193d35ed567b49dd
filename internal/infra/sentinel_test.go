package infra

// Microsoft Sentinel: the custom table and the data collection rule's stream
// are the contract with the Go sink (internal/sentinel.Columns), the NRT
// analytics rule is the same in both templates and follows the bundled rule,
// and all of it hangs on the one input (the SOC's workspace id).

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/sentinel"
)

// sentinelQuery is the NRT rule's query, whitespace collapsed: one row per
// alert, its highest revision (the rows of one Logs Ingestion call share one
// TimeGenerated, so arg_max(TimeGenerated, *) would pick one at random), and
// only the columns the rule maps, AlertName and Description cut to what
// Sentinel keeps (TestSentinelQueryProjectsMappedColumns).
const sentinelQuery = "TokenPivotAlerts_CL | summarize arg_max(Revision, *) by AlertId | project AlertId, IncidentId, AlertName = substring(AlertName, 0, 256), Description = substring(Description, 0, 5000), Severity, UserPrincipalName, NIIPAddress, InteractiveIP, InteractiveCountry, NICountry, AppDisplayName, RuleVersion"

// tableType is a Logs Ingestion column type as the tables API spells it.
func tableType(t string) string {
	if t == "datetime" {
		return "dateTime"
	}
	return t
}

// path follows object keys and [i] indexes through a value.
func (v *value) path(keys ...any) *value {
	for _, k := range keys {
		if v == nil {
			return nil
		}
		switch k := k.(type) {
		case string:
			v = v.get(k)
		case int:
			if v.kind != "array" || k >= len(v.items) {
				return nil
			}
			v = v.items[k]
		}
	}
	return v
}

// str is a known string value, or a marker that says what it is instead.
func (v *value) text() string {
	switch {
	case v == nil:
		return "<missing>"
	case v.kind != "string" || !v.known:
		return "<not a literal string>"
	}
	return v.str
}

func (v *value) texts() []string {
	if v == nil || v.kind != "array" {
		return nil
	}
	var out []string
	for _, it := range v.items {
		out = append(out, it.text())
	}
	return out
}

// columnsOf reads [{name, type}, ...].
func columnsOf(v *value) ([]sentinel.Column, error) {
	if v == nil || v.kind != "array" || !v.known {
		return nil, fmt.Errorf("not a literal list of columns")
	}
	var out []sentinel.Column
	for i, it := range v.items {
		c := sentinel.Column{Name: it.get("name").text(), Type: it.get("type").text()}
		if len(it.fields) != 2 {
			return nil, fmt.Errorf("column %d (%s) has %d properties, want name and type", i, c.Name, len(it.fields))
		}
		out = append(out, c)
	}
	return out, nil
}

// columnProblems: what differs from internal/sentinel.Columns (same names
// in the same order, same types; the tables API's spelling for a table).
func columnProblems(where string, got []sentinel.Column, table bool) []string {
	var want []sentinel.Column
	for _, c := range sentinel.Columns {
		if table {
			c.Type = tableType(c.Type)
		}
		want = append(want, c)
	}
	var out []string
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			out = append(out, fmt.Sprintf("%s: lacks column %v (internal/sentinel.Columns[%d])", where, want[i], i))
		case i >= len(want):
			out = append(out, fmt.Sprintf("%s: has column %v, which internal/sentinel.Columns does not", where, got[i]))
		case got[i] != want[i]:
			out = append(out, fmt.Sprintf("%s: column %d is %v, internal/sentinel.Columns says %v", where, i, got[i], want[i]))
		}
	}
	return out
}

func checkColumns(t *testing.T, where string, got []sentinel.Column, table bool) {
	t.Helper()
	for _, p := range columnProblems(where, got, table) {
		t.Error(p)
	}
}

type sentinelInfra struct {
	bicepMain, bicepModule, bicepIngestion *bicepFile
	bicepDCR, bicepTable                   *value
	bicepRule                              *value
	cfg                                    *tfConfig
	tfDCR                                  *value
	tfTable, tfRule                        tfBlock
}

func loadSentinelInfra(t *testing.T) *sentinelInfra {
	t.Helper()
	s := &sentinelInfra{}
	files := map[string]*bicepFile{}
	s.bicepMain = loadBicep(t, filepath.Join(bicepDir, "main.bicep"), files)
	s.bicepModule = files[filepath.Join(bicepDir, "modules", "sentinel.bicep")]
	if s.bicepModule == nil {
		t.Fatal("main.bicep does not use modules/sentinel.bicep")
	}
	parse := func(f *bicepFile, sym string) *value {
		r, ok := f.resources[sym]
		if !ok {
			t.Fatalf("%s: no resource %s", f.path, sym)
		}
		v, err := (&bicepParser{f: f}).parse(r.body, r.line)
		if err != nil {
			t.Fatalf("%s: %s: %v", f.path, sym, err)
		}
		return v
	}
	s.bicepIngestion = files[filepath.Join(bicepDir, "modules", "alerts-ingestion.bicep")]
	if s.bicepIngestion == nil {
		t.Fatal("main.bicep does not use modules/alerts-ingestion.bicep")
	}
	s.bicepDCR = parse(s.bicepIngestion, "alertsIngestionRule")
	s.bicepTable = parse(s.bicepModule, "alertsTable")
	s.bicepRule = parse(s.bicepModule, "alertRule")

	s.cfg = loadTerraform(t, terraformDir)
	get := func(key string) tfBlock {
		r, ok := s.cfg.resources[key]
		if !ok {
			t.Fatalf("terraform: no %s", key)
		}
		return r
	}
	dcr := get("azapi_resource.alerts_ingestion_rule")
	body, ok := dcr.body.Attributes["body"]
	if !ok {
		t.Fatal("terraform: alerts_ingestion_rule has no body")
	}
	s.tfDCR = tfValue(s.cfg, body.Expr)
	s.tfTable = get("azurerm_log_analytics_workspace_table_custom_log.alerts_table")
	s.tfRule = get("azurerm_sentinel_alert_rule_nrt.alert_rule")
	return s
}

// tfLiteral is a literal attribute of a block (strings, bools, lists, maps).
func tfLiteral(b *hclsyntax.Body, name string) cty.Value {
	a, ok := b.Attributes[name]
	if !ok {
		return cty.NilVal
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal
	}
	return v
}

func tfText(b *hclsyntax.Body, name string) string {
	v := tfLiteral(b, name)
	if v == cty.NilVal || v.IsNull() || v.Type() != cty.String {
		return "<not a literal string>"
	}
	return v.AsString()
}

func tfTexts(b *hclsyntax.Body, name string) []string {
	v := tfLiteral(b, name)
	if v == cty.NilVal || v.IsNull() || !v.CanIterateElements() {
		return nil
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.Type() != cty.String {
			return nil
		}
		out = append(out, e.AsString())
	}
	return out
}

func tfBlocks(b *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, blk := range b.Blocks {
		if blk.Type == typ {
			out = append(out, blk)
		}
	}
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// TestSentinelColumnsMatchCode reads the data collection rule's stream
// declaration and the table's columns from both templates and checks that
// they are internal/sentinel.Columns exactly (names in order, types), and
// that the stream, the data flow and the table are wired to each other.
func TestSentinelColumnsMatchCode(t *testing.T) {
	s := loadSentinelInfra(t)
	for _, dcr := range []struct {
		lang string
		v    *value
	}{{"Bicep alertsIngestionRule", s.bicepDCR}, {"Terraform alerts_ingestion_rule", s.tfDCR}} {
		decl := dcr.v.path("properties", "streamDeclarations")
		if decl == nil || len(decl.fields) != 1 || decl.fields[0].key != sentinel.DefaultStream {
			t.Errorf("%s: streamDeclarations must declare exactly %s", dcr.lang, sentinel.DefaultStream)
		}
		cols, err := columnsOf(decl.path(sentinel.DefaultStream, "columns"))
		if err != nil {
			t.Errorf("%s: stream %s: %v", dcr.lang, sentinel.DefaultStream, err)
		} else {
			checkColumns(t, dcr.lang+" stream "+sentinel.DefaultStream, cols, false)
		}
		if got := dcr.v.get("kind").text(); got != "Direct" {
			t.Errorf("%s: kind %q, want Direct (a logsIngestion endpoint of its own)", dcr.lang, got)
		}
		flows := dcr.v.path("properties", "dataFlows")
		if flows == nil || len(flows.items) != 1 {
			t.Fatalf("%s: want exactly one data flow", dcr.lang)
		}
		flow := flows.items[0]
		if got := flow.get("streams").texts(); !slices.Equal(got, []string{sentinel.DefaultStream}) {
			t.Errorf("%s: the data flow reads %v, want [%s]", dcr.lang, got, sentinel.DefaultStream)
		}
		if got, want := flow.get("outputStream").text(), "Custom-"+sentinel.Table; got != want {
			t.Errorf("%s: the data flow writes %q, want %q", dcr.lang, got, want)
		}
		if got := flow.get("transformKql").text(); got != "source" {
			t.Errorf("%s: transformKql %q, want source (the records unchanged)", dcr.lang, got)
		}
		dests := dcr.v.path("properties", "destinations", "logAnalytics")
		if dests == nil || len(dests.items) != 1 {
			t.Errorf("%s: want exactly one logAnalytics destination", dcr.lang)
		} else if name := dests.items[0].get("name").text(); !slices.Equal(flow.get("destinations").texts(), []string{name}) {
			t.Errorf("%s: the data flow goes to %v, the destination is %q", dcr.lang, flow.get("destinations").texts(), name)
		}
	}

	// The table, Bicep.
	if got := s.bicepTable.get("name").text(); got != sentinel.Table {
		t.Errorf("Bicep alertsTable: name %q, want %s", got, sentinel.Table)
	}
	if got := s.bicepTable.path("properties", "schema", "name").text(); got != sentinel.Table {
		t.Errorf("Bicep alertsTable: schema.name %q, want %s", got, sentinel.Table)
	}
	if cols, err := columnsOf(s.bicepTable.path("properties", "schema", "columns")); err != nil {
		t.Errorf("Bicep alertsTable: %v", err)
	} else {
		checkColumns(t, "Bicep alertsTable", cols, true)
	}

	// The table, Terraform: one column block each.
	if got := tfText(s.tfTable.body, "name"); got != sentinel.Table {
		t.Errorf("Terraform alerts_table: name %q, want %s", got, sentinel.Table)
	}
	var cols []sentinel.Column
	for _, b := range tfBlocks(s.tfTable.body, "column") {
		if len(b.Body.Attributes) != 2 {
			t.Errorf("Terraform alerts_table: a column block at line %d has %d arguments, want name and type", b.TypeRange.Start.Line, len(b.Body.Attributes))
		}
		cols = append(cols, sentinel.Column{Name: tfText(b.Body, "name"), Type: tfText(b.Body, "type")})
	}
	if _, dynamic := s.tfTable.body.Attributes["dynamic"]; dynamic || len(tfBlocks(s.tfTable.body, "dynamic")) > 0 {
		t.Error("Terraform alerts_table: dynamic blocks are not read by this test; write the columns out")
	}
	checkColumns(t, "Terraform alerts_table", cols, true)
}

// TestSentinelColumnsCheckBites: the comparison reports a dropped, a renamed
// and a retyped column, and the tables API's dateTime only in a table.
func TestSentinelColumnsCheckBites(t *testing.T) {
	run := func(cols []sentinel.Column, table bool) bool { return len(columnProblems("x", cols, table)) > 0 }
	base := slices.Clone(sentinel.Columns)
	if run(base, false) {
		t.Fatal("the contract itself is reported")
	}
	if !run(base[1:], false) {
		t.Error("a dropped column is not reported")
	}
	renamed := slices.Clone(base)
	renamed[1].Name = "AlertID"
	if !run(renamed, false) {
		t.Error("a renamed column is not reported")
	}
	retyped := slices.Clone(base)
	retyped[2].Type = "long"
	if !run(retyped, false) {
		t.Error("a retyped column is not reported")
	}
	if !run(base, true) {
		t.Error("datetime in a table is not reported (the tables API says dateTime)")
	}
}

func collapse(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, `\n`, "\n")), " ")
}

// TestSentinelRuleInStep: the NRT analytics rule is the same in Bicep and
// Terraform, follows the bundled rule (tactics, techniques, entities,
// grouping by account) and names only columns of the table.
func TestSentinelRuleInStep(t *testing.T) {
	s := loadSentinelInfra(t)
	bundled := rule.Default()
	isColumn := func(name string) bool {
		return slices.ContainsFunc(sentinel.Columns, func(c sentinel.Column) bool { return c.Name == name })
	}
	b, tf := s.bicepRule, s.tfRule.body
	p := func(keys ...any) *value { return b.path(append([]any{"properties"}, keys...)...) }

	if got := b.get("kind").text(); got != "NRT" {
		t.Errorf("Bicep alertRule: kind %q, want NRT", got)
	}
	if r := s.bicepModule.resources["alertRule"]; !strings.Contains(r.body, "scope: sentinelWorkspace") {
		t.Error("Bicep alertRule is not on the workspace (scope: sentinelWorkspace)")
	}
	if got, want := b.get("name").text(), tfText(tf, "name"); got != want {
		t.Errorf("rule name: Bicep %q, Terraform %q: they would manage two rules", got, want)
	}
	if b.get("name").text() == bundled.ID {
		t.Error("the NRT rule reuses the bundled Scheduled rule's id, which the SOC may run in the same workspace")
	}
	for _, pair := range [][3]string{
		{"displayName", "display_name"}, {"description", "description"}, {"severity", "severity"},
		{"suppressionDuration", "suppression_duration"},
	} {
		if got, want := p(pair[0]).text(), tfText(tf, pair[1]); got != want {
			t.Errorf("rule %s: Bicep %q, Terraform %s %q", pair[0], got, pair[1], want)
		}
	}
	if got := collapse(p("query").text()); got != sentinelQuery {
		t.Errorf("Bicep alertRule query %q, want %q", got, sentinelQuery)
	}
	if got := collapse(tfText(tf, "query")); got != sentinelQuery {
		t.Errorf("Terraform alert_rule query %q, want %q", got, sentinelQuery)
	}
	if !strings.HasPrefix(sentinelQuery, sentinel.Table+" ") {
		t.Errorf("the query does not read %s", sentinel.Table)
	}

	// Tactics and techniques are the bundled rule's.
	for _, x := range []struct {
		name       string
		bicep, tf  []string
		fromBundle []string
	}{
		{"tactics", p("tactics").texts(), tfTexts(tf, "tactics"), bundled.Tactics},
		{"techniques", p("techniques").texts(), tfTexts(tf, "techniques"), bundled.Techniques},
	} {
		want := sortedCopy(x.fromBundle)
		if got := sortedCopy(x.bicep); !slices.Equal(got, want) {
			t.Errorf("Bicep alertRule %s %v, the bundled rule's are %v", x.name, got, want)
		}
		if got := sortedCopy(x.tf); !slices.Equal(got, want) {
			t.Errorf("Terraform alert_rule %s %v, the bundled rule's are %v", x.name, got, want)
		}
	}

	// Entities: the bundled rule's mappings, columns of the table.
	var want []string
	for _, em := range bundled.EntityMappings {
		for _, fm := range em.FieldMappings {
			want = append(want, em.EntityType+"."+fm.Identifier+"="+fm.ColumnName)
			if !isColumn(fm.ColumnName) {
				t.Errorf("the bundled rule maps %s from %s, which is not a column of %s", em.EntityType, fm.ColumnName, sentinel.Table)
			}
		}
	}
	var gotBicep, gotTF []string
	if ems := p("entityMappings"); ems != nil {
		for _, em := range ems.items {
			for _, fm := range em.get("fieldMappings").items {
				gotBicep = append(gotBicep, em.get("entityType").text()+"."+fm.get("identifier").text()+"="+fm.get("columnName").text())
			}
		}
	}
	for _, em := range tfBlocks(tf, "entity_mapping") {
		for _, fm := range tfBlocks(em.Body, "field_mapping") {
			gotTF = append(gotTF, tfText(em.Body, "entity_type")+"."+tfText(fm.Body, "identifier")+"="+tfText(fm.Body, "column_name"))
		}
	}
	if !slices.Equal(gotBicep, want) {
		t.Errorf("Bicep alertRule entity mappings %v, want %v", gotBicep, want)
	}
	if !slices.Equal(gotTF, want) {
		t.Errorf("Terraform alert_rule entity mappings %v, want %v", gotTF, want)
	}

	// The alert's own name, description and severity, from the row.
	ado := tfBlocks(tf, "alert_details_override")
	if len(ado) != 1 {
		t.Fatal("Terraform alert_rule: want one alert_details_override")
	}
	for _, x := range [][3]string{
		{"alertDisplayNameFormat", "display_name_format", "{{AlertName}}"},
		{"alertDescriptionFormat", "description_format", "{{Description}}"},
		{"alertSeverityColumnName", "severity_column_name", "Severity"},
	} {
		if got := p("alertDetailsOverride", x[0]).text(); got != x[2] {
			t.Errorf("Bicep alertRule alertDetailsOverride.%s %q, want %q", x[0], got, x[2])
		}
		if got := tfText(ado[0].Body, x[1]); got != x[2] {
			t.Errorf("Terraform alert_rule alert_details_override.%s %q, want %q", x[1], got, x[2])
		}
		if col := strings.Trim(x[2], "{}"); !isColumn(col) {
			t.Errorf("alertDetailsOverride.%s names %s, not a column of %s", x[0], col, sentinel.Table)
		}
	}

	// Custom details: the same in both, each a column.
	bicepDetails := map[string]string{}
	if cd := p("customDetails"); cd != nil {
		for _, f := range cd.fields {
			bicepDetails[f.key] = f.value.text()
		}
	}
	tfDetails := map[string]string{}
	if v := tfLiteral(tf, "custom_details"); v != cty.NilVal && v.CanIterateElements() {
		for k, e := range v.AsValueMap() {
			tfDetails[k] = e.AsString()
		}
	}
	if len(bicepDetails) == 0 || fmt.Sprint(bicepDetails) != fmt.Sprint(tfDetails) {
		t.Errorf("custom details: Bicep %v, Terraform %v", bicepDetails, tfDetails)
	}
	for k, col := range bicepDetails {
		if !isColumn(col) {
			t.Errorf("custom detail %s names %s, not a column of %s", k, col, sentinel.Table)
		}
	}

	// One alert per row; incidents grouped by the bundled rule's entities.
	if got := p("eventGroupingSettings", "aggregationKind").text(); got != "AlertPerResult" {
		t.Errorf("Bicep alertRule aggregationKind %q, want AlertPerResult", got)
	}
	if eg := tfBlocks(tf, "event_grouping"); len(eg) != 1 || tfText(eg[0].Body, "aggregation_method") != "AlertPerResult" {
		t.Error("Terraform alert_rule: event_grouping aggregation_method must be AlertPerResult")
	}
	g := p("incidentConfiguration", "groupingConfiguration")
	bg := bundled.IncidentConfiguration.Grouping
	lookback := "PT" + strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(bg.LookbackDuration.String(), "0s"), "0m"))
	if bg.LookbackDuration != 5*time.Hour || lookback != "PT5H" {
		t.Fatalf("the bundled rule's lookback is %v; update this test's ISO 8601 conversion", bg.LookbackDuration)
	}
	ic := p("incidentConfiguration", "createIncident")
	if ic == nil || ic.kind != "bool" || !ic.b {
		t.Error("Bicep alertRule does not create incidents")
	}
	if en := g.get("enabled"); en == nil || en.kind != "bool" || !en.b {
		t.Error("Bicep alertRule does not group alerts into incidents")
	}
	if got := g.get("matchingMethod").text(); got != "Selected" {
		t.Errorf("Bicep alertRule matchingMethod %q, want Selected (AnyAlert ignores groupByEntities)", got)
	}
	if got := g.get("groupByEntities").texts(); !slices.Equal(got, bg.GroupByEntities) {
		t.Errorf("Bicep alertRule groupByEntities %v, the bundled rule's %v", got, bg.GroupByEntities)
	}
	if got := g.get("lookbackDuration").text(); got != lookback {
		t.Errorf("Bicep alertRule lookbackDuration %q, want %q", got, lookback)
	}
	inc := tfBlocks(tf, "incident")
	if len(inc) != 1 || tfLiteral(inc[0].Body, "create_incident_enabled") != cty.True {
		t.Fatal("Terraform alert_rule does not create incidents")
	}
	grp := tfBlocks(inc[0].Body, "grouping")
	if len(grp) != 1 || tfLiteral(grp[0].Body, "enabled") != cty.True {
		t.Fatal("Terraform alert_rule does not group alerts into incidents")
	}
	if got := tfText(grp[0].Body, "entity_matching_method"); got != "Selected" {
		t.Errorf("Terraform alert_rule entity_matching_method %q, want Selected", got)
	}
	if got := tfTexts(grp[0].Body, "by_entities"); !slices.Equal(got, bg.GroupByEntities) {
		t.Errorf("Terraform alert_rule by_entities %v, the bundled rule's %v", got, bg.GroupByEntities)
	}
	if got := tfText(grp[0].Body, "lookback_duration"); got != lookback {
		t.Errorf("Terraform alert_rule lookback_duration %q, want %q", got, lookback)
	}

	// Sentinel validates the query: the table exists first.
	if !strings.Contains(s.bicepModule.resources["alertRule"].body, "dependsOn: [\n    alertsTable\n  ]") {
		t.Error("Bicep alertRule does not depend on alertsTable")
	}
	if !strings.Contains(string(s.tfRule.body.SrcRange.SliceBytes(s.cfg.files[s.tfRule.file])), "depends_on = [azurerm_log_analytics_workspace_table_custom_log.alerts_table]") {
		t.Error("Terraform alert_rule does not depend on alerts_table")
	}
	if tfText(tf, "log_analytics_workspace_id") != "<not a literal string>" || !strings.Contains(string(s.cfg.files[s.tfRule.file]), "log_analytics_workspace_id = var.sentinel_workspace_id") {
		t.Error("Terraform alert_rule is not on var.sentinel_workspace_id")
	}
}

// TestSentinelIsOptional: everything of the integration hangs on the one
// input, and without it the three settings are empty (left out of the site).
func TestSentinelIsOptional(t *testing.T) {
	s := loadSentinelInfra(t)
	main := s.bicepMain
	if got := main.params["sentinelWorkspaceId"]; got != "''" {
		t.Errorf("main.bicep: sentinelWorkspaceId default %s, want '' (off)", got)
	}
	if got := main.vars["sentinelEnabled"]; got != "!empty(sentinelWorkspaceId)" {
		t.Errorf("main.bicep: sentinelEnabled = %q, want !empty(sentinelWorkspaceId)", got)
	}
	if !regexp.MustCompile(`(?m)^resource\s+sentinelWorkspace\s+'[^']+'\s+(existing\s+)?=\s*if \(sentinelEnabled\) \{`).MatchString(main.text) {
		t.Error("main.bicep: sentinelWorkspace is not conditional on sentinelEnabled")
	}
	for _, mod := range []string{"sentinel\\s+'modules/sentinel\\.bicep'", "alertsIngestion\\s+'modules/alerts-ingestion\\.bicep'"} {
		if !regexp.MustCompile(`(?m)^module\s+` + mod + `\s*=\s*if \(sentinelEnabled\) \{`).MatchString(main.text) {
			t.Errorf("main.bicep: module %s is not conditional on sentinelEnabled", mod)
		}
	}
	// The rule and the function's role on it are in the module, which is
	// deployed only with sentinelEnabled.
	for _, sym := range []string{"alertsIngestionRule", "ingestionPublisher"} {
		if _, ok := s.bicepIngestion.resources[sym]; !ok {
			t.Errorf("modules/alerts-ingestion.bicep: no resource %s", sym)
		}
	}
	settings := props(main.vars["appSettings"])
	for name, out := range map[string]string{
		"TOKENPIVOT_LOGS_INGESTION_ENDPOINT": "alertsIngestion.outputs.logsIngestionEndpoint",
		"TOKENPIVOT_LOGS_INGESTION_RULE_ID":  "alertsIngestion.outputs.immutableId",
		"TOKENPIVOT_LOGS_INGESTION_STREAM":   "alertsIngestion.outputs.stream",
	} {
		if got, want := settings[name], "sentinelEnabled ? "+out+" : ''"; got != want {
			t.Errorf("main.bicep: %s: %s, want %s", name, got, want)
		}
	}

	cfg := s.cfg
	vars := cfg.varDefaults(t).AsValueMap()
	if v, ok := cfg.evalStatic(t, cfg.locals["sentinel_enabled"], vars); !ok || v.True() {
		t.Error("terraform: local.sentinel_enabled is not false by default")
	}
	const id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-soc/providers/Microsoft.OperationalInsights/workspaces/law-soc"
	vars["sentinel_workspace_id"] = cty.StringVal(id)
	if v, ok := cfg.evalStatic(t, cfg.locals["sentinel_enabled"], vars); !ok || !v.True() {
		t.Error("terraform: local.sentinel_enabled is not true with a workspace id")
	}
	validation := cfg.variables["sentinel_workspace_id"].Blocks
	if len(validation) != 1 {
		t.Fatal("terraform: sentinel_workspace_id has no validation")
	}
	for value, ok := range map[string]bool{"": true, id: true, strings.ToLower(id): true, "law-soc": false, id + "/tables/x": false} {
		vars["sentinel_workspace_id"] = cty.StringVal(value)
		v, known := cfg.evalStatic(t, validation[0].Body.Attributes["condition"].Expr, vars)
		if !known || v.True() != ok {
			t.Errorf("terraform: sentinel_workspace_id = %q accepted = %v, want %v", value, known && v.True(), ok)
		}
	}
	count := func(b *hclsyntax.Body) string {
		a, ok := b.Attributes["count"]
		if !ok {
			return ""
		}
		return string(a.Expr.Range().SliceBytes(cfg.files[a.SrcRange.Filename]))
	}
	for _, key := range []string{
		"azurerm_log_analytics_workspace_table_custom_log.alerts_table", "azapi_resource.alerts_ingestion_rule",
		"azurerm_role_assignment.ingestion_publisher", "azurerm_sentinel_alert_rule_nrt.alert_rule",
	} {
		if got := count(cfg.resources[key].body); got != "local.sentinel_enabled ? 1 : 0" {
			t.Errorf("terraform: %s count = %q, want local.sentinel_enabled ? 1 : 0", key, got)
		}
	}
	if d, ok := cfg.data["azapi_resource.sentinel_workspace"]; !ok || count(d.body) != "local.sentinel_enabled ? 1 : 0" {
		t.Error("terraform: data.azapi_resource.sentinel_workspace must exist with count = local.sentinel_enabled ? 1 : 0")
	}
	obj, _ := cfg.locals["app_settings"].(*hclsyntax.ObjectConsExpr)
	if obj == nil {
		t.Fatal("terraform: local.app_settings is not an object")
	}
	found := 0
	for _, item := range obj.Items {
		name := hcl.ExprAsKeyword(item.KeyExpr)
		if !strings.HasPrefix(name, "TOKENPIVOT_LOGS_INGESTION_") {
			continue
		}
		found++
		cond, ok := item.ValueExpr.(*hclsyntax.ConditionalExpr)
		if !ok {
			t.Errorf("terraform: %s is not local.sentinel_enabled ? ... : \"\"", name)
			continue
		}
		vs := cond.Condition.Variables()
		if len(vs) != 1 || vs[0].RootName() != "local" || vs[0][1].(hcl.TraverseAttr).Name != "sentinel_enabled" {
			t.Errorf("terraform: %s is not conditional on local.sentinel_enabled", name)
		}
		if v, diags := cond.FalseResult.Value(nil); diags.HasErrors() || v.Type() != cty.String || v.AsString() != "" {
			t.Errorf("terraform: %s is not empty without the workspace", name)
		}
		if tr := cond.TrueResult.Variables(); len(tr) != 1 || tr[0].RootName() != "azapi_resource" || tr[0][1].(hcl.TraverseAttr).Name != "alerts_ingestion_rule" {
			t.Errorf("terraform: %s is not taken from azapi_resource.alerts_ingestion_rule", name)
		}
	}
	if found != 3 {
		t.Errorf("terraform: %d TOKENPIVOT_LOGS_INGESTION_* settings, want 3", found)
	}
	// What the settings read must be exported by the resource.
	exported := tfTexts(cfg.resources["azapi_resource.alerts_ingestion_rule"].body, "response_export_values")
	for _, want := range []string{"properties.endpoints.logsIngestion", "properties.immutableId"} {
		if !slices.Contains(exported, want) {
			t.Errorf("terraform: alerts_ingestion_rule does not export %s", want)
		}
	}
}

// TestSentinelQueryProjectsMappedColumns: the NRT rule keeps one row per
// AlertId by its highest Revision (the rows of one Logs Ingestion call share
// one TimeGenerated, so arg_max(TimeGenerated, *) picks a revision at random)
// and projects exactly the columns the rule maps (entities, the alert's
// name, description and severity, custom details: NRT alerts are
// size-limited), with AlertName and Description cut to Sentinel's 256 and
// 5,000 characters.
func TestSentinelQueryProjectsMappedColumns(t *testing.T) {
	s := loadSentinelInfra(t)
	p := func(keys ...any) *value { return s.bicepRule.path(append([]any{"properties"}, keys...)...) }
	query := collapse(p("query").text())
	if tf := collapse(tfText(s.tfRule.body, "query")); tf != query {
		t.Fatalf("queries differ: Bicep %q, Terraform %q", query, tf)
	}
	stages := strings.Split(query, " | ")
	if len(stages) != 3 || stages[0] != sentinel.Table || stages[1] != "summarize arg_max(Revision, *) by AlertId" || !strings.HasPrefix(stages[2], "project ") {
		t.Fatalf("query %q: want %s | summarize arg_max(Revision, *) by AlertId | project ...", query, sentinel.Table)
	}
	mapped := map[string]bool{}
	for _, em := range p("entityMappings").items {
		for _, fm := range em.get("fieldMappings").items {
			mapped[fm.get("columnName").text()] = true
		}
	}
	for _, k := range []string{"alertDisplayNameFormat", "alertDescriptionFormat"} {
		mapped[strings.Trim(p("alertDetailsOverride", k).text(), "{}")] = true
	}
	mapped[p("alertDetailsOverride", "alertSeverityColumnName").text()] = true
	for _, f := range p("customDetails").fields {
		mapped[f.value.text()] = true
	}
	projected := map[string]string{}
	for _, item := range splitArgs(strings.TrimPrefix(stages[2], "project ")) {
		name, expr, _ := strings.Cut(strings.TrimSpace(item), " = ")
		projected[name] = expr
	}
	for col := range mapped {
		if _, ok := projected[col]; !ok {
			t.Errorf("the rule maps %s, which the query does not project", col)
		}
	}
	for col := range projected {
		if !mapped[col] {
			t.Errorf("the query projects %s, which the rule does not map", col)
		}
	}
	for col, limit := range map[string]int{"AlertName": 256, "Description": 5000} {
		if got, want := projected[col], fmt.Sprintf("substring(%s, 0, %d)", col, limit); got != want {
			t.Errorf("the query projects %s as %q, want %q", col, got, want)
		}
	}
}
