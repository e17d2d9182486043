package bitssim

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// wqlCond is one "Property op value" term of a WHERE clause.
type wqlCond struct {
	prop, op, value string
}

var (
	wqlSelect = regexp.MustCompile(`(?is)^\s*select\s+\*\s+from\s+(\w+)\s*(?:where\s+(.+?))?\s*$`)
	wqlTerm   = regexp.MustCompile(`(?is)^\s*(\w+)\s*(=|<>|!=|<=|>=|<|>)\s*('[^']*'|"[^"]*"|\d+|true|false)\s*$`)
	wqlAnd    = regexp.MustCompile(`(?i)\s+and\s+`)
)

// parseWQL understands the queries people send for BITS jobs:
// SELECT * FROM BitsClientJob [WHERE term [AND term]...], where a term
// compares a property with a number or a quoted string. Anything else is
// refused rather than answered wrongly.
func parseWQL(q string) ([]wqlCond, error) {
	m := wqlSelect.FindStringSubmatch(q)
	if m == nil {
		return nil, errors.New("only SELECT * FROM BitsClientJob [WHERE ...] is supported")
	}
	if !strings.EqualFold(m[1], "BitsClientJob") {
		return nil, fmt.Errorf("class %q does not exist in root\\microsoft\\bits", m[1])
	}
	if m[2] == "" {
		return nil, nil
	}
	var conds []wqlCond
	for _, t := range wqlAnd.Split(m[2], -1) {
		tm := wqlTerm.FindStringSubmatch(t)
		if tm == nil {
			return nil, fmt.Errorf("cannot parse the condition %q", t)
		}
		v := tm[3]
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') {
			v = v[1 : len(v)-1]
		}
		conds = append(conds, wqlCond{prop: tm[1], op: tm[2], value: v})
	}
	return conds, nil
}

// matchWQL reports whether the instance satisfies every condition.
func matchWQL(in *wsman.Instance, conds []wqlCond) bool {
	for _, c := range conds {
		p := findProp(in, c.prop)
		if p == nil || len(p.Values) != 1 || p.Values[0].Kind != wsman.KindText {
			return false
		}
		have := p.Values[0].Text
		var cmp int
		a, errA := strconv.ParseUint(have, 10, 64)
		b, errB := strconv.ParseUint(c.value, 10, 64)
		switch {
		case errA == nil && errB == nil:
			switch {
			case a < b:
				cmp = -1
			case a > b:
				cmp = 1
			}
		default:
			cmp = strings.Compare(strings.ToLower(have), strings.ToLower(c.value))
		}
		ok := false
		switch c.op {
		case "=":
			ok = cmp == 0
		case "<>", "!=":
			ok = cmp != 0
		case "<":
			ok = cmp < 0
		case "<=":
			ok = cmp <= 0
		case ">":
			ok = cmp > 0
		case ">=":
			ok = cmp >= 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// faultCannotProcessFilter is n:CannotProcessFilter (code 2150858778), as
// in fixture fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml:
// the WMI plug-in's provider fault and an __ExtendedStatus from WinMgmt
// naming the query.
func faultCannotProcessFilter(machine, query string, err error) *wsman.Fault {
	const reason = "The data source could not process the filter. The filter might be missing or it might be invalid. Change the filter and try the request again.  "
	ext := extendedStatus("ExecQuery", query, 0)
	ext.Props[3] = textProp("ProviderName", "WinMgmt")
	return &wsman.Fault{
		HTTPStatus: 500,
		Code:       "Sender",
		SubcodeNS:  wsman.NsEnumeration,
		Subcode:    "CannotProcessFilter",
		Reason:     reason,
		WSManCode:  wsmantest.CodeCannotProcessFilter,
		Machine:    machine,
		ProviderFault: &wsman.ProviderFault{
			Provider:  "WMI Provider",
			Path:      `%systemroot%\system32\WsmWmiPl.dll`,
			Text:      err.Error(),
			WSManCode: wsmantest.CodeCannotProcessFilter,
		},
		WMIError: ext,
	}
}
