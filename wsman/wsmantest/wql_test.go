package wsmantest_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// gizmoNS is the namespace of class Gizmo, a class whose provider
// declares its properties (wsmantest.Schema).
const gizmoNS = wsman.ResourceWMI + "/root/typed"

// gizmos serves four fixed Gizmo instances and counts the Enumerate
// calls that reach it.
type gizmos struct {
	enumerates atomic.Int32
}

func (*gizmos) Keys() []string { return []string{"Name"} }

func (*gizmos) Properties() []wsmantest.PropertyDecl {
	return []wsmantest.PropertyDecl{
		{Name: "Enabled", Type: "boolean"},
		{Name: "Label", Type: "string"},
		{Name: "Name", Type: "string"},
		{Name: "Parts", Type: "object", Array: true},
		{Name: "Size", Type: "uint64"},
		{Name: "Temp", Type: "sint32"},
	}
}

func gizmo(enabled, label, name, size, temp string) *wsman.Instance {
	in := wsman.NewInstance(gizmoNS + "/Gizmo")
	in.Set("Enabled", enabled)
	if label == "" {
		in.SetNil("Label")
	} else {
		in.Set("Label", label)
	}
	in.Set("Name", name)
	in.SetNil("Parts")
	in.Set("Size", size)
	in.Set("Temp", temp)
	return in
}

func (g *gizmos) Enumerate(context.Context, *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	g.enumerates.Add(1)
	return []*wsman.Instance{
		gizmo("true", "Alpha", "g1", "18446744073709551615", "-5"),
		gizmo("false", "", "g2", "10", "0"),
		gizmo("true", "beta_x", "g3", "9", "20"),
		gizmo("false", "Gamma", "G4", "100", "-40"),
	}, nil
}

func (*gizmos) Get(context.Context, *wsmantest.Request) (*wsman.Instance, error) {
	return nil, wsmantest.FaultNotFound("")
}

func (*gizmos) Put(context.Context, *wsmantest.Request, *wsman.Instance) (*wsman.Instance, error) {
	return nil, wsmantest.FaultNotFound("")
}

func (*gizmos) Invoke(_ context.Context, r *wsmantest.Request, _ string, _ *wsman.Instance) (*wsman.Instance, error) {
	return nil, wsmantest.FaultActionNotSupported(r.Action)
}

func newGizmoServer(t *testing.T) (*wsmantest.Server, *gizmos, *wsman.Client) {
	t.Helper()
	s := wsmantest.NewUnstartedServer(wsmantest.Config{Machine: "HOST7", Users: map[string]string{testUser: testPass}})
	g := &gizmos{}
	s.Handle(gizmoNS+"/Gizmo", g)
	s.Start()
	t.Cleanup(s.Close)
	return s, g, newClient(t, s, "basic", testPass, nil)
}

// gizmoQuery enumerates the namespace with q, in batches that let an
// item come back with the EnumerateResponse.
func gizmoQuery(c *wsman.Client, q string) ([]*wsman.Instance, error) {
	var out []*wsman.Instance
	for it, err := range c.Enumerate(context.Background(), gizmoNS+"/*", wsman.EnumerateOptions{WQL: q, Optimize: true, MaxElements: 2}) {
		if err != nil {
			return out, err
		}
		out = append(out, it.Instance)
	}
	return out, nil
}

