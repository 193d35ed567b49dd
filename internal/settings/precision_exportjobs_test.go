package settings

import (
	"slices"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/precision"
)

// The export jobs project the precision mode's columns: none in exact (the
// default), the mode's otherwise, whether or not scheduling is on.
func TestExportJobConfigPrecisionColumns(t *testing.T) {
	const ws = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/workspaces/law1"
	for _, m := range precision.Modes {
		for _, on := range []bool{false, true} {
			env := map[string]string{Precision: m.String()}
			if on {
				env[ExportWorkspaceID], env[ExportStorageAccountID] = ws, testExportAccount
			}
			s, err := FromEnvOnly(append(ExportJobSettings, Precision)...).Load(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.ExportJobConfig()
			if err != nil || c.Enabled() != on {
				t.Fatalf("%s: %+v, %v", m, c, err)
			}
			if !slices.Equal(c.Extra, m.Columns()) || (m == precision.Exact) != (c.Extra == nil) {
				t.Errorf("%s: Extra %v, want %v", m, c.Extra, m.Columns())
			}
		}
	}
}
