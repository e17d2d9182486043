package wsman

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ChrisTrenkamp/goxpath"
	"github.com/ChrisTrenkamp/goxpath/tree"
	"github.com/ChrisTrenkamp/goxpath/tree/xmltree"
)

// DefaultXPathNamespaces are the prefixes EvalXPath knows without being
// told, the ones Windows uses in its replies.
var DefaultXPathNamespaces = map[string]string{
	"s":   NsSOAP,
	"a":   NsAddressing,
	"w":   NsWSMan,
	"p":   NsWSMV,
	"n":   NsEnumeration,
	"x":   NsTransfer,
	"f":   NsWSManFault,
	"cim": NsCIM,
	"xsi": NsXSI,
}

// EvalXPath evaluates a user-supplied XPath 1.0 expression over doc and
// returns the string value of each selected node, or the one value of a
// boolean, number or string expression. ns adds or overrides prefixes of
// DefaultXPathNamespaces. A prefix that is not declared is an error:
// goxpath would silently select nothing.
//
// It serves the CLI's --xpath and test matchers, not the hot path: goxpath
// is several times slower than etree and has no depth limit, so the
// document is first checked with the same limits as any reply.
func EvalXPath(doc []byte, expr string, ns map[string]string) ([]string, error) {
	all := maps.Clone(DefaultXPathNamespaces)
	maps.Copy(all, ns)
	for _, p := range xpathPrefixes(expr) {
		if _, ok := all[p]; !ok {
			known := slices.Sorted(maps.Keys(all))
			return nil, fmt.Errorf("xpath %q: prefix %q is not declared (known: %s)", expr, p, strings.Join(known, ", "))
		}
	}
	xp, err := goxpath.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("xpath %q: %w", expr, err)
	}
	if _, err := readXML(doc); err != nil {
		return nil, fmt.Errorf("xpath %q: parse document: %w", expr, err)
	}
	root, err := xmltree.ParseXML(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("xpath %q: parse document: %w", expr, err)
	}
	res, err := xp.Exec(root, func(o *goxpath.Opts) { o.NS = all })
	if err != nil {
		return nil, fmt.Errorf("xpath %q: %w", expr, err)
	}
	switch r := res.(type) {
	case tree.NodeSet:
		out := make([]string, len(r))
		for i, n := range r {
			out[i] = n.ResValue()
		}
		return out, nil
	default:
		return []string{res.String()}, nil
	}
}

// xpathPrefixes returns the namespace prefixes used in QNames of expr
// (name tests such as w:Items, attribute names such as @xsi:nil), skipping
// string literals and axis separators (child::).
func xpathPrefixes(expr string) []string {
	var out []string
	isName := func(c byte) bool {
		return c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
	}
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c == '\'' || c == '"' {
			if j := strings.IndexByte(expr[i+1:], c); j >= 0 {
				i += j + 1
				continue
			}
			return out
		}
		if c != ':' || i == 0 || i+1 >= len(expr) || expr[i+1] == ':' || expr[i-1] == ':' {
			continue
		}
		j := i
		for j > 0 && isName(expr[j-1]) {
			j--
		}
		if j == i || (expr[j] >= '0' && expr[j] <= '9') {
			continue
		}
		if p := expr[j:i]; !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
