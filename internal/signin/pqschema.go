package signin

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// pqKind tells how the values of a Parquet column are decoded.
type pqKind int

const (
	kindNull         pqKind = iota // every value null: Null (or unknown) logical type
	kindBytes                      // BYTE_ARRAY text
	kindInt32                      // INT32 integer (ResultType)
	kindInt64                      // INT64 integer (ResultType)
	kindTimestamp                  // INT64 TIMESTAMP (TimeGenerated)
	kindInt96                      // INT96 timestamp (TimeGenerated)
	kindFloat32                    // FLOAT (ResultType holding integers)
	kindFloat64                    // DOUBLE (ResultType holding integers)
	kindUUID                       // FIXED_LEN_BYTE_ARRAY(16) UUID, read as its text
	kindDecimalFixed               // FIXED_LEN_BYTE_ARRAY DECIMAL (ResultType holding integers)
	kindDecimalBytes               // BYTE_ARRAY DECIMAL (ResultType holding integers)
)

// timeUnit is the unit of an INT64 TIMESTAMP.
type timeUnit int

const (
	unitMillis timeUnit = iota
	unitMicros
	unitNanos
)

// pqMeta is one wanted column found in the file and how to read it.
type pqMeta struct {
	f        field
	leaf     int // Parquet leaf column index
	kind     pqKind
	phys     format.Type
	fixed    int // FIXED_LEN_BYTE_ARRAY value size
	unsigned bool
	bits     int8 // integer width of an Int logical type, 0 when none
	unit     timeUnit
	maxDef   byte
	pow      int64    // 10^scale of a DECIMAL ResultType, 0 when none or past int64
	bigPow   *big.Int // 10^scale of a DECIMAL ResultType held as bytes
}

// logical is a column's logical type, from its LogicalType annotation or, in
// files of older writers, its ConvertedType.
type logical struct {
	kind     logicalKind
	scale    int32
	bits     int8
	signed   bool
	unit     timeUnit
	unitOK   bool
	adjusted bool
	name     string // for errors
}

type logicalKind int

const (
	ltNone logicalKind = iota
	ltString
	ltTextual // ENUM, JSON, BSON: still text
	ltDecimal
	ltTimestamp
	ltInt
	ltNull
	ltUUID
	ltList
	ltMap
	ltOther // a type no column accepts (DATE, TIME, FLOAT16, ...)
)

func logicalOf(e *format.SchemaElement) logical {
	switch v := e.LogicalType.Value.(type) {
	case nil:
	case *format.StringType:
		return logical{kind: ltString, name: "String"}
	case *format.EnumType, *format.JsonType, *format.BsonType:
		return logical{kind: ltTextual, name: v.String()}
	case *format.DecimalType:
		return logical{kind: ltDecimal, scale: v.Scale, name: v.String()}
	case *format.TimestampType:
		l := logical{kind: ltTimestamp, adjusted: v.IsAdjustedToUTC, name: v.String(), unitOK: true}
		switch v.Unit.Value.(type) {
		case *format.MilliSeconds:
			l.unit = unitMillis
		case *format.MicroSeconds:
			l.unit = unitMicros
		case *format.NanoSeconds:
			l.unit = unitNanos
		default:
			l.unitOK = false
		}
		return l
	case *format.IntType:
		return logical{kind: ltInt, bits: v.BitWidth, signed: v.IsSigned, name: v.String()}
	case *format.NullType:
		return logical{kind: ltNull, name: "Null"}
	case *format.UUIDType:
		return logical{kind: ltUUID, name: "UUID"}
	case *format.ListType:
		return logical{kind: ltList, name: "List"}
	case *format.MapType:
		return logical{kind: ltMap, name: "Map"}
	default:
		return logical{kind: ltOther, name: v.String()}
	}
	if !e.ConvertedType.Valid {
		return logical{}
	}
	switch ct := e.ConvertedType.V; ct {
	case deprecated.UTF8:
		return logical{kind: ltString, name: "String"}
	case deprecated.Enum, deprecated.Json, deprecated.Bson:
		return logical{kind: ltTextual, name: convertedName(ct)}
	case deprecated.Decimal:
		return logical{kind: ltDecimal, scale: e.Scale.V, name: convertedName(ct)}
	case deprecated.TimestampMillis:
		return logical{kind: ltTimestamp, adjusted: true, unit: unitMillis, unitOK: true, name: convertedName(ct)}
	case deprecated.TimestampMicros:
		return logical{kind: ltTimestamp, adjusted: true, unit: unitMicros, unitOK: true, name: convertedName(ct)}
	case deprecated.Int8, deprecated.Int16, deprecated.Int32, deprecated.Int64:
		return logical{kind: ltInt, signed: true, bits: [...]int8{8, 16, 32, 64}[ct-deprecated.Int8], name: convertedName(ct)}
	case deprecated.Uint8, deprecated.Uint16, deprecated.Uint32, deprecated.Uint64:
		return logical{kind: ltInt, bits: [...]int8{8, 16, 32, 64}[ct-deprecated.Uint8], name: convertedName(ct)}
	case deprecated.List:
		return logical{kind: ltList, name: "List"}
	case deprecated.Map, deprecated.MapKeyValue:
		return logical{kind: ltMap, name: "Map"}
	default:
		return logical{kind: ltOther, name: convertedName(ct)}
	}
}

