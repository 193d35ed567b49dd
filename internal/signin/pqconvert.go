package signin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
	"unsafe"
)

// dictValue is dictionary entry x, converted on first use.
func (c *pqReader) dictValue(x int32) (string, time.Time, error) {
	if x < 0 || int(x) >= c.dictLen {
		return "", time.Time{}, fmt.Errorf("dictionary index %d out of range", x)
	}
	if c.dictGen[x] != c.gen {
		var s string
		var tm time.Time
		var err error
		if c.inPlace() {
			// The dictionary is garbage collected, not pooled: text
			// aliasing it stays valid.
			s = c.inPlaceText(c.dictVals.bytes(int(x)))
		} else {
			s, tm, err = c.convert(&c.dictVals, int(x))
		}
		if err != nil {
			if c.dictBad == nil {
				c.dictBad = map[int32]error{}
			}
			c.dictBad[x] = err
		}
		if c.meta.f == fTimeGenerated {
			c.dictTime[x] = tm
		} else {
			c.dictStr[x] = s
		}
		c.dictGen[x] = c.gen
	}
	if err := c.dictBad[x]; err != nil {
		return "", time.Time{}, err
	}
	if c.meta.f == fTimeGenerated {
		return "", c.dictTime[x], nil
	}
	return c.dictStr[x], time.Time{}, nil
}

// convert reads value i of v as the column's text (or, for TimeGenerated,
// time); err is a value of no clear meaning. Text may alias v.
func (c *pqReader) convert(v *rawValues, i int) (string, time.Time, error) {
	m := c.meta
	switch m.kind {
	case kindBytes:
		b := v.bytes(i)
		if m.f != fTimeGenerated {
			return c.inPlaceText(b), time.Time{}, nil
		}
		if len(b) == 0 {
			return "", time.Time{}, nil
		}
		tm, err := parseTime(unsafe.String(unsafe.SliceData(b), len(b)))
		return "", tm, err
	case kindInt32:
		s, err := c.resultInt(int64(v.int32(i)), 32)
		return s, time.Time{}, err
	case kindInt64:
		s, err := c.resultInt(v.int64(i), 64)
		return s, time.Time{}, err
	case kindTimestamp:
		// Local (not UTC-adjusted) wall-clock times are taken as UTC, as
		// Kusto does.
		x := v.int64(i)
		switch m.unit {
		case unitMillis:
			return "", time.UnixMilli(x).UTC(), nil
		case unitMicros:
			return "", time.UnixMicro(x).UTC(), nil
		}
		return "", time.Unix(0, x).UTC(), nil
	case kindInt96:
		ns, err := int96Nanos(v.data[12*i : 12*i+12])
		if err != nil {
			return "", time.Time{}, err
		}
		return "", time.Unix(0, ns).UTC(), nil
	case kindFloat32:
		s, err := c.floatText(float64(math.Float32frombits(binary.LittleEndian.Uint32(v.data[4*i:]))))
		return s, time.Time{}, err
	case kindFloat64:
		s, err := c.floatText(math.Float64frombits(binary.LittleEndian.Uint64(v.data[8*i:])))
		return s, time.Time{}, err
	case kindDecimalFixed, kindDecimalBytes:
		s, err := c.decimalBytesText(v.bytes(i))
		return s, time.Time{}, err
	case kindUUID:
		b := v.bytes(i)
		if len(b) != 16 {
			return "", time.Time{}, fmt.Errorf("UUID of %d bytes", len(b))
		}
		c.num = uuidText(c.num[:0], b)
		return c.textBytes(c.num), time.Time{}, nil
	}
	return "", time.Time{}, fmt.Errorf("unexpected column kind %d", m.kind)
}

// text copies s (which may alias a page buffer) into the shared blocks.
func (c *pqReader) text(s string) string {
	if s == "" {
		return ""
	}
	return c.blob.clone(s)
}

func (c *pqReader) textBytes(b []byte) string {
	return c.text(unsafe.String(unsafe.SliceData(b), len(b)))
}

const nanosPerDay = 86400 * 1_000_000_000

// julianUnixEpoch is the Julian day of 1970-01-01.
const julianUnixEpoch = 2440588

