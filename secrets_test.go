package main

import (
	"os"
	"strings"
	"testing"
)

// TestNoCommandPrintsASecret sets secret-bearing settings (a connection
// string with an account key, an account URL with a SAS token) and scans
// every command's help, usage errors, failures and logs for them.
func TestNoCommandPrintsASecret(t *testing.T) {
	const key, sig = "c2VjcmV0S2V5Rm9yVGVzdHM", "U2lnRm9yVGVzdHM"
	// Nothing listens on port 1: storage calls fail at once.
	t.Setenv("TOKENPIVOT_STORAGE_CONNECTION_STRING",
		"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="+key+";BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;")
	t.Setenv("TOKENPIVOT_STATE_STORAGE_ACCOUNT_URL", "https://state.blob.core.windows.net/?sv=2024-08-04&sig="+sig)
	// The webhook's signing secret, and a URL that carries a credential
	// (as Teams Workflows and Slack URLs do).
	const whKey, whSig = "V2ViaG9va1NlY3JldEZvclRlc3Rz", "V2ViaG9va1VSTFNpZw"
	t.Setenv("TOKENPIVOT_WEBHOOK_SECRET", "whsec_"+whKey)
	t.Setenv("TOKENPIVOT_WEBHOOK_URL", "https://prod.example.com/workflows/x/triggers/manual/paths/invoke?sp=%2Ftriggers&sig="+whSig)
	dir := t.TempDir()
	var runs [][]string
	for _, c := range commands() {
		runs = append(runs, []string{c.name, "-h"}, []string{c.name, "--no-such-flag"})
	}
	runs = append(runs,
		[]string{"process", "-v"},
		[]string{"process", "--storage", "AccountName=a;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:1/a;"},
		[]string{"process", "--storage", dir, "--state", "https://x.blob.core.windows.net/?sig=" + sig},
		[]string{"alerts"},
		[]string{"alerts", "--storage", "https://x.blob.core.windows.net/?sv=1&sig=" + sig},
		[]string{"detect", "--interactive", dir, "--noninteractive", "AccountKey=" + key},
		[]string{"test", "AccountKey=" + key},
		[]string{"process", "--storage", dir, "-v", "--webhook-url-file", secretFile(t, "https://x.example.com/h?sig="+whSig)},
		[]string{"process", "--storage", dir, "--webhook-url-file", secretFile(t, "http://example.com/h?sig="+whSig)},
		[]string{"alerts", "--storage", dir, "--redeliver"},
	)
	for _, args := range runs {
		_, out, errs := runCLI(t, args...)
		for _, secret := range []string{key, sig, whKey, whSig} {
			if strings.Contains(out+errs, secret) {
				t.Errorf("tokenpivot %s printed a secret:\n%s%s", strings.Join(args, " "), out, errs)
			}
		}
	}
}

// secretFile writes value to a file of its own and returns its path.
func secretFile(t *testing.T, value string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "secret")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(value); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}
