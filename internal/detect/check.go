package detect

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/rule"
)

// CheckColumns reports columns the rule refers to that the query does not
// return (entity mappings, custom details, alert overrides and their
// placeholders), so a rule that would render empty alerts fails at start-up.
func CheckColumns(r *rule.Rule) error {
	var bad []string
	check := func(field, col string) {
		if col == "" {
			return
		}
		if _, ok := columnIndex[col]; !ok && (r.Plan == nil || !slices.Contains(r.Plan.ExtraNames(), col)) {
			bad = append(bad, fmt.Sprintf("%s: %q", field, col))
		}
	}
	for i, m := range r.EntityMappings {
		for j, fm := range m.FieldMappings {
			check(fmt.Sprintf("entityMappings[%d].fieldMappings[%d].columnName", i, j), fm.ColumnName)
		}
	}
	for _, kv := range r.CustomDetails {
		check("customDetails."+kv.Key, kv.Value)
	}
	ao := r.AlertDetailsOverride
	check("alertDetailsOverride.alertSeverityColumnName", ao.AlertSeverityColumnName)
	check("alertDetailsOverride.alertTacticsColumnName", ao.AlertTacticsColumnName)
	for field, f := range map[string]string{"alertDisplayNameFormat": ao.AlertDisplayNameFormat, "alertDescriptionFormat": ao.AlertDescriptionFormat} {
		for rest := f; ; {
			i := strings.Index(rest, "{{")
			j := strings.Index(rest[max(i, 0):], "}}")
			if i < 0 || j < 0 {
				break
			}
			check("alertDetailsOverride."+field, strings.TrimSpace(rest[i+2:i+j]))
			rest = rest[i+j+2:]
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("rule %s: not a result column (want one of %s): %s", r.File, strings.Join(Columns, ", "), strings.Join(bad, "; "))
	}
	return nil
}
