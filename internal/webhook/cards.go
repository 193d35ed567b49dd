package webhook

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxTeamsBody is the most bytes a Teams card request may carry: Teams
// refuses messages over about 28 KB.
const MaxTeamsBody = 27 * 1024

// maxRows is how many evidence rows a card shows.
const maxRows = 5

// summary is what a card says of an alert document.
type summary struct {
	SystemAlertId      string
	Revision           int
	DisplayName        string
	AlertSeverity      string
	Description        string
	Tactics            string
	StartTime, EndTime time.Time
	IncidentId         string
	ExtendedProperties struct {
		ResultCount int `json:"Search Query Results Overall Count"`
	}
	Results []struct {
		NISignInTime, InteractiveTime                                          string
		UserPrincipalName, AppDisplayName, NIIPAddress, NICountry              string
		InteractiveIP, InteractiveCountry, CorrelationId, TimeSinceInteractive string
	}
}

func parse(doc []byte) (*summary, error) {
	var s summary
	if err := json.Unmarshal(doc, &s); err != nil {
		return nil, err
	}
	if s.SystemAlertId == "" {
		return nil, fmt.Errorf("not an alert document")
	}
	return &s, nil
}

func (s *summary) who() string {
	if len(s.Results) == 0 {
		return "-"
	}
	return s.Results[0].UserPrincipalName
}

func (s *summary) from() string {
	if len(s.Results) == 0 {
		return "-"
	}
	var parts []string
	for _, r := range s.Results {
		p := r.NIIPAddress + " (" + or(r.NICountry, "?") + ")"
		if !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	r := s.Results[0]
	return "non-interactive " + strings.Join(parts, ", ") + "; interactive " + r.InteractiveIP + " (" + or(r.InteractiveCountry, "?") + ")"
}

func (s *summary) when() string {
	return s.StartTime.UTC().Format("2006-01-02 15:04:05") + " – " + s.EndTime.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func (s *summary) incident() string { return or(s.IncidentId, "none") }

func (s *summary) rowText(i int) string {
	r := s.Results[i]
	return fmt.Sprintf("%s  %s from %s (%s), %s after interactive sign-in from %s (%s)",
		r.NISignInTime, or(r.AppDisplayName, "?"), r.NIIPAddress, or(r.NICountry, "?"), r.TimeSinceInteractive, r.InteractiveIP, or(r.InteractiveCountry, "?"))
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// TeamsBody is the request a Teams Workflows "When a Teams webhook request
// is received" flow posts to a channel: a message with one Adaptive Card
// (who, from where, when, the first rows, the incident), under MaxTeamsBody.
func TeamsBody(doc []byte) ([]byte, error) {
	s, err := parse(doc)
	if err != nil {
		return nil, err
	}
	for rows, desc := min(maxRows, len(s.Results)), 2000; ; {
		body, err := json.Marshal(teamsMessage(s, rows, desc))
		if err != nil || len(body) <= MaxTeamsBody {
			return body, err
		}
		if rows > 0 {
			rows--
		} else if desc > 100 {
			desc /= 2
		} else {
			return nil, fmt.Errorf("the Teams card is %d bytes, over %d", len(body), MaxTeamsBody)
		}
	}
}

type obj = map[string]any

func teamsMessage(s *summary, rows, desc int) obj {
	fact := func(title, value string) obj { return obj{"title": title, "value": cut(value, 1000)} }
	body := []any{
		obj{"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true, "text": cut(s.DisplayName, 300),
			"color": map[string]string{"High": "Attention", "Medium": "Warning"}[s.AlertSeverity]},
		obj{"type": "FactSet", "facts": []any{
			fact("Severity", s.AlertSeverity),
			fact("Who", s.who()),
			fact("From where", s.from()),
			fact("When", s.when()),
			fact("Evidence rows", strconv.Itoa(s.ExtendedProperties.ResultCount)),
			fact("Incident", s.incident()),
			fact("Alert", s.SystemAlertId+" (revision "+strconv.Itoa(s.Revision)+")"),
		}},
		obj{"type": "TextBlock", "wrap": true, "text": cut(s.Description, desc)},
	}
	if rows > 0 {
		body = append(body, obj{"type": "TextBlock", "weight": "Bolder", "text": fmt.Sprintf("First %d of %d rows", rows, s.ExtendedProperties.ResultCount), "separator": true})
		for i := range rows {
			body = append(body, obj{"type": "TextBlock", "wrap": true, "size": "Small", "fontType": "Monospace", "text": cut(s.rowText(i), 400)})
		}
	}
	return obj{
		"type": "message",
		"attachments": []any{obj{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content": obj{
				"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
				"type":    "AdaptiveCard",
				"version": "1.4",
				"msteams": obj{"width": "Full"},
				"body":    body,
			},
		}},
	}
}

// SlackBody is a Slack incoming-webhook message: text (the notification
// and fallback) and blocks.
func SlackBody(doc []byte) ([]byte, error) {
	s, err := parse(doc)
	if err != nil {
		return nil, err
	}
	text := fmt.Sprintf("[%s] %s", s.AlertSeverity, s.DisplayName)
	fields := []any{
		obj{"type": "mrkdwn", "text": "*Who*\n" + s.who()},
		obj{"type": "mrkdwn", "text": "*When*\n" + s.when()},
		obj{"type": "mrkdwn", "text": "*From where*\n" + cut(s.from(), 1900)},
		obj{"type": "mrkdwn", "text": "*Incident*\n" + s.incident()},
	}
	blocks := []any{
		obj{"type": "header", "text": obj{"type": "plain_text", "text": cut(text, 140)}},
		obj{"type": "section", "text": obj{"type": "mrkdwn", "text": cut(s.Description, 2900)}},
		obj{"type": "section", "fields": fields},
	}
	if n := min(maxRows, len(s.Results)); n > 0 {
		var b strings.Builder
		for i := range n {
			b.WriteString(s.rowText(i) + "\n")
		}
		blocks = append(blocks, obj{"type": "section", "text": obj{"type": "mrkdwn",
			"text": cut(fmt.Sprintf("*First %d of %d rows*\n```%s```", n, s.ExtendedProperties.ResultCount, b.String()), 2900)}})
	}
	blocks = append(blocks, obj{"type": "context", "elements": []any{obj{"type": "mrkdwn",
		"text": fmt.Sprintf("alert %s, revision %d · %s", s.SystemAlertId, s.Revision, s.Tactics)}}})
	return json.Marshal(obj{"text": cut(text, 3000), "blocks": blocks})
}