// int96Nanos reads a legacy INT96 timestamp (nanoseconds of the day, then
// the Julian day, little-endian) as nanoseconds since the Unix epoch; an
// error past the range of int64 nanoseconds.
func int96Nanos(b []byte) (int64, error) {
	nanosOfDay := binary.LittleEndian.Uint64(b[:8])
	if nanosOfDay >= nanosPerDay {
		return 0, fmt.Errorf("invalid INT96 nanoseconds of day: %d", nanosOfDay)
	}
	days := int64(binary.LittleEndian.Uint32(b[8:])) - julianUnixEpoch
	ns := int64(nanosOfDay)
	const maxDays = math.MaxInt64 / nanosPerDay
	if days > maxDays || days == maxDays && ns > math.MaxInt64%nanosPerDay {
		return 0, errors.New("INT96 timestamp is outside the nanosecond range")
	}
	const minDays = math.MinInt64 / nanosPerDay
	if days < minDays {
		// Division truncates toward zero: the earliest time falls on the
		// day before minDays.
		minNanos := int64(nanosPerDay + math.MinInt64%nanosPerDay)
		if days != minDays-1 || ns < minNanos {
			return 0, errors.New("INT96 timestamp is outside the nanosecond range")
		}
		return math.MinInt64 + ns - minNanos, nil
	}
	return days*nanosPerDay + ns, nil
}

// resultInt is the text of an integer ResultType value v, stored physical
// bits wide.
func (c *pqReader) resultInt(v int64, physical int8) (string, error) {
	switch {
	case c.meta.pow > 0:
		return c.decimalText(v)
	case c.meta.unsigned:
		return c.uintText(truncUint(v, c.meta.bits, physical)), nil
	}
	return c.intText(truncInt(v, c.meta.bits)), nil
}

// floatText reads an integral float as its integer text; a fraction (or NaN,
// or an infinity) has no clear ResultType meaning.
func (c *pqReader) floatText(v float64) (string, error) {
	if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
		return "", fmt.Errorf("want an integer, got %v", v)
	}
	return c.intText(int64(v)), nil
}

// decimalText reads the unscaled DECIMAL value v as its integer text.
func (c *pqReader) decimalText(v int64) (string, error) {
	if v%c.meta.pow != 0 {
		return "", fmt.Errorf("want an integer, got %s", strconv.FormatFloat(float64(v)/float64(c.meta.pow), 'f', -1, 64))
	}
	return c.intText(v / c.meta.pow), nil
}

// decimalBytesText reads a DECIMAL's unscaled big-endian two's complement
// bytes as its integer text.
func (c *pqReader) decimalBytesText(v []byte) (string, error) {
	switch {
	case len(v) == 0:
		return "", errors.New("empty DECIMAL value")
	case len(v) <= 8 && c.meta.pow > 0:
		x := int64(int8(v[0]))
		for _, b := range v[1:] {
			x = x<<8 | int64(b)
		}
		return c.decimalText(x)
	}
	n := new(big.Int).SetBytes(v)
	if v[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(v))))
	}
	q, r := new(big.Int).QuoRem(n, c.meta.bigPow, new(big.Int))
	if r.Sign() != 0 {
		return "", fmt.Errorf("want an integer, got %s", new(big.Rat).SetFrac(n, c.meta.bigPow).FloatString(len(c.meta.bigPow.String())-1))
	}
	return c.text(q.String()), nil
}

// uuidText appends the canonical 8-4-4-4-12 lowercase text of a 16-byte UUID.
func uuidText(dst []byte, u []byte) []byte {
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// smallInts are the texts of the common small ResultType codes (0 is
// success), so that a plain integer column does not copy them per row.
var smallInts = func() (s [256]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return
}()

// intTextString is the integer text n (as numericInt writes it).
func (c *pqReader) intTextString(n string) string {
	if len(n) <= 3 {
		if v, err := strconv.Atoi(n); err == nil && v >= 0 && v < len(smallInts) {
			return smallInts[v]
		}
	}
	return c.text(n)
}

func (c *pqReader) intText(v int64) string {
	if v >= 0 && v < int64(len(smallInts)) {
		return smallInts[v]
	}
	c.num = strconv.AppendInt(c.num[:0], v, 10)
	return c.textBytes(c.num)
}

func (c *pqReader) uintText(v uint64) string {
	if v < uint64(len(smallInts)) {
		return smallInts[v]
	}
	c.num = strconv.AppendUint(c.num[:0], v, 10)
	return c.textBytes(c.num)
}

// truncInt narrows v to a signed Int logical type of the given width, as
// the Arrow conversion does.
func truncInt(v int64, bits int8) int64 {
	switch bits {
	case 8:
		return int64(int8(v))
	case 16:
		return int64(int16(v))
	case 32:
		return int64(int32(v))
	}
	return v
}

// truncUint reads v as an unsigned integer of an Int logical type of the
// given width (physical is the storage width when bits is unknown).
func truncUint(v int64, bits int8, physical int8) uint64 {
	if bits == 0 {
		bits = physical
	}
	switch bits {
	case 8:
		return uint64(uint8(v))
	case 16:
		return uint64(uint16(v))
	case 32:
		return uint64(uint32(v))
	}
	return uint64(v)
}
