package bitssim

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// TestJobPropertiesAreTheInstances keeps the names a property list may
// use in step with what a job renders.
func TestJobPropertiesAreTheInstances(t *testing.T) {
	in := (&job{id: "{X}"}).instance()
	var names []string
	for _, p := range in.Props {
		names = append(names, p.Name)
	}
	if d := cmp.Diff(jobProperties, names); d != "" {
		t.Errorf("jobProperties (-list +instance):\n%s", d)
	}
}

func TestParseWQLPropertyList(t *testing.T) {
	for _, tc := range []struct {
		name    string
		q       string
		conds   []wqlCond
		invalid bool // errInvalidQuery
		refused bool // any other error
	}{
		{name: "star", q: "SELECT * FROM BitsClientJob"},
		{name: "one property", q: "SELECT JobId FROM BitsClientJob"},
		{name: "list", q: "SELECT JobId,State , BytesTransferred FROM BitsClientJob"},
		{name: "names in any case", q: "select jobid, STATE from bitsclientjob"},
		{name: "list and where", q: "SELECT JobId, State FROM BitsClientJob WHERE State = 4",
			conds: []wqlCond{{prop: "State", op: "=", value: "4"}}},
		{name: "unknown property", q: "SELECT JobId, Foo FROM BitsClientJob", invalid: true},
		{name: "file property", q: "SELECT RemoteUrl FROM BitsClientJob", invalid: true},
		{name: "trailing comma", q: "SELECT JobId, FROM BitsClientJob", refused: true},
		{name: "other class", q: "SELECT Name FROM Win32_Process", refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conds, err := parseWQL(tc.q)
			switch {
			case tc.invalid:
				if !errors.Is(err, errInvalidQuery) {
					t.Fatalf("err = %v, want an invalid query", err)
				}
			case tc.refused:
				if err == nil || errors.Is(err, errInvalidQuery) {
					t.Fatalf("err = %v, want a refusal that is not an invalid query", err)
				}
			case err != nil:
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.conds, conds, cmp.AllowUnexported(wqlCond{})); d != "" {
				t.Errorf("conditions (-want +got):\n%s", d)
			}
		})
	}
}

// TestEnumerateUnknownProperty: the provider answers an unknown name in a
// property list with the fault of any bad query, carrying WMI's
// WBEM_E_INVALID_QUERY.
func TestEnumerateUnknownProperty(t *testing.T) {
	p := newTestProvider(t, Config{})
	const q = "SELECT JobId, Foo FROM BitsClientJob"
	_, err := p.Enumerate(context.Background(), &wsmantest.EnumerateRequest{Request: req("", ""), WQL: q})
	f := fault(t, err, "CannotProcessFilter", wsman.CodeCannotProcess)
	if f.ProviderFault == nil || f.ProviderFault.Text != textInvalidQuery || f.ProviderFault.WSManCode != wsman.CodeCannotProcess {
		t.Errorf("provider fault %+v", f.ProviderFault)
	}
	got := map[string]string{}
	for _, pr := range f.WMIError.Props {
		got[pr.Name] = pr.Values[0].Text
	}
	want := map[string]string{"Description": "", "Operation": "ExecQuery", "ParameterInfo": q, "ProviderName": "WinMgmt",
		"StatusCode": strconv.FormatUint(uint64(wbemInvalidQuery), 10)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("__ExtendedStatus (-want +got):\n%s", d)
	}
}

// TestWQLProjectionOverTheWire enumerates the namespace URI with WQL as
// Get-CimInstance -Query does: a property list comes back as
// w:XmlFragment items holding exactly those properties in the query's
// order, SELECT * as the typed instances of a plain enumeration, and an
// unknown property as n:CannotProcessFilter.
func TestWQLProjectionOverTheWire(t *testing.T) {
	_, c := newBasicHost(t, HostConfig{Provider: Config{TimeScale: 0.001}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		in := wsman.NewInstance(ResourceURI)
		in.ClassName = "CreateJob_INPUT"
		in.Set("DisplayName", name)
		in.Set("Suspend", "true")
		out, err := c.Invoke(ctx, ResourceURI, "CreateJob", wsman.Options{}, in)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := out.String("JobId")
		ids = append(ids, id)
	}
	var raw []string
	hooked := wsman.WithReplyHook(ctx, func(_ string, body []byte) { raw = append(raw, string(body)) })
	enum := func(q string) ([]*wsman.Instance, error) {
		raw = nil
		var out []*wsman.Instance
		for it, err := range c.Enumerate(hooked, namespaceURI+"/*", wsman.EnumerateOptions{WQL: q, Optimize: true, MaxElements: 100}) {
			if err != nil {
				return nil, err
			}
			out = append(out, it.Instance)
		}
		return out, nil
	}

	items, err := enum("SELECT State, JobId, DisplayName FROM BitsClientJob WHERE DisplayName <> 'b'")
	if err != nil {
		t.Fatal(err)
	}
	type prop struct{ Name, Text string }
	var got [][]prop
	for _, in := range items {
		if !in.Fragment || in.ResourceURI != wsman.NsWSMan || in.ClassName != "XmlFragment" {
			t.Errorf("item %s %s fragment=%v, want a w:XmlFragment", in.ResourceURI, in.ClassName, in.Fragment)
		}
		var ps []prop
		for _, p := range in.Props {
			ps = append(ps, prop{p.Name, p.Values[0].Text})
		}
		got = append(got, ps)
	}
	want := [][]prop{
		{{"State", "3"}, {"JobId", ids[0]}, {"DisplayName", "a"}},
		{{"State", "3"}, {"JobId", ids[2]}, {"DisplayName", "c"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("projected items (-want +got):\n%s", d)
	}
	// The fragment's children are unqualified, as in the 2012 capture.
	wire := strings.Join(raw, "")
	for _, s := range []string{`<w:XmlFragment xmlns:w="` + wsman.NsWSMan + `"`, "><State>3</State><JobId>" + ids[0] + "</JobId><DisplayName>a</DisplayName></w:XmlFragment>"} {
		if !strings.Contains(wire, s) {
			t.Errorf("replies lack %s:\n%s", s, wire)
		}
	}

	all, err := enum("SELECT * FROM BitsClientJob")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Fragment || all[0].ClassName != "BitsClientJob" || len(all[0].Props) != len(jobProperties) {
		t.Errorf("SELECT *: %d items, first %s fragment=%v with %d properties", len(all), all[0].ClassName, all[0].Fragment, len(all[0].Props))
	}

	_, err = enum("SELECT JobId, Foo FROM BitsClientJob")
	var f *wsman.Fault
	if !errors.As(err, &f) || f.Subcode != "CannotProcessFilter" || f.WSManCode != wsman.CodeCannotProcess ||
		f.ProviderFault == nil || f.ProviderFault.Text != strings.TrimSpace(textInvalidQuery) {
		t.Fatalf("unknown property: %v", err)
	}
}
