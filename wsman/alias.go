package wsman

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// resourceAliases are the short forms winrm.vbs and the PowerShell WSMan
// cmdlets expand (winrm help aliases); they never go on the wire.
var resourceAliases = map[string]string{
	"wmi":      ResourceWMI,
	"wmicimv2": ResourceWMI + "/root/cimv2",
	"cimv2":    ResourceCIM,
	"winrm":    "http://schemas.microsoft.com/wbem/wsman/1",
	"wsman":    "http://schemas.microsoft.com/wbem/wsman/1",
	"shell":    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}

// ResolveResourceURI expands an alias such as "wmi/root/microsoft/bits/BitsClientJob"
// or "wmicimv2/Win32_Service" into the full resource URI. Full http(s)
// URIs pass through unchanged. Aliases match case-insensitively, as in
// winrm.vbs; the rest keeps its case, because Windows compares the class
// name with the body's element name.
func ResolveResourceURI(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty resource URI")
	}
	if wellKnownURI(s) {
		// What the checks below would accept: visible ASCII only, a
		// constant scheme and host, and no escapes for url.Parse to
		// refuse. Every request resolves its URI, and these checks were
		// 5-7% of a Get.
		return s, nil
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		return "", fmt.Errorf("resource URI %q contains white space or a control character", s)
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("resource URI %q: %w", s, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("resource URI %q is not an http(s) URI with a host", s)
		}
		return s, nil
	}
	alias, rest, hasRest := strings.Cut(s, "/")
	base, ok := resourceAliases[strings.ToLower(alias)]
	if !ok {
		return "", fmt.Errorf("resource URI %q is neither a full URI nor an alias (wmi/…, wmicimv2/…, cimv2/…, winrm/…, wsman/…, shell/…)", s)
	}
	if !hasRest {
		return base, nil
	}
	if rest == "" || strings.HasPrefix(rest, "/") || strings.HasSuffix(rest, "/") || strings.Contains(rest, "//") {
		return "", fmt.Errorf("resource URI alias %q has an empty path segment", s)
	}
	return base + "/" + rest, nil
}

// wellKnownPrefixes are resource URI bases whose scheme and host are valid.
var wellKnownPrefixes = [...]string{
	"http://schemas.microsoft.com/wbem/wsman/1/",
	"http://schemas.dmtf.org/wbem/wsman/1/",
	"http://schemas.dmtf.org/wbem/wscim/1/",
}

// wellKnownURI reports whether s starts with one of wellKnownPrefixes and
// holds only visible ASCII other than a percent sign, so that neither the
// white-space check nor url.Parse could refuse it.
func wellKnownURI(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' {
			return false
		}
	}
	for _, p := range wellKnownPrefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
