package kql

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Dynamic values: a dynamic column (DeviceDetail, LocationDetails, ...) is
// exported as its JSON text, and parse_json/todynamic read a string as
// JSON. An object or an array is kept as its JSON text (Value.S, with
// Kind KDynamic and no List), so tostring() gives the text as exported
// (key order kept); a JSON string, number, bool or null becomes that
// scalar, as KQL's dynamic does.

// jsonValue is raw JSON as a Value; ok is false when raw is not JSON.
func jsonValue(raw []byte) (Value, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || !json.Valid(raw) {
		return null, false
	}
	switch raw[0] {
	case '{', '[':
		return Value{Kind: KDynamic, S: string(raw)}, true
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return null, false
		}
		return Str(s), true
	case 't', 'f':
		return Bool(raw[0] == 't'), true
	case 'n':
		return null, true
	}
	if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return Value{Kind: KLong, I: i}, true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return null, false
	}
	return Value{Kind: KReal, F: f}, true
}

// parseJSON is parse_json(v): a string holding JSON is that JSON; a string
// that is not JSON stays the string (as KQL does); "" is null; any other
// value is itself.
func parseJSON(v Value) Value {
	if v.Kind != KString {
		return v
	}
	if strings.TrimSpace(v.S) == "" {
		return null
	}
	if j, ok := jsonValue([]byte(v.S)); ok {
		return j
	}
	return v
}

// jsonObject reports whether v is a dynamic object or array read from JSON.
func jsonObject(v Value) bool { return v.Kind == KDynamic && v.List == nil && v.S != "" }

// member is v.name (v["name"]) on a dynamic object: null when v is not an
// object or has no such key. Keys match exactly, as in KQL.
func member(v Value, name string) Value {
	if !jsonObject(v) || v.S[0] != '{' {
		return null
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(v.S), &m) != nil {
		return null
	}
	raw, ok := m[name]
	if !ok {
		return null
	}
	out, _ := jsonValue(raw)
	return out
}

// index is v[i] on a dynamic array (or on a literal dynamic list): null out
// of range. A negative index counts from the end, as in KQL.
func index(v Value, i int64) Value {
	if v.Kind == KDynamic && v.List != nil {
		if i < 0 {
			i += int64(len(v.List))
		}
		if i < 0 || i >= int64(len(v.List)) {
			return null
		}
		return v.List[i]
	}
	if !jsonObject(v) || v.S[0] != '[' {
		return null
	}
	var a []json.RawMessage
	if json.Unmarshal([]byte(v.S), &a) != nil {
		return null
	}
	if i < 0 {
		i += int64(len(a))
	}
	if i < 0 || i >= int64(len(a)) {
		return null
	}
	out, _ := jsonValue(a[i])
	return out
}
