package wsman

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

func benchClient(reply func(req *transport.Request) []byte) *Client {
	c := NewClient(testEndpoint, transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
		return &transport.Response{StatusCode: 200, Body: reply(req)}, nil
	}))
	c.newID = func() string { return "uuid:00000000-0000-4000-8000-000000000001" }
	return c
}

// instance40 is a BitsClientJob-like instance with 40 properties: text,
// nils and a datetime.
func instance40() string {
	var b strings.Builder
	b.WriteString(`<p:BitsClientJob xmlns:p="` + bitsJobURI + `" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xsi:type="p:BitsClientJob_Type">`)
	for i := range 40 {
		switch i % 8 {
		case 3:
			fmt.Fprintf(&b, `<p:Prop%02d xsi:nil="true"/>`, i)
		case 5:
			fmt.Fprintf(&b, `<p:Prop%02d><cim:Datetime>2013-04-15T16:28:43.488171Z</cim:Datetime></p:Prop%02d>`, i, i)
		default:
			fmt.Fprintf(&b, `<p:Prop%02d>value number %d</p:Prop%02d>`, i, i, i)
		}
	}
	b.WriteString(`</p:BitsClientJob>`)
	return b.String()
}

func BenchmarkBuildGet(b *testing.B) {
	c := benchClient(nil)
	opts := &Options{Selectors: []Selector{{Name: "JobId", Value: "{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}"}}}
	b.ReportAllocs()
	for b.Loop() {
		r := &request{action: ActionGet, resourceURI: bitsJobURI, messageID: c.messageID(), opts: opts}
		_ = render(c.envelope(r))
	}
}

func BenchmarkParseInstance(b *testing.B) {
	doc, err := readXML([]byte(instance40()))
	if err != nil {
		b.Fatal(err)
	}
	el := doc.Root()
	b.ReportAllocs()
	for b.Loop() {
		in, err := ParseInstance(el)
		if err != nil || len(in.Props) != 40 {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet is one whole Get over a transport that answers at once:
// build, render, parse the reply, check it and parse the 40-property
// instance.
func BenchmarkGet(b *testing.B) {
	body := instance40()
	c := benchClient(func(req *transport.Request) []byte {
		return []byte(windowsReply(ActionGetResponse, "uuid:00000000-0000-4000-8000-000000000001", body))
	})
	ctx := context.Background()
	opts := Options{Selectors: []Selector{{Name: "JobId", Value: "{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}"}}}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := c.Get(ctx, bitsJobURI, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetSmall is a Get of a 5-property instance (a typical Win32
// key lookup answer).
func BenchmarkGetSmall(b *testing.B) {
	body := `<p:Win32_Service xmlns:p="` + wmiSvc + `" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><p:Name>Spooler</p:Name><p:State>Running</p:State><p:StartMode>Auto</p:StartMode><p:ProcessId>1234</p:ProcessId><p:ExitCode>0</p:ExitCode></p:Win32_Service>`
	c := benchClient(func(req *transport.Request) []byte {
		return []byte(windowsReply(ActionGetResponse, "uuid:00000000-0000-4000-8000-000000000001", body))
	})
	ctx := context.Background()
	opts := Options{Selectors: []Selector{{Name: "Name", Value: "Spooler"}}}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := c.Get(ctx, wmiSvc, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePull50(b *testing.B) {
	data := pull50Reply()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := parseEnvelope(data)
		if err != nil {
			b.Fatal(err)
		}
		p, err := parsePage(rep, "PullResponse")
		if err != nil || len(p.items) != 50 {
			b.Fatal(err)
		}
	}
}

// pull50Reply is a PullResponse of 50 Win32_Service instances: the real
// capture when ../shared/wire is present, else one built like it.
func pull50Reply() []byte {
	_, file, _, _ := runtime.Caller(0)
	if d, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "shared", "wire", "wmi-pull-response-mid-sequence_Win32_Service_2012.xml")); err == nil {
		return d
	}
	var items strings.Builder
	for i := range 50 {
		items.WriteString(svc(fmt.Sprintf("svc%d", i)))
	}
	return []byte(windowsReply(ActionPullResponse, "x", `<n:PullResponse><n:EnumerationContext>uuid:C</n:EnumerationContext><n:Items>`+items.String()+`</n:Items></n:PullResponse>`))
}
