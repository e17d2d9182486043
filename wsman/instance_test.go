package wsman

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"
)

const testURI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Test"

func parseElem(t testing.TB, s string) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(s); err != nil {
		t.Fatalf("read XML: %v", err)
	}
	return doc.Root()
}

func mustParseInstance(t testing.TB, s string) *Instance {
	t.Helper()
	in, err := ParseInstance(parseElem(t, s))
	if err != nil {
		t.Fatalf("ParseInstance: %v", err)
	}
	return in
}

const richInstance = `<q:Win32_Test xmlns:q="` + testURI + `" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:c="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:addr="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:man="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xsi:type="q:Win32_Test_Type">
<q:Big>18446744073709551615</q:Big>
<q:Neg>-9223372036854775808</q:Neg>
<q:Flag>TRUE</q:Flag>
<q:Off>0</q:Off>
<q:Empty/>
<q:Missing xsi:nil="true"/>
<q:Roles>a</q:Roles><q:Roles>b &amp; c</q:Roles><q:Roles>&lt;d&gt;</q:Roles>
<q:When><c:Datetime>2014-04-03T14:45:50.46875+08:00</c:Datetime></q:When>
<q:Span><c:Interval>P0DT0H1M40S</c:Interval></q:Span>
<q:Files><f:BitsClientFile xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientFile" xsi:type="f:BitsClientFile_Type"><f:RemoteUrl>http://x/a?b=1&amp;c=2</f:RemoteUrl><f:Completed>false</f:Completed></f:BitsClientFile></q:Files>
<q:Files><f:BitsClientFile xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientFile" xsi:type="f:BitsClientFile_Type"><f:RemoteUrl>http://x/b</f:RemoteUrl><f:Completed>true</f:Completed></f:BitsClientFile></q:Files>
<q:Ref><addr:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</addr:Address><addr:ReferenceParameters><man:ResourceURI>` + testURI + `</man:ResourceURI><man:SelectorSet><man:Selector Name="Name">Spooler</man:Selector></man:SelectorSet></addr:ReferenceParameters></q:Ref>
<c:Location><addr:Address>x</addr:Address></c:Location>
</q:Win32_Test>`

func TestParseInstanceRich(t *testing.T) {
	in := mustParseInstance(t, richInstance)
	fileURI := "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientFile"
	file := func(url, done string) Value {
		return Value{Kind: KindObject, Object: &Instance{ClassName: "BitsClientFile", ResourceURI: fileURI, TypeName: "BitsClientFile_Type",
			Props: []Property{{Name: "RemoteUrl", Values: []Value{{Text: url}}}, {Name: "Completed", Values: []Value{{Text: done}}}}}}
	}
	want := &Instance{
		ClassName: "Win32_Test", ResourceURI: testURI, TypeName: "Win32_Test_Type",
		Props: []Property{
			{Name: "Big", Values: []Value{{Text: "18446744073709551615"}}},
			{Name: "Neg", Values: []Value{{Text: "-9223372036854775808"}}},
			{Name: "Flag", Values: []Value{{Text: "TRUE"}}},
			{Name: "Off", Values: []Value{{Text: "0"}}},
			{Name: "Empty", Values: []Value{{Text: ""}}},
			{Name: "Missing", Values: []Value{{Kind: KindNil}}},
			{Name: "Roles", Values: []Value{{Text: "a"}, {Text: "b & c"}, {Text: "<d>"}}},
			{Name: "When", Values: []Value{{Kind: KindDatetime, Text: "2014-04-03T14:45:50.46875+08:00"}}},
			{Name: "Span", Values: []Value{{Kind: KindInterval, Text: "P0DT0H1M40S"}}},
			{Name: "Files", Values: []Value{file("http://x/a?b=1&c=2", "false"), file("http://x/b", "true")}},
			{Name: "Ref", Values: []Value{{Kind: KindReference, Ref: &EndpointReference{Address: AddressAnonymous, ResourceURI: testURI, Selectors: []Selector{{Name: "Name", Value: "Spooler"}}}}}},
		},
	}
	if diff := cmp.Diff(want, in); diff != "" {
		t.Fatalf("ParseInstance mismatch (-want +got):\n%s", diff)
	}

	// Round trip through Element.
	doc := etree.NewDocument()
	doc.SetRoot(in.Element())
	s, err := doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	back := mustParseInstance(t, s)
	if diff := cmp.Diff(in, back); diff != "" {
		t.Fatalf("round trip mismatch (-orig +back):\n%s\nXML: %s", diff, s)
	}
	if !strings.HasPrefix(s, `<p:Win32_Test xmlns:p="`+testURI+`" xmlns:xsi="`+NsXSI+`" xmlns:cim="`+NsCIM+`" xsi:type="p:Win32_Test_Type">`) {
		t.Errorf("root element rendered as %.200s", s)
	}
}

