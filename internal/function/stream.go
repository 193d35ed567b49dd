package function

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// readRequest decodes the host's envelope from body token by token. When
// events is not nil, the OnExportCreated event binding is not kept in the
// request but handed to events element by element as it is read, so a batch
// of any size (up to MaxBody) costs the memory of one event at a time.
func readRequest(body io.Reader, events *eventStream) (request, error) {
	var req request
	dec := json.NewDecoder(body)
	if err := expectDelim(dec, '{', "the envelope"); err != nil {
		return req, err
	}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return req, err
		}
		switch {
		case strings.EqualFold(key, "Data"):
			if err := readData(dec, &req, events); err != nil {
				return req, err
			}
		case strings.EqualFold(key, "Metadata"):
			if err := dec.Decode(&req.Metadata); err != nil {
				return req, err
			}
		default:
			var skip value
			if err := dec.Decode(&skip); err != nil {
				return req, err
			}
		}
	}
	_, err := dec.Token() // the closing '}'
	return req, err
}

// readData reads the Data object: binding name to value.
func readData(dec *json.Decoder, req *request, events *eventStream) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // "Data": null
		return nil
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("the envelope's Data is %s, not an object", describeToken(tok))
	}
	req.Data = map[string]*value{}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return err
		}
		if events != nil && strings.EqualFold(key, bindingEvent) {
			events.seen = true
			req.Data[key] = &value{}
			if err := events.read(dec, 0); err != nil {
				return err
			}
			continue
		}
		v := &value{}
		if err := dec.Decode(v); err != nil {
			return err
		}
		req.Data[key] = v
	}
	_, err = dec.Token()
	return err
}

func expectDelim(dec *json.Decoder, d json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("%s is %s, not an object", what, describeToken(tok))
	}
	return nil
}

func objectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("object key is %s", describeToken(tok))
	}
	return key, nil
}

// describeToken names a JSON token's kind for log lines.
func describeToken(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "JSON null"
	case bool:
		return "a JSON boolean"
	case float64, json.Number:
		return "a JSON number"
	case string:
		return "a JSON string"
	case json.Delim:
		if tok == json.Delim('[') {
			return "a JSON array"
		}
		if tok == json.Delim('{') {
			return "a JSON object"
		}
	}
	return fmt.Sprintf("%v", tok)
}

// describeRaw names the kind of a JSON value (whitespace trimmed).
func describeRaw(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case '"':
		return "a JSON string"
	case 't', 'f':
		return "a JSON boolean"
	case 'n':
		return "JSON null"
	}
	return "a JSON number"
}

// eventStream turns the OnExportCreated event binding (one event, or a
// batch, possibly JSON-encoded in a string) into queue messages, one
// element at a time.
type eventStream struct {
	h        *Handler
	inv      *invocation
	seen     bool
	elements int // elements of the batch read so far
	queued   []string
	refused  int
	invalid  int // elements that are not events at all
}

// read decodes the next value of dec: an event object, an array of events, or a
// string holding either (the host double-encodes, a few levels at most).
func (s *eventStream) read(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('['):
		for dec.More() {
			k := s.elements
			var el json.RawMessage
			if err := dec.Decode(&el); err != nil {
				return fmt.Errorf("element %d: %w", k, err)
			}
			s.elements++
			s.element(k, el)
		}
		_, err := dec.Token()
		return err
	case json.Delim('{'):
		// One event, its '{' already read: gather its members.
		m := map[string]json.RawMessage{}
		for dec.More() {
			key, err := objectKey(dec)
			if err != nil {
				return err
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return err
			}
			m[key] = v
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		s.elements++
		s.element(-1, raw)
		return nil
	}
	if text, ok := tok.(string); ok && depth < 4 {
		if t := strings.TrimSpace(text); t != "" && (t[0] == '{' || t[0] == '[' || t[0] == '"') {
			inner := json.NewDecoder(strings.NewReader(t))
			if err := s.read(inner, depth+1); err != nil {
				return fmt.Errorf("in the JSON string: %w", err)
			}
			if inner.More() {
				return errors.New("in the JSON string: data after the event")
			}
			return nil
		}
	}
	s.invalid++
	s.inv.log.Error("event refused: the event binding is " + describeToken(tok) + ", not an event object or an array of events")
	return nil
}

