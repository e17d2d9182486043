package wsman

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestNewMessageIDFormat: "uuid:" and an upper-case random (version 4)
// UUID, distinct each time.
func TestNewMessageIDFormat(t *testing.T) {
	re := regexp.MustCompile(`^uuid:[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := newMessageID()
		if !re.MatchString(id) {
			t.Fatalf("MessageID %q", id)
		}
		u, err := uuid.Parse(strings.TrimPrefix(id, "uuid:"))
		if err != nil || "uuid:"+strings.ToUpper(u.String()) != id {
			t.Fatalf("MessageID %q does not round-trip through uuid.Parse (%v)", id, err)
		}
		if seen[id] {
			t.Fatalf("MessageID %q repeated", id)
		}
		seen[id] = true
	}
	if n := testing.AllocsPerRun(100, func() { _ = newMessageID() }); n != 1 && !raceEnabled {
		t.Errorf("newMessageID allocates %v times, want 1", n)
	}
}

// TestResolveWellKnownURIs: the shortcut for well-known prefixes answers
// exactly what url.Parse's path answers, escapes included.
func TestResolveWellKnownURIs(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientJob", want: "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientJob"},
		{in: "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_Service?x=1#y", want: "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_Service?x=1#y"},
		{in: "http://schemas.microsoft.com/wbem/wsman/1/wmi/a%20b", want: "http://schemas.microsoft.com/wbem/wsman/1/wmi/a%20b"},
		{in: "http://schemas.microsoft.com/wbem/wsman/1/wmi/a%zz", err: `resource URI "http://schemas.microsoft.com/wbem/wsman/1/wmi/a%zz": parse "http://schemas.microsoft.com/wbem/wsman/1/wmi/a%zz": invalid URL escape "%zz"`},
		{in: "http://schemas.microsoft.com/wbem/wsman/1/wmi/caf\u00e9", want: "http://schemas.microsoft.com/wbem/wsman/1/wmi/caf\u00e9"},
		{in: "http://schemas.microsoft.com/wbem/wsman/1/wmi/a\u00a0b", err: `resource URI "http://schemas.microsoft.com/wbem/wsman/1/wmi/a\u00a0b" contains white space or a control character`},
		{in: "http://schemas.microsoft.com/wbem/wsman/1/wmi/a b", err: `resource URI "http://schemas.microsoft.com/wbem/wsman/1/wmi/a b" contains white space or a control character`},
	} {
		got, err := ResolveResourceURI(tc.in)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("ResolveResourceURI(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ResolveResourceURI(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
