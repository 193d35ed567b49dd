package store

import (
	"fmt"
	"net/url"
	"strings"
)

// CheckContainer reports whether name is a valid Azure container name:
// 3 to 63 lowercase letters, digits and single hyphens, starting and ending
// with a letter or digit. Both backends enforce it so that a layout tested on
// a local directory also works in a storage account.
func CheckContainer(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("store: container name %q: must be 3 to 63 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(name)-1 || name[i-1] == '-' {
				return fmt.Errorf("store: container name %q: hyphens must be single and inside the name", name)
			}
		default:
			return fmt.Errorf("store: container name %q: only lowercase letters, digits and '-' are allowed", name)
		}
	}
	return nil
}

// CheckName reports whether name is a blob name both backends can hold:
// '/'-separated segments, none empty, "." or "..", no backslash (Azure turns
// it into '/'), no NUL, no leading '/', at most 1024 characters.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("store: blob name is empty")
	case len(name) > 1024:
		return fmt.Errorf("store: blob name %.40q...: longer than 1024 characters", name)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("store: blob name %q: must not start with '/'", name)
	case strings.ContainsRune(name, '\\'):
		return fmt.Errorf("store: blob name %q: must not contain a backslash", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("store: blob name %q: must not contain NUL", name)
	}
	for _, seg := range strings.Split(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("store: blob name %q: empty path segment", name)
		case ".", "..":
			return fmt.Errorf("store: blob name %q: %q segments are not allowed", name, seg)
		}
	}
	return nil
}

// escapeName escapes each '/'-separated segment of a blob name for a URL
// path, keeping the slashes, as Event Grid writes blob URLs.
func escapeName(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// checkCondition evaluates cond against the blob's current state the way
// Azure Blob Storage does for a write.
func checkCondition(cond Condition, exists bool, etag string) error {
	if cond.IfNoneMatch != "" && exists && (cond.IfNoneMatch == "*" || cond.IfNoneMatch == etag) {
		return ErrConditionNotMet
	}
	if cond.IfMatch != "" && (!exists || (cond.IfMatch != "*" && cond.IfMatch != etag)) {
		return ErrConditionNotMet
	}
	return nil
}
