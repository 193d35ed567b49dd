package alert

import (
	"testing"
)

func TestRender(t *testing.T) {
	row := sampleRows(t)[0]
	for format, want := range map[string]string{
		"{{UserPrincipalName}} after {{ TimeSinceInteractive }}": "alice@contoso.com after 00:10:00.1234567",
		"{{Unknown}} stays; {{ open":                             "{{Unknown}} stays; {{ open",
		"":                                                       "",
	} {
		if got := Render(format, row); got != want {
			t.Errorf("Render(%q) = %q, want %q", format, got, want)
		}
	}
}
