package cli

import (
	"strings"
	"testing"
)

// TestBadXPathIsUsageBeforeAnyHost: a malformed --xpath or one with an
// undeclared prefix is bad input, found before any host is contacted
// (exit 2), not after a round trip to each host. The host here does not
// exist, so contacting it would be exit 4.
func TestBadXPathIsUsageBeforeAnyHost(t *testing.T) {
	tests := []struct {
		name, expr, want string
	}{
		{"syntax", "//p:[", `--xpath: xpath "//p:[": Missing ]`},
		{"undeclared prefix", "//q:State", `prefix "q" is not declared`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, withPassword(), "wsman", "get", "wmi/root/microsoft/bits/BitsClientJob", "-s", "JobId=x",
				"--xpath", tt.expr, "-H", "127.0.0.1:1", "-u", "admin")
			if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, "127.0.0.1:1") {
				t.Errorf("exit %d, stderr %q; want %d and a message with %q that names no host", r.code, r.stderr, ExitUsage, tt.want)
			}
		})
	}
}