// element handles one event; k is its index in the batch, -1 for a single
// event.
func (s *eventStream) element(k int, raw json.RawMessage) {
	where := "event"
	if k >= 0 {
		where = fmt.Sprintf("element %d", k)
	}
	raw = unwrap(raw)
	if len(raw) == 0 || raw[0] != '{' {
		s.notEvent(where, raw)
		return
	}
	var e eventJSON
	if err := json.Unmarshal(raw, &e); err != nil {
		s.invalid++
		s.inv.log.Error("event refused: "+where+" is not an event: "+err.Error(), slog.Int("index", k))
		return
	}
	switch msg, queued, refused := s.h.event(s.inv, e); {
	case queued:
		s.queued = append(s.queued, msg)
	case refused:
		s.refused++
	}
}

func (s *eventStream) notEvent(where string, raw json.RawMessage) {
	s.invalid++
	s.inv.log.Error("event refused: " + where + " is " + describeRaw(raw) + ", not an object")
}

// finish writes the response for what was read; err is the reading error
// that stopped the stream, if any.
func (s *eventStream) finish(err error) int {
	switch len(s.queued) {
	case 0:
	case 1:
		s.inv.resp.Outputs[bindingWork] = s.queued[0]
	default:
		s.inv.resp.Outputs[bindingWork] = s.queued
	}
	rv := map[string]any{"queued": len(s.queued), "refused": s.refused + s.invalid}
	if err != nil {
		what := "event batch is not valid JSON: " + err.Error()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			what = fmt.Sprintf("body exceeds %d bytes", mbe.Limit)
		}
		s.inv.log.Error("event refused: "+what+"; events after the "+fmt.Sprint(s.elements)+" read are dropped (the Sweep finds their blobs)",
			slog.Int("events_read", s.elements))
		rv["error"] = what
	}
	s.inv.resp.ReturnValue = rv
	return http.StatusOK
}

// stringCutter passes JSON through, except that a string longer than limit
// bytes (escapes counted as written) is cut to its first limit bytes and the
// rest read past: a blob trigger's content, which tokenpivot never uses,
// then costs the decoder limit bytes, not the blob's size. A cut string is
// longer than maxValue as the decoder sees it, so value drops it; the JSON
// stays valid because the cut never falls inside an escape sequence.
type stringCutter struct {
	r        io.Reader
	limit    int
	inString bool
	dropping bool // past limit: bytes are read and dropped to the closing quote
	esc      int  // escape bytes still to come: -1 after '\', 4 after "\u"
	run      int  // bytes of the current string so far
	cut      int  // strings cut
}

func (c *stringCutter) Read(p []byte) (int, error) {
	for {
		n, err := c.r.Read(p)
		w := 0
		for _, b := range p[:n] {
			if !c.inString {
				if b == '"' {
					c.inString, c.run = true, 0
				}
				p[w] = b
				w++
				continue
			}
			starts := c.esc == 0 // b begins a character: plain, '\' or the closing quote
			closing := false
			switch {
			case c.esc == -1:
				c.esc = 0
				if b == 'u' {
					c.esc = 4
				}
			case c.esc > 0:
				c.esc--
			case b == '\\':
				c.esc = -1
			case b == '"':
				closing = true
			}
			if closing {
				c.inString, c.dropping = false, false
				p[w] = b
				w++
				continue
			}
			if !c.dropping && starts && c.run >= c.limit {
				c.dropping = true
				c.cut++
			}
			if c.dropping {
				continue
			}
			c.run++
			p[w] = b
			w++
		}
		if w > 0 || err != nil {
			return w, err
		}
	}
}
