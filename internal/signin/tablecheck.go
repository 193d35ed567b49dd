package signin

import (
	"encoding/json"
	"fmt"

	pq "github.com/parquet-go/parquet-go"
)

// The two tables' exports look alike: a file given as the wrong table reads
// without error and gives no rows, or false ones. Their content says which
// table they are, when it has these columns (Log Analytics exports and
// Parquet written with the whole schema do; a projection to the rule's
// columns does not): Type is the table's name, Category its diagnostic
// category, IsInteractive true only in SigninLogs. The resource-log form's
// category is checked on every record (diagnostic.go).
const (
	colType          = "Type"
	colCategory      = "Category"
	colIsInteractive = "IsInteractive"
)

// otherTable returns, when a row's Type, Category or IsInteractive (each
// "" or nil when absent) says it belongs to the other table than t, the
// column and the evidence.
func otherTable(t Table, typ, category string, interactive *bool) (column, evidence string, ok bool) {
	other := Interactive
	if t == Interactive {
		other = NonInteractive
	}
	switch {
	case typ == other.String():
		return colType, fmt.Sprintf("Type %q", typ), true
	case typ != "":
		return "", "", false // the right table, or a Type we do not know: the rows say
	case category == other.Category():
		return colCategory, fmt.Sprintf("Category %q", category), true
	case category != "":
		return "", "", false
	case interactive != nil && *interactive != (t == Interactive):
		return colIsInteractive, fmt.Sprintf("IsInteractive %v", *interactive), true
	}
	return "", "", false
}

func wrongTableError(file string, row int64, t Table, column, evidence string) error {
	other := Interactive
	if t == Interactive {
		other = NonInteractive
	}
	return &FormatError{File: file, Column: column, Row: row,
		Err: fmt.Errorf("%s says the file holds %s rows, not %s: the two tables' files swapped?", evidence, other, t)}
}

// checkJSONTable checks the first record of a JSON Lines file in Log
// Analytics' form against the table it is read as.
func (s *jsonlScan) checkJSONTable(buf []byte) error {
	var head struct {
		Type, Category string
		IsInteractive  *bool
	}
	// A cell of an unexpected type is no evidence either way.
	if json.Unmarshal(buf, &head) != nil {
		var raw struct{ Type, Category, IsInteractive json.RawMessage }
		if json.Unmarshal(buf, &raw) != nil {
			return nil
		}
		head.Type, _ = jsonString(raw.Type)
		head.Category, _ = jsonString(raw.Category)
		head.IsInteractive = nil
	}
	if col, ev, ok := otherTable(s.table, head.Type, head.Category, head.IsInteractive); ok {
		return wrongTableError(s.name, s.line, s.table, col, ev)
	}
	return nil
}

// checkParquetTable reads the first value of the file's Type, Category or
// IsInteractive column, when it has one, and checks it against the table:
// one page of one column, only for files written with those columns.
func checkParquetTable(name string, pf *pq.File, t Table) error {
	var typ, category string
	var interactive *bool
	for _, col := range []string{colType, colCategory, colIsInteractive} {
		v, ok := firstValue(pf, col)
		if !ok || v.IsNull() {
			continue
		}
		switch col {
		case colType:
			typ = v.String()
		case colCategory:
			category = v.String()
		case colIsInteractive:
			if v.Kind() == pq.Boolean {
				b := v.Boolean()
				interactive = &b
			}
		}
		if typ != "" {
			break
		}
	}
	if col, ev, ok := otherTable(t, typ, category, interactive); ok {
		return wrongTableError(name, 1, t, col, ev)
	}
	return nil
}

// firstValue is the first value of a top-level column, if the file has one
// and it can be read (a damaged page is the scan's to report, not ours).
func firstValue(pf *pq.File, col string) (v pq.Value, ok bool) {
	defer func() {
		if recover() != nil {
			v, ok = pq.Value{}, false
		}
	}()
	leaf, found := pf.Schema().Lookup(col)
	if !found || leaf.Node == nil || !leaf.Node.Leaf() {
		return pq.Value{}, false
	}
	for _, rg := range pf.RowGroups() {
		if rg.NumRows() == 0 {
			continue
		}
		pages := rg.ColumnChunks()[leaf.ColumnIndex].Pages()
		defer pages.Close()
		for {
			p, err := pages.ReadPage()
			if err != nil {
				return pq.Value{}, false
			}
			vals := make([]pq.Value, 1)
			n, _ := p.Values().ReadValues(vals)
			pq.Release(p)
			if n > 0 {
				return vals[0].Clone(), true
			}
		}
	}
	return pq.Value{}, false
}
