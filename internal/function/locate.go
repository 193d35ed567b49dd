package function

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/pipeline"
	"github.com/tokenpivot/tokenpivot/internal/store"
)

// locator turns blob URLs of events into Work, refusing anything outside the
// export account and containers. It only parses strings: no request is ever
// made to a URL an event names.
type locator struct {
	scheme string
	hosts  []string // the blob host, and its Data Lake (dfs) twin for Azure
	prefix string   // the service URL's path: "" (Azure) or "/devstoreaccount1" (Azurite)
	table  func(container string) bool
}

// newLocator parses the export account's blob service URL, e.g.
// https://acct.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1.
// An empty serviceURL gives a locator that refuses every URL (a local
// directory store has no URLs that events could name).
func newLocator(serviceURL string, isExport func(container string) bool) (*locator, error) {
	l := &locator{table: isExport}
	if serviceURL == "" {
		return l, nil
	}
	u, err := url.Parse(serviceURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("function: service URL %q: want https://ACCOUNT.blob.core.windows.net or Azurite's http://HOST:PORT/ACCOUNT", serviceURL)
	}
	l.scheme = u.Scheme
	host := strings.ToLower(u.Host)
	l.hosts = []string{host}
	// An account with a hierarchical namespace reports Data Lake API writes
	// with its dfs endpoint: the same account, another host name.
	if acct, rest, ok := strings.Cut(host, ".blob."); ok {
		l.hosts = append(l.hosts, acct+".dfs."+rest)
	}
	l.prefix = strings.TrimRight(u.EscapedPath(), "/")
	return l, nil
}

// errRefused marks an event naming a blob tokenpivot must not touch.
var errRefused = errors.New("refused")

func refusef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errRefused, fmt.Sprintf(format, a...))
}

// fromURL returns the Work a blob URL names. The path is compared still
// escaped, then container and name are unescaped exactly once, so an escaped
// "%2e%2e" segment is caught as ".." and a literal "%252e" stays a name.
func (l *locator) fromURL(raw string) (pipeline.Work, error) {
	if len(l.hosts) == 0 {
		return pipeline.Work{}, refusef("blob URL %q: no export storage account URL is configured (local store)", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return pipeline.Work{}, refusef("blob URL %q: %v", raw, err)
	}
	if !strings.EqualFold(u.Scheme, l.scheme) || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return pipeline.Work{}, refusef("blob URL %s: not a plain %s:// blob URL of the export account", u.Redacted(), l.scheme)
	}
	host := strings.ToLower(u.Host)
	known := false
	for _, h := range l.hosts {
		known = known || host == h
	}
	if !known {
		return pipeline.Work{}, refusef("blob URL %s: host %s is not the export account (%s)", u.Redacted(), u.Host, l.hosts[0])
	}
	path, ok := strings.CutPrefix(u.EscapedPath(), l.prefix+"/")
	if !ok {
		return pipeline.Work{}, refusef("blob URL %s: path is not under the export account's %s/", u.Redacted(), l.prefix)
	}
	rawContainer, rawName, ok := strings.Cut(path, "/")
	if !ok {
		return pipeline.Work{}, refusef("blob URL %s: no blob name after the container", u.Redacted())
	}
	container, err := url.PathUnescape(rawContainer)
	if err != nil {
		return pipeline.Work{}, refusef("blob URL %s: container: %v", u.Redacted(), err)
	}
	name, err := url.PathUnescape(rawName)
	if err != nil {
		return pipeline.Work{}, refusef("blob URL %s: blob name: %v", u.Redacted(), err)
	}
	return l.check(pipeline.Work{Container: container, Name: name}, u.Redacted())
}

// fromPath returns the Work a blob trigger's "container/name" path names
// (unescaped, as the blob trigger's BlobTrigger metadata gives it).
func (l *locator) fromPath(path string) (pipeline.Work, error) {
	container, name, ok := strings.Cut(path, "/")
	if !ok {
		return pipeline.Work{}, refusef("blob path %q: want container/name", path)
	}
	return l.check(pipeline.Work{Container: container, Name: name}, path)
}

// check refuses a container other than the two export containers and a name
// no store may hold ("..", empty segments, ...).
func (l *locator) check(w pipeline.Work, where string) (pipeline.Work, error) {
	if !l.table(w.Container) {
		return w, refusef("%s: container %q is not an export container", where, w.Container)
	}
	if err := store.CheckName(w.Name); err != nil {
		return w, refusef("%s: %v", where, err)
	}
	return w, nil
}
