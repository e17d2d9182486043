package wsman

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDatetime parses a cim:Datetime: RFC 3339 with a fraction of any
// length and any offset ("2013-04-15T16:28:43.488171Z",
// "2014-04-03T14:45:50.46875+08:00"), a bare xs:date, or the DMTF
// CIM_DATETIME form WMI uses in plain strings ("20130309025732.000000+000").
func ParseDatetime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02Z07:00", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, ok := parseDMTFDatetime(s); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a datetime (want RFC 3339, e.g. 2013-04-15T16:28:43.488171Z)", s)
}

// parseDMTFDatetime reads yyyymmddHHMMSS.mmmmmmsUUU (UUU = minutes offset).
func parseDMTFDatetime(s string) (time.Time, bool) {
	if len(s) != 25 || s[14] != '.' || (s[21] != '+' && s[21] != '-') {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102150405.000000", s[:21])
	if err != nil {
		return time.Time{}, false
	}
	off, err := strconv.Atoi(s[22:])
	if err != nil {
		return time.Time{}, false
	}
	if s[21] == '-' {
		off = -off
	}
	loc := time.FixedZone("", off*60)
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc), true
}

// ParseDuration parses an xs:duration such as "P0DT0H1M40S", "PT20S" or
// "PT60.000S" (also negative "-PT1S"). Years and months have no fixed
// length and are refused unless zero.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	bad := func(why string) (time.Duration, error) {
		return 0, fmt.Errorf("%q is not an xs:duration (%s)", orig, why)
	}
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	if !strings.HasPrefix(s, "P") || len(s) < 2 {
		return bad("must start with P")
	}
	s = s[1:]
	var total float64
	var exact time.Duration
	inTime, any := false, false
	for len(s) > 0 {
		if s[0] == 'T' {
			if inTime {
				return bad("two T separators")
			}
			inTime = true
			s = s[1:]
			if len(s) == 0 {
				return bad("T without a time part")
			}
			continue
		}
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 || i == len(s) {
			return bad("number without a unit")
		}
		num, unit := s[:i], s[i]
		s = s[i+1:]
		any = true
		var unitDur time.Duration
		switch {
		case !inTime && unit == 'Y', !inTime && unit == 'M':
			if n, err := strconv.ParseFloat(num, 64); err != nil || n != 0 {
				return bad("years and months have no fixed length")
			}
			continue
		case !inTime && unit == 'D':
			unitDur = 24 * time.Hour
		case inTime && unit == 'H':
			unitDur = time.Hour
		case inTime && unit == 'M':
			unitDur = time.Minute
		case inTime && unit == 'S':
			unitDur = time.Second
		default:
			return bad("unknown unit " + string(unit))
		}
		if strings.Contains(num, ".") {
			if unit != 'S' {
				return bad("fraction outside seconds")
			}
			whole, frac, _ := strings.Cut(num, ".")
			if strings.Contains(frac, ".") {
				return bad("bad number")
			}
			w, err := strconv.ParseInt(whole, 10, 64)
			if err != nil && whole != "" {
				return bad("bad number")
			}
			frac = (frac + "000000000")[:9]
			ns, err := strconv.ParseInt(frac, 10, 64)
			if err != nil {
				return bad("bad fraction")
			}
			exact += time.Duration(w)*time.Second + time.Duration(ns)
			total += float64(w)
			continue
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return bad("bad number")
		}
		total += float64(n) * unitDur.Seconds()
		exact += time.Duration(n) * unitDur
	}
	if !any {
		return bad("no components")
	}
	if total > float64(1<<63-1)/1e9 {
		return bad("too large")
	}
	if neg {
		exact = -exact
	}
	return exact, nil
}

// FormatDuration renders d as an xs:duration with milliseconds, the way
// WinRM clients send OperationTimeout ("PT60.000S"). Negative durations are
// rendered with a leading minus; callers that must not send one clamp first.
func FormatDuration(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	ms := d.Milliseconds()
	return fmt.Sprintf("%sPT%d.%03dS", sign, ms/1000, ms%1000)
}