// resolveColumns finds the columns of table t among the top-level fields of
// the file's schema (its flattened elements, root first), by exact name, and
// checks their types. Other columns are never looked at, whatever their type.
//
// With extra, the columns of Record.Extra are read too; one of a type it
// cannot be read as is left unread (its values read as ""), not an error:
// the precision modes keep a pair whose columns they cannot read.
func resolveColumns(elems []format.SchemaElement, t Table, extra []string) ([numFields]*pqMeta, *colError) {
	var out [numFields]*pqMeta
	type top struct {
		elem int
		leaf int
	}
	byName := map[string]top{}
	if len(elems) == 0 {
		return out, &colError{f: fTimeGenerated, err: errors.New("corrupt schema: no root")}
	}
	leaf, next := 0, 1
	for range elems[0].NumChildren.V {
		if next >= len(elems) {
			break
		}
		n := elems[next].Name
		if _, dup := byName[n]; !dup {
			byName[n] = top{next, leaf}
		}
		var leaves int
		next, leaves = skipElement(elems, next, 0)
		leaf += leaves
	}
	fields, required := wanted(t, extra)
	for _, f := range fields {
		tp, ok := byName[fieldNames[f]]
		if !ok {
			if required[f] {
				return out, &colError{f: f, err: errMissingColumn}
			}
			continue
		}
		m, err := columnMeta(f, elems, tp.elem, tp.leaf)
		if err != nil && f.extra() {
			continue
		}
		if err != nil {
			return out, &colError{f: f, err: err}
		}
		out[f] = m
	}
	return out, nil
}

// skipElement returns the index after element i and its descendants, and
// their leaves. A corrupt child count cannot run past the list or recurse
// without end.
func skipElement(elems []format.SchemaElement, i, depth int) (next, leaves int) {
	e := &elems[i]
	if !e.NumChildren.Valid || e.NumChildren.V <= 0 || e.Type.Valid || depth > 64 {
		return i + 1, 1
	}
	next = i + 1
	for range e.NumChildren.V {
		if next >= len(elems) {
			break
		}
		var n int
		next, n = skipElement(elems, next, depth+1)
		leaves += n
	}
	return next, leaves
}

// columnMeta checks that element i (a top-level field whose first leaf is
// leaf) can be read as field f: text for strings, integers for ResultType,
// timestamps or ISO text for TimeGenerated.
func columnMeta(f field, elems []format.SchemaElement, i, leaf int) (*pqMeta, error) {
	e := &elems[i]
	lt := logicalOf(e)
	if !e.Type.Valid {
		name := "struct"
		switch lt.kind {
		case ltList:
			name = "list"
		case ltMap:
			name = "map"
		}
		return nil, fmt.Errorf("unsupported type %s", name)
	}
	if e.RepetitionType.Valid && e.RepetitionType.V == format.Repeated {
		return nil, fmt.Errorf("unsupported type list<%s>", typeName(e, lt))
	}
	m := &pqMeta{f: f, leaf: leaf, phys: e.Type.V, fixed: int(e.TypeLength.V)}
	if !e.RepetitionType.Valid || e.RepetitionType.V == format.Optional {
		m.maxDef = 1
	}
	if lt.kind == ltNull {
		m.kind = kindNull
		return m, nil
	}
	if !m.setKind(e, lt) {
		return nil, fmt.Errorf("unsupported type %s", typeName(e, lt))
	}
	return m, nil
}