func TestInstanceAccessors(t *testing.T) {
	in := mustParseInstance(t, richInstance)
	if v, err := in.Uint64("big"); err != nil || v != 18446744073709551615 {
		t.Errorf("Uint64(big) = %d, %v", v, err)
	}
	if v, err := in.Int64("NEG"); err != nil || v != -9223372036854775808 {
		t.Errorf("Int64(NEG) = %d, %v", v, err)
	}
	if v, err := in.Bool("Flag"); err != nil || !v {
		t.Errorf("Bool(Flag) = %v, %v", v, err)
	}
	if v, err := in.Bool("Off"); err != nil || v {
		t.Errorf("Bool(Off) = %v, %v", v, err)
	}
	if _, err := in.Bool("Big"); err == nil || err.Error() != `Win32_Test.Big: "18446744073709551615" is not a boolean` {
		t.Errorf("Bool(Big) err = %v", err)
	}
	if v, err := in.String("Empty"); err != nil || v != "" {
		t.Errorf("String(Empty) = %q, %v", v, err)
	}
	wantT := time.Date(2014, 4, 3, 14, 45, 50, 468750000, time.FixedZone("", 8*3600))
	if v, err := in.Datetime("When"); err != nil || !v.Equal(wantT) {
		t.Errorf("Datetime(When) = %v, %v", v, err)
	}
	if v, err := in.Interval("Span"); err != nil || v != 100*time.Second {
		t.Errorf("Interval(Span) = %v, %v", v, err)
	}
	if v, err := in.Strings("Roles"); err != nil || !cmp.Equal(v, []string{"a", "b & c", "<d>"}) {
		t.Errorf("Strings(Roles) = %q, %v", v, err)
	}
	if v, err := in.Strings("Missing"); err != nil || len(v) != 0 || v == nil {
		t.Errorf("Strings(Missing) = %#v, %v", v, err)
	}
	if v, err := in.Objects("Files"); err != nil || len(v) != 2 || v[1].Props[0].Values[0].Text != "http://x/b" {
		t.Errorf("Objects(Files) = %v, %v", v, err)
	}
	if !in.IsNil("missing") || in.IsNil("Empty") || in.IsNil("Nope") {
		t.Error("IsNil wrong")
	}
	_, err := in.String("Nope")
	if !errors.Is(err, ErrNoProperty) || err.Error() != "Win32_Test.Nope: no such property" {
		t.Errorf("String(Nope) err = %v", err)
	}
	_, err = in.Uint64("Missing")
	if !errors.Is(err, ErrNilValue) || err.Error() != "Win32_Test.Missing: property is nil" {
		t.Errorf("Uint64(Missing) err = %v", err)
	}
	if _, err := in.String("Roles"); err == nil {
		t.Error("String on a 3-value array did not fail")
	}
	in.Set("flag", "false")
	in.SetNil("Big")
	in.Set("NewOne", "x")
	if p, _ := in.Property("Flag"); p.Name != "Flag" || p.Values[0].Text != "false" {
		t.Errorf("Set kept %+v", p)
	}
	if !in.IsNil("Big") || in.Props[len(in.Props)-1].Name != "NewOne" {
		t.Error("SetNil/Set append wrong")
	}
}

func TestParseDatetimeAndDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2013-04-15T16:28:43.488171Z", time.Date(2013, 4, 15, 16, 28, 43, 488171000, time.UTC)},
		{"2013-03-09T02:57:32Z", time.Date(2013, 3, 9, 2, 57, 32, 0, time.UTC)},
		{"2014-04-03T14:45:50.46875+08:00", time.Date(2014, 4, 3, 6, 45, 50, 468750000, time.UTC)},
		{"2013-04-15T20:28:21.085-07:00", time.Date(2013, 4, 16, 3, 28, 21, 85000000, time.UTC)},
		{"20130309025732.000000+060", time.Date(2013, 3, 9, 1, 57, 32, 0, time.UTC)},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDatetime(tc.in)
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("ParseDatetime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"P0DT0H1M40S", 100 * time.Second, false},
		{"PT20S", 20 * time.Second, false},
		{"PT60.000S", time.Minute, false},
		{"P1DT2H3M4.5S", 26*time.Hour + 3*time.Minute + 4500*time.Millisecond, false},
		{"-PT1S", -time.Second, false},
		{"PT0.000000001S", time.Nanosecond, false},
		{"P1Y", 0, true}, {"P1M", 0, true}, {"P", 0, true}, {"PT", 0, true}, {"20S", 0, true}, {"PT1.5H", 0, true}, {"PTS", 0, true}, {"", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
	if s := FormatDuration(60 * time.Second); s != "PT60.000S" {
		t.Errorf("FormatDuration = %q", s)
	}
}

func TestNewInstanceElement(t *testing.T) {
	in := NewInstance("http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientJob?JobId=x")
	in.Set("DisplayName", `a<b>&"c'`)
	doc := etree.NewDocument()
	doc.SetRoot(in.Element())
	s, _ := doc.WriteToString()
	want := `<p:BitsClientJob xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientJob"><p:DisplayName>a&lt;b&gt;&amp;&quot;c&apos;</p:DisplayName></p:BitsClientJob>`
	if got := string(render(doc)); got != strings.Replace(strings.Replace(want, "&quot;", `"`, 1), "&apos;", "'", 1) {
		t.Errorf("rendered on the wire as %s", got)
	}
	if s != want {
		t.Errorf("Element =\n%s\nwant\n%s", s, want)
	}
	back := mustParseInstance(t, s)
	if diff := cmp.Diff(in, back); diff != "" {
		t.Error(diff)
	}
}

func TestParseEmbeddedPropertyShape(t *testing.T) {
	// The other embedded shape: the property element itself is the object.
	in := mustParseInstance(t, `<p:Job xmlns:p="urn:job" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><p:Files xsi:type="BitsClientFile_Type"><RemoteUrl>u</RemoteUrl><Completed>true</Completed></p:Files></p:Job>`)
	objs, err := in.Objects("Files")
	if err != nil {
		t.Fatal(err)
	}
	want := []*Instance{{ClassName: "BitsClientFile", TypeName: "BitsClientFile_Type", Props: []Property{{Name: "RemoteUrl", Values: []Value{{Text: "u"}}}, {Name: "Completed", Values: []Value{{Text: "true"}}}}}}
	if diff := cmp.Diff(want, objs); diff != "" {
		t.Error(diff)
	}
}

// FuzzInstanceRoundTrip checks that any text survives Element and
// ParseInstance (after the '?' replacement of what XML cannot carry).
func FuzzInstanceRoundTrip(f *testing.F) {
	for _, s := range []string{"", " lead and trail ", "a\r\nb", "<&>\"'", "tab\there", "\x01\x7f\uFFFE", "]]>", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in := NewInstance(testURI)
		in.Set("P", s)
		in.SetValues("Arr", Value{Text: s}, Value{Kind: KindNil})
		doc := etree.NewDocument()
		doc.SetRoot(in.Element())
		out := string(render(doc))
		back, err := ParseInstance(parseElem(t, out))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		want := xmlSafe(s)
		if got, _ := back.String("P"); got != want {
			t.Fatalf("round trip of %q gave %q, want %q", s, got, want)
		}
		if p, _ := back.Property("Arr"); len(p.Values) != 2 || p.Values[1].Kind != KindNil {
			t.Fatalf("array %+v", p)
		}
	})
}

func TestEmptyEmbeddedObjectRoundTrip(t *testing.T) {
	in := NewInstance(testURI)
	in.SetValues("Files", Value{Kind: KindObject, Object: NewInstance("urn:x/BitsClientFile")})
	doc := etree.NewDocument()
	doc.SetRoot(in.Element())
	s, _ := doc.WriteToString()
	if diff := cmp.Diff(in, mustParseInstance(t, s)); diff != "" {
		t.Errorf("%s\n%s", diff, s)
	}
}
