package settings

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		uses    []string
		check   func(t *testing.T, s Settings)
		wantErr string
	}{
		{name: "defaults", uses: All(), check: func(t *testing.T, s Settings) {
			if s.AllowedLateness != DefaultAllowedLateness || s.MaxExpansion != DefaultMaxExpansion || s.StateContainer != "tokenpivot-state" || s.IPv6SafeNetworks {
				t.Errorf("defaults: %+v", s)
			}
		}},
		{name: "environment", uses: All(),
			env: map[string]string{SafeIPs: "203.0.113.50, 198.51.100.12", AllowedLateness: "72h", IPv6SafeNetworks: "true", Rule: "a: 1\nb: 2\n"},
			check: func(t *testing.T, s Settings) {
				if len(s.SafeIPs) != 2 || s.AllowedLateness != 72*time.Hour || !s.IPv6SafeNetworks || s.Rule != "a: 1\nb: 2\n" {
					t.Errorf("from the environment: %+v", s)
				}
			}},
		{name: "flags win over the environment", uses: All(),
			env:  map[string]string{SafeIPs: "203.0.113.50", StorageConnectionString: "UseDevelopmentStorage=true"},
			args: []string{"--safe-ips", "192.0.2.1", "--storage", "/tmp/exports", "--ipv6-safe-networks"},
			check: func(t *testing.T, s Settings) {
				if len(s.SafeIPs) != 1 || s.SafeIPs[0] != "192.0.2.1" || s.Storage() != "/tmp/exports" || !s.IPv6SafeNetworks {
					t.Errorf("flags: %+v (storage %q)", s, s.Storage())
				}
			}},
		{name: "a bad value names the variable", uses: All(), env: map[string]string{AllowedLateness: "a week"},
			wantErr: `TOKENPIVOT_ALLOWED_LATENESS="a week": want a positive Go duration`},
		{name: "a bad flag names the flag", uses: All(), args: []string{"--max-expansion", "0"},
			wantErr: `--max-expansion "0": want a positive whole ratio`},
		{name: "settings a command does not use are not read", uses: []string{AlertsContainer},
			env: map[string]string{AllowedLateness: "a week", SafeNetworks: "not a cidr"}},
		{name: "the same container twice", uses: All(),
			env: map[string]string{InteractiveContainer: "exports", NonInteractiveContainer: "exports"}, wantErr: "name the same container"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := Register(fs, tc.uses...)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			s, err := f.Load(func(k string) string { return tc.env[k] })
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.check != nil:
				tc.check(t, s)
			}
		})
	}
}

