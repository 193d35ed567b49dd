package alert

import (
	"cmp"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// newDocument builds alert id from its distinct evidence rows (in query
// order, with their keys), rendering the rule's alertDetailsOverride from
// the first row (as Sentinel renders from the first row).
func newDocument(r *rule.Rule, id string, rows []detect.Result, keys []rowHash) *Document {
	row := rows[0]
	ao := r.AlertDetailsOverride
	name := cmp.Or(Render(ao.AlertDisplayNameFormat, row), r.Name)
	severity := r.Severity
	if v, ok := detect.Column(row, ao.AlertSeverityColumnName); ok && isSeverity(v) {
		severity = v
	}
	tactics := strings.Join(r.Tactics, ",")
	if v, ok := detect.Column(row, ao.AlertTacticsColumnName); ok && v != "" {
		tactics = v
	}
	d := &Document{
		TimeGenerated:        row.NISignInTime.UTC(),
		DisplayName:          name,
		AlertName:            name,
		AlertSeverity:        severity,
		Description:          cmp.Or(Render(ao.AlertDescriptionFormat, row), strings.TrimSpace(r.Description)),
		ProviderName:         ProviderName,
		VendorName:           ProviderName,
		ProductName:          ProductName,
		ProductComponentName: ProductComponentName,
		AlertType:            r.ID,
		SystemAlertId:        id,
		Status:               StatusNew,
		Tactics:              tactics,
		Techniques:           append([]string{}, r.Techniques...),
		Entities:             []Entity{},
		ExtendedProperties: ExtendedProperties{
			AnalyticRuleIds:  []string{r.ID},
			AnalyticRuleName: r.Name,
			QueryPeriod:      detect.FormatTimespan(r.QueryPeriod),
			TriggerOperator:  r.TriggerOperator,
			TriggerThreshold: r.TriggerThreshold,
			EventGrouping:    r.EventGrouping,
		},
		StartTime:   row.InteractiveTime.UTC(),
		EndTime:     row.NISignInTime.UTC(),
		RuleId:      r.ID,
		RuleVersion: r.Version,
	}
	ents := entitySet{}
	values := make([][]string, len(r.CustomDetails))
	for _, row := range rows {
		d.widen(row.InteractiveTime, row.NISignInTime)
		for _, e := range entitiesOf(r, row) {
			d.addEntity(ents, e)
		}
		for i, kv := range r.CustomDetails {
			if v, ok := detect.Column(row, kv.Value); ok {
				values[i] = append(values[i], v)
			}
		}
	}
	for i, kv := range r.CustomDetails {
		cd := CustomDetail{Key: kv.Key}
		cd.addAll(values[i])
		d.ExtendedProperties.CustomDetails = append(d.ExtendedProperties.CustomDetails, cd)
	}
	d.setEvidence(rows, keys)
	return d
}

// widen extends the alert's times to cover an evidence row (or another
// alert's StartTime and EndTime).
// entitiesOf maps a row to entities per the rule's entityMappings. An
// entity whose mapped columns are all empty is left out. An Account's
// FullName (a UPN) is also split into Name and UPNSuffix, as Sentinel does.
func entitiesOf(r *rule.Rule, row detect.Result) []Entity {
	var out []Entity
	for _, m := range r.EntityMappings {
		e := Entity{"Type": strings.ToLower(m.EntityType)}
		empty := true
		for _, fm := range m.FieldMappings {
			v, _ := detect.Column(row, fm.ColumnName)
			if v == "" {
				continue
			}
			e[fm.Identifier] = v
			empty = false
		}
		if empty {
			continue
		}
		if strings.EqualFold(m.EntityType, "Account") {
			if name, suffix, ok := strings.Cut(e["FullName"], "@"); ok && e["Name"] == "" {
				e["Name"], e["UPNSuffix"] = name, suffix
			}
		}
		out = append(out, e)
	}
	return out
}

// Render fills the {{Column}} placeholders of format from row. A
// placeholder naming no result column is left as written.
func Render(format string, row detect.Result) string {
	var b strings.Builder
	for {
		i := strings.Index(format, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(format[i+2:], "}}")
		if j < 0 {
			break
		}
		b.WriteString(format[:i])
		name := strings.TrimSpace(format[i+2 : i+2+j])
		if v, ok := detect.Column(row, name); ok {
			b.WriteString(v)
		} else {
			b.WriteString(format[i : i+2+j+2])
		}
		format = format[i+2+j+2:]
	}
	b.WriteString(format)
	return b.String()
}

// Check reports columns the rule refers to that the query does not return;
// it is detect.CheckColumns.
func Check(r *rule.Rule) error { return detect.CheckColumns(r) }

func isSeverity(s string) bool {
	return slices.Contains([]string{"Informational", "Low", "Medium", "High"}, s)
}
