package settings

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
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

// Unwrap returns the writer r writes to: a caller asking whether output
// goes to a terminal asks it, not the redaction in between.
func (r *RedactingWriter) Unwrap() io.Writer { return r.w }

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

// WriteHelp prints every setting with its flag, default and meaning, one
// entry each, wrapped to fit 80 columns. Secrets show no value.
func WriteHelp(w io.Writer) error {
	for _, st := range table {
		flagName := ""
		if st.Flag != "" {
			flagName = "--" + st.Flag
		}
		usage := st.Usage
		if st.NotInInfra != "" {
			usage += "; " + st.NotInInfra
		}
		if err := WriteEntry(w, st.Env, flagName, st.Default, unquote(usage)); err != nil {
			return err
		}
	}
	return nil
}

// WriteEntry prints one setting of a help listing: its name, flag and
// default on a line, then its meaning indented and wrapped at 80 columns.
func WriteEntry(w io.Writer, name, flagName, def, meaning string) error {
	head := name
	if flagName != "" {
		head += "  " + flagName
	}
	if def != "" {
		head += "  (default " + def + ")"
	}
	var b strings.Builder
	b.WriteString(head + "\n")
	line := "     "
	for _, word := range strings.Fields(meaning) {
		if len(line)+1+len(word) > 80 && strings.TrimSpace(line) != "" {
			b.WriteString(line + "\n")
			line = "     "
		}
		line += " " + word
	}
	if strings.TrimSpace(line) != "" {
		b.WriteString(line + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// unquote drops the backquotes flag usage strings use to name the argument.
func unquote(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte("`"), nil)) }