// Help shows defaults only: never a value from the environment.
func TestHelpShowsNoEnvironment(t *testing.T) {
	t.Setenv(StorageConnectionString, "AccountName=a;AccountKey=c2VjcmV0;")
	t.Setenv(StorageAccountURL, "https://from-env.blob.core.windows.net")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	Register(fs, All()...)
	fs.PrintDefaults()
	WriteHelp(&out)
	if strings.Contains(out.String(), "c2VjcmV0") || strings.Contains(out.String(), "from-env") {
		t.Errorf("help shows the environment:\n%s", out.String())
	}
	for _, st := range Table() {
		if !strings.Contains(out.String(), st.Env) {
			t.Errorf("help does not list %s", st.Env)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5==;EndpointSuffix=core.windows.net",
			"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=REDACTED;EndpointSuffix=core.windows.net"},
		{"BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=2024&sig=abc%2Bdef",
			"BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=REDACTED"},
		{`GET https://a.blob.core.windows.net/c/b?sv=2024-08-04&se=2026&sig=abc%2Bdef%3D&sp=r failed`,
			`GET https://a.blob.core.windows.net/c/b?sv=2024-08-04&se=2026&sig=REDACTED&sp=r failed`},
		{"secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw end", "secret whsec_REDACTED end"},
		// JSON: a slog line quoting a url.Error, and the same line inside
		// an encoding/json answer (& escaped as \u0026).
		{`{"error":"Head \"http://a/c/b?se=2030&sig=abc%3D\": refused"}`,
			`{"error":"Head \"http://a/c/b?se=2030&sig=REDACTED\": refused"}`},
		{`"{\"error\":\"Get \\\"http://a/c?comp=list\u0026sig=abc%3D\u0026sp=r\\\": refused\"}"`,
			`"{\"error\":\"Get \\\"http://a/c?comp=list\u0026sig=REDACTED\u0026sp=r\\\": refused\"}"`},
		{`"BlobEndpoint=http://a;SharedAccessSignature=sv=1\u0026sig=abc\"`, `"BlobEndpoint=http://a;SharedAccessSignature=REDACTED\"`},
		{"nothing secret: sign-in from 203.0.113.7", "nothing secret: sign-in from 203.0.113.7"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// A secret written in pieces is still redacted: the writer works by lines.
func TestRedactingWriterSplitWrites(t *testing.T) {
	var out bytes.Buffer
	w := NewRedactingWriter(&out)
	for _, piece := range []string{"conn: AccountName=a;Acc", "ountKey=c2Vj", "cmV0;\nnext line ", "AccountKey=bGFzdA=="} {
		io.WriteString(w, piece)
	}
	w.Close()
	if strings.Contains(out.String(), "c2Vj") || strings.Contains(out.String(), "bGFzdA") || !strings.Contains(out.String(), "next line AccountKey=REDACTED") {
		t.Errorf("got %q", out.String())
	}
}

// The defaults as text are the code's defaults.
func TestDefaultsAgree(t *testing.T) {
	d := Defaults()
	if d.AllowedLateness != DefaultAllowedLateness || d.MaxExpansion != DefaultMaxExpansion {
		t.Errorf("Defaults() = %v, %d; want %v, %d", d.AllowedLateness, d.MaxExpansion, DefaultAllowedLateness, DefaultMaxExpansion)
	}
}

// TestNoSecretOnTheCommandLine: a secret's flag names a file, never the
// value (which /proc/PID/cmdline shows to every user of the machine), and
// the file's content is the value.
func TestNoSecretOnTheCommandLine(t *testing.T) {
	for _, st := range table {
		if st.Secret && st.Flag != "" && !st.FromFile {
			t.Errorf("%s: --%s takes the secret itself on the command line", st.Env, st.Flag)
		}
	}
	file := filepath.Join(t.TempDir(), "webhook-url")
	const url = "https://prod.example.com/workflows/x/triggers/manual/paths/invoke?sig=c2VjcmV0"
	if err := os.WriteFile(file, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := Register(fs, WebhookURL)
	if err := fs.Parse([]string{"--webhook-url-file", file}); err != nil {
		t.Fatal(err)
	}
	s, err := f.Load(func(string) string { return "" })
	if err != nil || s.WebhookURL != url {
		t.Errorf("--webhook-url-file: %q, %v", s.WebhookURL, err)
	}
	if err := os.WriteFile(file, []byte("ftp://example.com/?sig=c2VjcmV0"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	f = Register(fs, WebhookURL)
	fs.Parse([]string{"--webhook-url-file", file})
	if _, err := f.Load(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("a bad URL in the file: %v", err)
	}
}

// TestLoadWithoutEnvironmentReadsNone: a library (or a test) that passes
// no getenv gets defaults and flags, never the process's environment.
func TestLoadWithoutEnvironmentReadsNone(t *testing.T) {
	t.Setenv(StateContainer, "from-the-environment")
	s, err := FromEnvOnly(StateContainer).Load(nil)
	if err != nil || s.StateContainer != "tokenpivot-state" {
		t.Errorf("Load(nil): state container %q, %v; want the default", s.StateContainer, err)
	}
	s, err = FromEnvOnly(StateContainer).Load(os.Getenv)
	if err != nil || s.StateContainer != "from-the-environment" {
		t.Errorf("Load(os.Getenv): state container %q, %v", s.StateContainer, err)
	}
}
