package function

import (
	"bytes"
	"encoding/json"
	"strings"
)

// request is the host's invocation payload: Data holds the trigger and input
// bindings by name, Metadata the trigger metadata (and "sys").
type request struct {
	Data     map[string]*value `json:"Data"`
	Metadata json.RawMessage   `json:"Metadata"`
}

// maxValue is the largest Data value kept in memory. A blob trigger passes
// the blob's content in Data, which tokenpivot never uses (it reads the blob
// itself, ranged): larger values are measured and dropped.
const maxValue = 1 << 20

// value is one Data entry, kept only when small enough to be useful.
type value struct {
	raw  json.RawMessage
	size int
}

func (v *value) UnmarshalJSON(b []byte) error {
	v.size = len(b)
	if len(b) <= maxValue {
		v.raw = append(json.RawMessage(nil), b...)
	}
	return nil
}

// data returns the Data entry named name (binding names are matched without
// case, as the host does), or nil.
func (r *request) data(name string) *value {
	if v, ok := r.Data[name]; ok {
		return v
	}
	for k, v := range r.Data {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// metadata returns the Metadata entry named name (without case), unwrapped.
func (r *request) metadata(name string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(unwrap(r.Metadata), &m) != nil {
		return nil
	}
	if v, ok := m[name]; ok {
		return unwrap(v)
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return unwrap(v)
		}
	}
	return nil
}

// unwrap returns the JSON value raw holds. The host passes some values as
// JSON strings holding JSON (queue messages, blob metadata), sometimes twice:
// a string whose content is JSON is decoded again, a few levels at most.
// A string holding anything else (a URL) is returned as the JSON string.
func unwrap(raw json.RawMessage) json.RawMessage {
	for range 4 {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] != '"' {
			return raw
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return raw
		}
		t := strings.TrimSpace(s)
		if t == "" || (t[0] != '{' && t[0] != '[' && t[0] != '"') || !json.Valid([]byte(t)) {
			return raw
		}
		raw = json.RawMessage(t)
	}
	return raw
}

// str returns raw as a Go string: the content of a (possibly double-encoded)
// JSON string, or "" when raw is not a string.
func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(unwrap(raw), &s) != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

// response is the reply the host expects: Outputs by output binding name,
// Logs for the invocation log, ReturnValue for a $return binding (none of
// tokenpivot's functions has one; it summarises the invocation for people).
type response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}
