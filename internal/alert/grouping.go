package alert

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/tokenpivot/tokenpivot/internal/detect"
	"github.com/tokenpivot/tokenpivot/internal/rule"
	"github.com/tokenpivot/tokenpivot/internal/signin"
)

// rowHash is a 16-byte SHA-256 prefix of a rowKey.
type rowHash [16]byte

func hashRow(r detect.Result) rowHash {
	sum := sha256.Sum256([]byte(rowKey(r)))
	return rowHash(sum[:16])
}

func compareHash(a, b rowHash) int { return bytes.Compare(a[:], b[:]) }

// hashID formats the SHA-256 of the NUL-joined parts as a GUID (RFC 9562
// version 8, the version for custom ids).
func hashID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// interactiveKey identifies the interactive sign-in of a row: its Id, else
// its time and IP.
func interactiveKey(r detect.Result) string {
	// A position id (a row without Id) is not part of the alert's identity:
	// the same sign-in exported twice is one alert with both rows as evidence.
	if r.InteractiveId != "" && !signin.IsPositionId(r.InteractiveId) {
		return "id:" + r.InteractiveId
	}
	return "at:" + detect.FormatTime(r.InteractiveTime) + "|" + r.InteractiveIP
}

// AlertID is the SystemAlertId of the alert covering row r by default:
// hash(rule id, UPN, interactive row, NIIPAddress).
func AlertID(ruleID string, r detect.Result) string {
	return hashID(ruleID, r.UserPrincipalName, interactiveKey(r), r.NIIPAddress)
}

// rowKey dedups evidence: the two source rows' Ids, else the whole row.
// A position id names a place in a blob, whose content a rewrite can
// change, so with one the row's content is part of the key too.
func rowKey(r detect.Result) string {
	if r.InteractiveId != "" && r.NonInteractiveId != "" {
		ids := "ids:" + r.InteractiveId + "\x00" + r.NonInteractiveId
		if !signin.IsPositionId(r.InteractiveId) && !signin.IsPositionId(r.NonInteractiveId) {
			return ids
		}
		return ids + "\x00" + detect.ContentKey(r)
	}
	return "row:" + detect.ContentKey(r)
}

// rowAlertID is the SystemAlertId of a one-row alert (AlertPerResult).
func rowAlertID(ruleID string, r detect.Result) string {
	return hashID(ruleID, "row", rowKey(r))
}

// Group builds the alerts of a set of result rows: by default one alert per
// (UserPrincipalName, interactive sign-in, NIIPAddress) holding every
// matching row as evidence; with perRow, one alert per row. Duplicate rows
// (same source Ids, else identical) count once. Alerts come out in query
// order of their first row. The cost is linear in the rows (plus one sort):
// rows dedup through a set of row keys, never a scan of the evidence.
func Group(r *rule.Rule, rows []detect.Result, perRow bool) []Document {
	// Rows in query order first, so that each alert renders from its
	// earliest row whatever order the rows came in, and its evidence is
	// appended already sorted.
	rows = slices.Clone(rows)
	detect.Sort(rows)
	type acc struct {
		rows []detect.Result
		keys []rowHash
		seen map[rowHash]struct{}
	}
	byID := map[string]*acc{}
	var order []string
	for _, row := range rows {
		id := AlertID(r.ID, row)
		if perRow {
			id = rowAlertID(r.ID, row)
		}
		a, ok := byID[id]
		if !ok {
			a = &acc{seen: map[rowHash]struct{}{}}
			byID[id] = a
			order = append(order, id)
		}
		k := hashRow(row)
		if _, dup := a.seen[k]; dup {
			continue
		}
		a.seen[k] = struct{}{}
		a.rows = append(a.rows, row)
		a.keys = append(a.keys, k)
	}
	out := make([]Document, 0, len(order))
	for _, id := range order {
		a := byID[id]
		out = append(out, *newDocument(r, id, a.rows, a.keys))
	}
	slices.SortStableFunc(out, func(a, b Document) int {
		return cmp.Or(detect.Compare(a.Results[0], b.Results[0]), strings.Compare(a.SystemAlertId, b.SystemAlertId))
	})
	return out
}
