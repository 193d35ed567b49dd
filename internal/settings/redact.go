package settings

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"sync"
	"text/tabwriter"
)

// secretPatterns match the secrets tokenpivot may be handed: a storage
// account key or SAS in a connection string, a SAS token's signature in a
// URL, a Standard Webhooks secret. The text may be JSON (a log line, an
// HTTP answer): a URL's & is then often written \u0026 (encoding/json's
// escape), and a value never takes in a backslash, which would swallow the
// escape of a closing quote and break the JSON.
var secretPatterns = regexp.MustCompile(`(?i)(AccountKey=|SharedAccessSignature=)(?:[^;\s"'\\]|\\u0026)+|([?&]sig=|\\u0026sig=)[^&\s"'\\]+|whsec_[A-Za-z0-9+/=]+`)

// Redact hides every secret in text, keeping what names it (AccountKey=,
// sig=) so a reader still sees which setting is meant.
func Redact(text string) string {
	return secretPatterns.ReplaceAllStringFunc(text, func(m string) string {
		sub := secretPatterns.FindStringSubmatch(m)
		switch {
		case sub[1] != "":
			return sub[1] + "REDACTED"
		case sub[2] != "":
			return sub[2] + "REDACTED"
		}
		return "whsec_REDACTED"
	})
}

// RedactingWriter writes to w with secrets redacted, a line at a time (a
// secret is never split across two writes of a line). Close flushes a last
// line without a newline.
type RedactingWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewRedactingWriter returns a RedactingWriter over w.
func NewRedactingWriter(w io.Writer) *RedactingWriter { return &RedactingWriter{w: w} }

func (r *RedactingWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	// Lines end at \n, and at \r for progress bars redrawn in place.
	i := bytes.LastIndexAny(r.buf, "\n\r")
	if i < 0 {
		return len(p), nil
	}
	if _, err := io.WriteString(r.w, Redact(string(r.buf[:i+1]))); err != nil {
		return 0, err
	}
	r.buf = append(r.buf[:0], r.buf[i+1:]...)
	return len(p), nil
}

// Close writes what is left.
func (r *RedactingWriter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == 0 {
		return nil
	}
	_, err := io.WriteString(r.w, Redact(string(r.buf)))
	r.buf = nil
	return err
}

// WriteHelp prints the table: every setting with its flag, default and
// meaning. Secrets show no value.
func WriteHelp(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tFLAG\tDEFAULT\tMEANING")
	for _, st := range table {
		flagName, def := "-", st.Default
		if st.Flag != "" {
			flagName = "--" + st.Flag
		}
		if def == "" {
			def = "-"
		}
		usage := st.Usage
		if st.NotInInfra != "" {
			usage += "; " + st.NotInInfra
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", st.Env, flagName, def, unquote(usage))
	}
	return tw.Flush()
}

// unquote drops the backquotes flag usage strings use to name the argument.
func unquote(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte("`"), nil)) }
