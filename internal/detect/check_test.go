package detect

import (
	"strings"
	"testing"

	"github.com/tokenpivot/tokenpivot/internal/rule"
)

func TestCheckColumns(t *testing.T) {
	if err := CheckColumns(rule.Default()); err != nil {
		t.Fatalf("default rule: %v", err)
	}
	bad := *rule.Default()
	bad.CustomDetails = []rule.KV{{Key: "Country", Value: "Location"}}
	bad.AlertDetailsOverride.AlertDescriptionFormat = "{{UserPrincipalName}} from {{IPAddress}}"
	err := CheckColumns(&bad)
	if err == nil || !strings.Contains(err.Error(), `customDetails.Country: "Location"`) || !strings.Contains(err.Error(), `alertDescriptionFormat: "IPAddress"`) || strings.Contains(err.Error(), `"UserPrincipalName"`) {
		t.Errorf("Check = %v", err)
	}
}
