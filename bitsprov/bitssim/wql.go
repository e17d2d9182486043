package bitssim

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
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
	wqlSelect = regexp.MustCompile(`(?is)^\s*select\s+(\*|\w+(?:\s*,\s*\w+)*)\s+from\s+(\w+)\s*(?:where\s+(.+?))?\s*$`)
	wqlComma  = regexp.MustCompile(`\s*,\s*`)
	wqlTerm   = regexp.MustCompile(`(?is)^\s*(\w+)\s*(=|<>|!=|<=|>=|<|>)\s*('[^']*'|"[^"]*"|\d+|true|false)\s*$`)
	wqlAnd    = regexp.MustCompile(`(?i)\s+and\s+`)
)

// jobProperties are BitsClientJob's properties, as job.instance renders
// them: the names a WQL property list may use.
var jobProperties = []string{
	"BytesTotal", "BytesTransferred", "Description", "DisplayName", "Files",
	"FilesTotal", "FilesTransferred", "JobCompletionTime", "JobCreationTime",
	"JobId", "JobLastModificationTime", "MinimumRetryDelay", "NoProgressTimeout",
	"Owner", "Priority", "State", "TransientErrorCount",
}

// errInvalidQuery marks a query WMI refuses as WBEM_E_INVALID_QUERY
// (0x80041017): a property list naming a property the class does not
// have. (ExecQuery of "SELECT Foo FROM Win32_Service" fails so; WMI
// checks the select list against the class before asking the provider.)
var errInvalidQuery = errors.New("invalid query")

// parseWQL understands the queries people send for BITS jobs:
// SELECT * | prop[, prop…] FROM BitsClientJob [WHERE term [AND term]...],
// where a term compares a property with a number or a quoted string.
// Anything else is refused rather than answered wrongly. A property list
// is only checked here: the server (wsmantest) turns each instance into
// the w:XmlFragment of those properties, in the query's order, as WinRM
// answers such a query.
func parseWQL(q string) ([]wqlCond, error) {
	m := wqlSelect.FindStringSubmatch(q)
	if m == nil {
		return nil, errors.New("only SELECT * | prop[, prop...] FROM BitsClientJob [WHERE ...] is supported")
	}
	if !strings.EqualFold(m[2], "BitsClientJob") {
		return nil, fmt.Errorf("class %q does not exist in root\\microsoft\\bits", m[2])
	}
	if m[1] != "*" {
		for _, name := range wqlComma.Split(m[1], -1) {
			if !slices.ContainsFunc(jobProperties, func(p string) bool { return strings.EqualFold(p, name) }) {
				return nil, fmt.Errorf("%w: BitsClientJob has no property %q", errInvalidQuery, name)
			}
		}
	}
	if m[3] == "" {
		return nil, nil
	}
	var conds []wqlCond
	for _, t := range wqlAnd.Split(m[3], -1) {
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

// wbemInvalidQuery is WBEM_E_INVALID_QUERY.
const wbemInvalidQuery uint32 = 0x80041017

// textInvalidQuery is WinRM's message for a WQL query WMI refused, as
// wsmantest words it.
const textInvalidQuery = "The WS-Management service cannot process the request. The WQL query is invalid. "

// faultCannotProcessFilter is n:CannotProcessFilter (code 2150858778), as
// in fixture fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml:
// the WMI plug-in's provider fault and an __ExtendedStatus from WinMgmt
// naming the query.
//
// A query WMI itself refuses as invalid (errInvalidQuery) gets the same
// fault with the WMI status WBEM_E_INVALID_QUERY (0x80041017) in the
// __ExtendedStatus and WinRM's text for an invalid WQL query, as
// wsmantest answers a query it cannot parse.
func faultCannotProcessFilter(machine, query string, err error) *wsman.Fault {
	const reason = "The data source could not process the filter. The filter might be missing or it might be invalid. Change the filter and try the request again.  "
	var status uint32
	text := err.Error()
	if errors.Is(err, errInvalidQuery) {
		status = wbemInvalidQuery
		text = textInvalidQuery
	}
	ext := extendedStatus("ExecQuery", query, status)
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
			Text:      text,
			WSManCode: wsmantest.CodeCannotProcessFilter,
		},
		WMIError: ext,
	}
}
