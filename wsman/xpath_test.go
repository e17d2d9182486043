package wsman

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEvalXPath(t *testing.T) {
	pull := readWire(t, "wmi-pull-response-mid-sequence_Win32_Service_2012.xml")
	svcNS := map[string]string{"svc": wmiSvc}
	for _, tc := range []struct {
		name, expr string
		ns         map[string]string
		want       []string
	}{
		{"action", "/s:Envelope/s:Header/a:Action", nil, []string{ActionPullResponse}},
		{"count", "count(//n:Items/*)", nil, []string{"50"}},
		{"context", "string(//n:EnumerationContext)", nil, []string{"uuid:69C1232D-0042-447B-BBA4-F6DD9324B110"}},
		{"predicate", "//svc:Win32_Service[svc:Name='ALG']/svc:StartMode", svcNS, []string{"Manual"}},
		{"override p", "//p:Win32_Service[p:Name='ALG']/p:State", map[string]string{"p": wmiSvc}, []string{"Stopped"}},
		{"boolean", "boolean(//n:EndOfSequence)", nil, []string{"false"}},
		{"literal with colon", "//svc:Win32_Service[svc:PathName='a:b']", svcNS, []string{}},
		{"axis", "count(/child::s:Envelope/child::s:Body)", nil, []string{"1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EvalXPath(pull, tc.expr, tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, tc := range []struct{ name, doc, expr, wantErr string }{
		{"unknown prefix", string(pull), "//q:Name", `xpath "//q:Name": prefix "q" is not declared (known: a, cim, f, n, p, s, w, x, xsi)`},
		{"syntax", string(pull), "//s:Body[", `xpath "//s:Body["`},
		{"not XML", "<a><b></a>", "//a", `xpath "//a": parse document:`},
		{"too deep", strings.Repeat("<a>", 300) + strings.Repeat("</a>", 300), "//a", `xpath "//a": parse document:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EvalXPath([]byte(tc.doc), tc.expr, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want prefix %q", err, tc.wantErr)
			}
		})
	}
}