// TestWQLWhereTyped: with a Schema, WHERE compares in the declared
// types, names match in any case, and system properties can be tested.
func TestWQLWhereTyped(t *testing.T) {
	_, _, c := newGizmoServer(t)
	for _, tc := range []struct {
		where string
		want  []string
	}{
		{"size > 9", []string{"g1", "g2", "G4"}},
		{"SIZE > '9'", []string{"g1", "g2", "G4"}}, // the constant converted to uint64, not compared as text
		{"10 <= Size", []string{"g1", "g2", "G4"}},
		{"Size = 18446744073709551615", []string{"g1"}},
		{"Size = 18446744073709551614", nil}, // exact, not float64
		{"Size = 'ten'", nil},
		{"temp < 0", []string{"g1", "G4"}},
		{"Temp > -10 AND Temp < 10", []string{"g1", "g2"}},
		{"enabled = TRUE", []string{"g1", "g3"}},
		{"Enabled <> 1", []string{"g2", "G4"}},
		{"Enabled = 'False'", []string{"g2", "G4"}},
		{"label IS NULL", []string{"g2"}},
		{"Label = 'alpha'", []string{"g1"}},
		{"Label > 'B'", []string{"g3", "G4"}},
		{"Label IS NOT NULL AND NOT (LABEL = 'ALPHA')", []string{"g3", "G4"}},
		{"Label LIKE 'beta[_]%'", []string{"g3"}},
		{"Label LIKE '%A'", []string{"g1", "G4"}},
		{"Label LIKE '[^a-f]%'", []string{"G4"}},
		{"Label LIKE '_lph_'", []string{"g1"}},
		{"(Name = 'g1' OR name = 'G2') AND NOT Enabled = FALSE", []string{"g1"}},
		{"NAME = 'g4'", []string{"G4"}},
		{"__CLASS = 'gizmo'", []string{"g1", "g2", "g3", "G4"}},
		{`__RELPATH = 'Gizmo.Name="g3"'`, []string{"g3"}},
		{`__path = '\\\\HOST7\\root\\typed:Gizmo.Name="G4"'`, []string{"G4"}},
		{`__Namespace = 'ROOT\\TYPED' AND __Server = 'host7' AND __dynasty = 'Gizmo'`, []string{"g1", "g2", "g3", "G4"}},
		{"__GENUS = 2 AND __PROPERTY_COUNT = 6 AND __SUPERCLASS IS NULL", []string{"g1", "g2", "g3", "G4"}},
	} {
		t.Run(tc.where, func(t *testing.T) {
			items, err := gizmoQuery(c, "SELECT * FROM Gizmo WHERE "+tc.where)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, in := range items {
				got = append(got, mustString(t, in, "Name"))
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestWQLProjectionClassOrder: a property list comes back in the class's
// order and spelling, whatever the query's, as Windows answers (see
// project).
func TestWQLProjectionClassOrder(t *testing.T) {
	_, _, c := newGizmoServer(t)
	got, err := gizmoQuery(c, "SELECT size, NAME, label, Size FROM Gizmo WHERE Name = 'g2' OR Name = 'g3'")
	if err != nil {
		t.Fatal(err)
	}
	frag := func(label wsman.Value, name, size string) *wsman.Instance {
		return &wsman.Instance{ClassName: "XmlFragment", ResourceURI: wsman.NsWSMan, Fragment: true, Props: []wsman.Property{
			{Name: "Label", Values: []wsman.Value{label}},
			{Name: "Name", Values: []wsman.Value{{Text: name}}},
			{Name: "Size", Values: []wsman.Value{{Text: size}}},
		}}
	}
	want := []*wsman.Instance{frag(wsman.Value{Kind: wsman.KindNil}, "g2", "10"), frag(wsman.Value{Text: "beta_x"}, "g3", "9")}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// invalidQueryFault is the fault the client reads for a WQL query WMI
// refuses (wsmantest's faultInvalidQuery), on host HOST7 in
// root\typed.
func invalidQueryFault(q string) *wsman.Fault {
	text := func(s string) []wsman.Value { return []wsman.Value{{Text: s}} }
	return &wsman.Fault{
		Host: "", Operation: "Enumerate",
		HTTPStatus: 500, Action: wsman.ActionFaultEnumeration,
		Code: "Sender", SubcodeNS: wsman.NsEnumeration, Subcode: "CannotProcessFilter",
		Reason:    "The data source could not process the filter. The filter might be missing or it might be invalid. Change the filter and try the request again.",
		WSManCode: 0x8033801A, Machine: "HOST7",
		ProviderFault: &wsman.ProviderFault{Provider: "WMI Provider", Path: `%systemroot%\system32\WsmWmiPl.dll`,
			Text: "The WS-Management service cannot process the request. The WQL query is invalid.", WSManCode: 0x8033801A},
		WMIError: &wsman.Instance{ClassName: "__ExtendedStatus", ResourceURI: gizmoNS + "/__ExtendedStatus", TypeName: "__ExtendedStatus_Type",
			Props: []wsman.Property{
				{Name: "Description", Values: []wsman.Value{{Kind: wsman.KindNil}}},
				{Name: "Operation", Values: text("ExecQuery")},
				{Name: "ParameterInfo", Values: text(q)},
				{Name: "ProviderName", Values: text("WinMgmt")},
				{Name: "StatusCode", Values: text(fmt.Sprint(0x80041017))},
			}},
	}
}

// TestWQLInvalidQueries: a query naming a property the class lacks,
// wherever it does, or breaking a rule WMI documents, is refused as
// WBEM_E_INVALID_QUERY before the provider is asked for anything: no
// item, no enumeration context. Every refusal is the same fault but for
// the query it quotes.
func TestWQLInvalidQueries(t *testing.T) {
	s, g, c := newGizmoServer(t)
	for _, where := range []string{
		"NoSuchProp = 1",
		"nosuchprop = 1",
		"1 = NoSuchProp",
		"'x' <> NOSUCHPROP",
		"Name = 'g1' AND NoSuchProp = 1",
		"Name = 'g1' OR NoSuchProp = 1",
		"NoSuchProp = 1 OR Name = 'g1'",
		"NOT NoSuchProp = 1",
		"(Name = 'g1' OR (Size > 1 AND NoSuchProp IS NULL))",
		"NoSuchProp IS NOT NULL",
		"NoSuchProp LIKE 'a%'",
		"__NoSuch = 1",
		"Enabled > FALSE", // where-clause.md: only =, != and <> for booleans
		"Enabled <= 1",
		"Enabled >= NULL",
		"Name = Label", // a property on both sides
		"Name == 'g1'", // not a WQL operator (wql-operators.md)
		"Size =< 9",
		"Size IS 5", // IS takes only NULL
		"Size = 1 AND",
		"Parts.Name = 'x'", // dot notation is not evaluated
	} {
		t.Run(where, func(t *testing.T) { checkRefused(t, s, g, c, "SELECT * FROM Gizmo WHERE "+where) })
	}
	for _, q := range []string{
		"SELECT Name, NoSuchProp FROM Gizmo",
		"SELECT name, SIZE, nosuchprop FROM Gizmo WHERE Size > 1",
		// System properties are valid in WMI's property lists, but how
		// WinRM renders them in a w:XmlFragment is unknown (see check).
		"SELECT __PATH, Name FROM Gizmo",
		"SELECT * FORM Gizmo",
	} {
		t.Run(q, func(t *testing.T) { checkRefused(t, s, g, c, q) })
	}
}

func checkRefused(t *testing.T, s *wsmantest.Server, g *gizmos, c *wsman.Client, q string) {
	t.Helper()
	before := g.enumerates.Load()
	items, err := gizmoQuery(c, q)
	if len(items) != 0 {
		t.Errorf("%d items before the fault", len(items))
	}
	f := asFault(t, err)
	f.Host = ""
	if d := cmp.Diff(invalidQueryFault(q), f); d != "" {
		t.Errorf("fault (-want +got):\n%s", d)
	}
	if n := g.enumerates.Load() - before; n != 0 {
		t.Errorf("the provider was asked to enumerate %d times", n)
	}
	if n := s.Enumerations(); n != 0 {
		t.Errorf("%d enumeration contexts live", n)
	}
}

// TestWQLUnknownClass: a class the namespace lacks keeps the fault of the
// 2008 R2 capture (StatusCode nil, WinRM's own message), not WMI's
// invalid query.
func TestWQLUnknownClass(t *testing.T) {
	s, g, c := newGizmoServer(t)
	const q = "SELECT NoSuchProp FROM Gadget WHERE Nope = 1"
	_, err := gizmoQuery(c, q)
	f := asFault(t, err)
	f.Host = ""
	want := invalidQueryFault(q)
	want.ProviderFault.Text = strings.TrimSpace("The specified class does not exist in the given namespace. ")
	want.WMIError.Props[4].Values = []wsman.Value{{Kind: wsman.KindNil}}
	if d := cmp.Diff(want, f); d != "" {
		t.Errorf("fault (-want +got):\n%s", d)
	}
	if g.enumerates.Load() != 0 || s.Enumerations() != 0 {
		t.Errorf("enumerates %d, contexts %d", g.enumerates.Load(), s.Enumerations())
	}
}