// setKind sets how the values of m's column (element e, logical type lt)
// are decoded; false when they cannot be read as m.f.
func (m *pqMeta) setKind(e *format.SchemaElement, lt logical) bool {
	f := m.f
	phys := e.Type.V
	if lt.kind == ltDecimal && f == fResultType && lt.scale >= 0 &&
		(phys == format.ByteArray || phys == format.FixedLenByteArray) {
		// A DECIMAL holding integers, as Arrow and Spark writers store them.
		m.kind = kindDecimalFixed
		if phys == format.ByteArray {
			m.kind = kindDecimalBytes
		}
		m.bigPow = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(lt.scale)), nil)
		if m.bigPow.IsInt64() {
			m.pow = m.bigPow.Int64()
		}
		return true
	}
	switch phys {
	case format.ByteArray:
		switch lt.kind {
		case ltNone, ltString, ltTextual:
		default:
			return false
		}
		if f == fTimeGenerated || f.text() || f == fResultType {
			m.kind = kindBytes
			return true
		}
	case format.Int32, format.Int64:
		return m.setIntKind(phys, lt)
	case format.Int96:
		if f == fTimeGenerated && lt.kind == ltNone {
			m.kind = kindInt96
			return true
		}
	case format.Float, format.Double:
		// A float writer's ResultType: integral values have one meaning
		// (0.0 is success); a row holding a fraction is skipped.
		if lt.kind == ltNone && f == fResultType {
			m.kind = kindFloat64
			if phys == format.Float {
				m.kind = kindFloat32
			}
			return true
		}
	case format.FixedLenByteArray:
		if lt.kind == ltUUID && e.TypeLength.V == 16 && f.text() {
			m.kind = kindUUID
			return true
		}
	}
	return false
}

// setIntKind is setKind for an INT32 or INT64 column: a TIMESTAMP
// TimeGenerated, or a ResultType integer (plain, Int or DECIMAL).
func (m *pqMeta) setIntKind(phys format.Type, lt logical) bool {
	f := m.f
	if lt.kind == ltTimestamp {
		if f != fTimeGenerated || phys != format.Int64 || !lt.unitOK {
			return false
		}
		m.kind, m.unit = kindTimestamp, lt.unit
		return true
	}
	if f == fAutonomousSystemNumber && (lt.kind == ltNone || lt.kind == ltInt) {
		// Kusto's ASN is a string, but some writers store it as a number.
		m.bits, m.unsigned = lt.bits, lt.kind == ltInt && !lt.signed
		m.kind = kindInt64
		if phys == format.Int32 {
			m.kind = kindInt32
		}
		return true
	}
	if f != fResultType {
		return false
	}
	switch lt.kind {
	case ltNone:
	case ltInt:
		m.bits, m.unsigned = lt.bits, !lt.signed
	case ltDecimal:
		// A DECIMAL(p, s) holding integers (DuckDB writes them as INT32/INT64).
		if lt.scale < 0 || lt.scale > 18 {
			return false
		}
		m.pow = 1
		for range lt.scale {
			m.pow *= 10
		}
	default:
		return false
	}
	m.kind = kindInt64
	if phys == format.Int32 {
		m.kind = kindInt32
	}
	return true
}

// text tells the fields read only as text.
func (f field) text() bool { return f != fTimeGenerated && f != fResultType }

// typeName names a column's type for errors, in Arrow's words where one fits.
func typeName(e *format.SchemaElement, lt logical) string {
	if lt.kind == ltInt {
		if lt.signed {
			return fmt.Sprintf("int%d", lt.bits)
		}
		return fmt.Sprintf("uint%d", lt.bits)
	}
	var base string
	switch e.Type.V {
	case format.Boolean:
		base = "bool"
	case format.Int32:
		base = "int32"
	case format.Int64:
		base = "int64"
	case format.Int96:
		base = "int96"
	case format.Float:
		base = "float32"
	case format.Double:
		base = "float64"
	case format.ByteArray:
		base = "binary"
	case format.FixedLenByteArray:
		base = fmt.Sprintf("fixed_size_binary[%d]", e.TypeLength.V)
	default:
		base = e.Type.V.String()
	}
	if lt.kind != ltNone && lt.name != "" {
		base += " (" + lt.name + ")"
	}
	return base
}

var convertedNames = [...]string{"UTF8", "MAP", "MAP_KEY_VALUE", "LIST", "ENUM", "DECIMAL", "DATE", "TIME_MILLIS",
	"TIME_MICROS", "TIMESTAMP_MILLIS", "TIMESTAMP_MICROS", "UINT_8", "UINT_16", "UINT_32", "UINT_64", "INT_8",
	"INT_16", "INT_32", "INT_64", "JSON", "BSON", "INTERVAL"}

func convertedName(ct deprecated.ConvertedType) string {
	if ct >= 0 && int(ct) < len(convertedNames) {
		return convertedNames[ct]
	}
	return fmt.Sprintf("ConvertedType(%d)", int(ct))
}
