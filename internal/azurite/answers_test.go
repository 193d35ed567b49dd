package azurite

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Another test's server on the port Azurite was meant to take is not
// Azurite, whatever it answers; nothing listening is not either.
func TestAnswersOnlyAzurite(t *testing.T) {
	client := &http.Client{Timeout: 2 * time.Second}
	for _, tc := range []struct {
		name   string
		server string
		want   bool
	}{
		{"Azurite's 403", "Azurite-Blob/3.35.0", true},
		{"another test's server", "", false},
		{"another server's name", "nginx", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.server != "" {
					w.Header().Set("Server", tc.server)
				}
				http.Error(w, "no", http.StatusForbidden)
			}))
			defer srv.Close()
			if got := answers(client, strings.TrimPrefix(srv.URL, "http://")); got != tc.want {
				t.Errorf("answers = %v, want %v", got, tc.want)
			}
		})
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	if answers(client, addr) {
		t.Errorf("answers = true with nothing listening")
	}
}
