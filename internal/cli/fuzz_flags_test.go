package cli

import (
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/wsman"
)

// FuzzParsePairs feeds arbitrary -s/-v flag values through the parser and
// on into a request instance: a pair is either refused as a usage error
// naming the flag, or kept with its name trimmed and its value exactly as
// given after the first '='.
func FuzzParsePairs(f *testing.F) {
	for _, s := range []string{"Name=Spooler", "Name=", "=v", "a b=c", "x==y", " N = v ", "Name", "<x>=1", "A=1\x00\xff"} {
		f.Add(s, "StartMode=Auto")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		pairs, err := parsePairs("-v", []string{a, b})
		if err != nil {
			if ExitCode(err) != ExitUsage || !strings.HasPrefix(err.Error(), "-v ") {
				t.Fatalf("error %v is not a usage error naming -v", err)
			}
			return
		}
		if len(pairs) != 2 {
			t.Fatalf("%d pairs from 2 flags", len(pairs))
		}
		for i, in := range []string{a, b} {
			_, value, _ := strings.Cut(in, "=")
			name := pairs[i][0]
			if name == "" || name != strings.TrimSpace(name) || strings.ContainsAny(name, " <>&\"'/") || pairs[i][1] != value {
				t.Fatalf("%q parsed as %q", in, pairs[i])
			}
		}
		in := wsman.NewInstance("http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service")
		applyValues(in, pairs)
		_ = in.Element()
		_ = selectorsFrom(pairs)
	})
}
