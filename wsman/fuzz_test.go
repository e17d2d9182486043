package wsman

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/google/go-cmp/cmp"
)

// addWire adds the real captures whose names start with one of prefixes
// (all of them for none) as seeds; they are read at test time from
// shared/wire and never copied into the repository.
func addWire(f *testing.F, prefixes ...string) {
	_, file, _, _ := runtime.Caller(0)
	files, err := filepath.Glob(filepath.Join(filepath.Dir(file), "..", "..", "shared", "wire", "*.xml"))
	if err != nil {
		return
	}
	for _, p := range files {
		name := filepath.Base(p)
		ok := len(prefixes) == 0
		for _, pre := range prefixes {
			ok = ok || strings.HasPrefix(name, pre)
		}
		if !ok {
			continue
		}
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

// exerciseInstance calls every accessor on every property and renders the
// instance back.
func exerciseInstance(in *Instance) {
	_ = in.Element()
	for _, p := range in.Props {
		_, _ = in.String(p.Name)
		_, _ = in.Datetime(p.Name)
		_, _ = in.Interval(p.Name)
		_, _ = in.Uint64(p.Name)
		_, _ = in.Int64(p.Name)
		_, _ = in.Bool(p.Name)
		_, _ = in.Strings(p.Name)
		if objs, err := in.Objects(p.Name); err == nil {
			for _, o := range objs {
				if o != nil {
					exerciseInstance(o)
				}
			}
		}
		_ = in.IsNil(p.Name)
	}
}

// FuzzParseReply feeds arbitrary bytes through every reply parser: none may
// panic or hang, whatever a peer sends.
func FuzzParseReply(f *testing.F) {
	addWire(f)
	f.Add([]byte(windowsReply(ActionGetResponse, "x", instance40())))
	f.Add([]byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>zz:</s:Value></s:Subcode></s:Code></s:Fault></s:Body></s:Envelope>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseEnvelope(b)
		if err != nil {
			return
		}
		if fe := rep.fault(); fe != nil {
			_ = parseFault(fe).Error()
			return
		}
		_, _ = parsePage(rep, "EnumerateResponse")
		_, _ = parsePage(rep, "PullResponse")
		if el := rep.bodyChild(); el != nil {
			if in, err := ParseInstance(el); err == nil {
				exerciseInstance(in)
			}
			_, _ = parseEPR(el)
		}
	})
}

// FuzzParseInstance parses any XML element as a WMI instance (the body of
// a GetResponse, an item, a method's output) and uses every accessor.
func FuzzParseInstance(f *testing.F) {
	addWire(f, "wmi-get-response", "wsman-get-response", "spec-invoke-response")
	f.Add([]byte(instance40()))
	f.Add([]byte(svc("Spooler")))
	f.Add([]byte(`<p:X xmlns:p="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><p:A xsi:nil="true"/><p:B><p:C>1</p:C></p:B><p:D>x</p:D><p:D>y</p:D></p:X>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := readXML(b)
		if err != nil {
			return
		}
		el := doc.Root()
		if rep, err := parseEnvelope(b); err == nil {
			if c := rep.bodyChild(); c != nil {
				el = c
			}
		}
		in, err := ParseInstance(el)
		if err != nil {
			return
		}
		exerciseInstance(in)
	})
}

// FuzzParseFault parses any reply as a fault and renders it: a fault
// must always reach the user, whatever its shape.
func FuzzParseFault(f *testing.F) {
	addWire(f, "fault-", "spec-fault-")
	f.Add([]byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:TimedOut</s:Value></s:Subcode></s:Code><s:Reason><s:Text>x</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="0x80338029"><f:Message><f:ProviderFault provider="p"><f:WSManFault Code="-1"/><f:ExtendedError><p:E xmlns:p="urn:e"/></f:ExtendedError></f:ProviderFault></f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseEnvelope(b)
		if err != nil {
			return
		}
		fe := rep.fault()
		if fe == nil {
			return
		}
		flt := parseFault(fe)
		_ = flt.Error()
		_ = IsNotFound(flt)
		_ = IsTimedOut(flt)
		_ = IsTransient(flt)
		if flt.WMIError != nil {
			exerciseInstance(flt.WMIError)
		}
	})
}

// FuzzParseEnumeration parses any reply as an EnumerateResponse and a
// PullResponse, items, EPRs and end of sequence included.
func FuzzParseEnumeration(f *testing.F) {
	addWire(f, "wmi-enum", "wmi-pull", "wsman-enumerate")
	f.Add([]byte(windowsReply(ActionPullResponse, "x", `<n:PullResponse><n:EnumerationContext>uuid:C</n:EnumerationContext><n:Items>`+svc("a")+svc("b")+`</n:Items></n:PullResponse>`)))
	f.Add([]byte(windowsReply(ActionEnumerateResp, "x", `<n:EnumerateResponse><w:Items><w:Item>`+svc("a")+`<a:EndpointReference><a:Address>x</a:Address><a:ReferenceParameters><w:ResourceURI>u</w:ResourceURI><w:SelectorSet><w:Selector Name="N">v</w:Selector></w:SelectorSet></a:ReferenceParameters></a:EndpointReference></w:Item></w:Items><w:EndOfSequence/></n:EnumerateResponse>`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseEnvelope(b)
		if err != nil {
			return
		}
		for _, want := range []string{"EnumerateResponse", "PullResponse"} {
			p, err := parsePage(rep, want)
			if err != nil {
				continue
			}
			for _, it := range p.items {
				if it.Instance != nil {
					exerciseInstance(it.Instance)
				}
			}
		}
	})
}

// FuzzClientReply answers a real Client's Get, Invoke and Enumerate with
// arbitrary bytes and status (every MessageID is uuid:FUZZ, so replies
// can relate to it): each call must return, with a value or an error,
// and never loop.
func FuzzClientReply(f *testing.F) {
	addWire(f, "wmi-", "wsman-", "fault-")
	f.Add([]byte(windowsReply(ActionGetResponse, "uuid:FUZZ", svc("a"))))
	f.Add([]byte(windowsReply(ActionEnumerateResp, "uuid:FUZZ", `<n:EnumerateResponse><n:EnumerationContext>uuid:C</n:EnumerationContext></n:EnumerateResponse>`)))
	f.Add([]byte(windowsReply(bitsJobURI+"/CreateJobResponse", "uuid:FUZZ", `<p:CreateJob_OUTPUT xmlns:p="`+bitsJobURI+`"><p:JobId>{1}</p:JobId><p:ReturnValue>0</p:ReturnValue></p:CreateJob_OUTPUT>`)))
	f.Fuzz(func(t *testing.T, body []byte) {
		status := 200
		if strings.Contains(string(body), "Fault") {
			status = 500
		}
		calls := 0
		c := NewClient("http://fuzz.example:5985/wsman", transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
			calls++
			return &transport.Response{StatusCode: status, Body: body, ContentType: "application/soap+xml;charset=UTF-8"}, nil
		}))
		c.Retry = NoRetry
		c.newID = func() string { return "uuid:FUZZ" }
		ctx := context.Background()
		in, gerr := c.Get(ctx, bitsJobURI, Options{})
		if gerr == nil && in != nil {
			exerciseInstance(in)
		}
		// GetView: Get's outcome, through a view or Get's Instance.
		var got *Instance
		verr := c.GetView(ctx, bitsJobURI, Options{}, func(v ItemView) error {
			if v.Item != nil {
				got = v.Item.Instance
			} else {
				got = viewInstance(v.Object)
				in = viewable(in)
			}
			return nil
		})
		if (gerr == nil) != (verr == nil) || gerr != nil && gerr.Error() != verr.Error() {
			t.Fatalf("Get: %v; GetView: %v", gerr, verr)
		}
		if gerr == nil && !reflect.DeepEqual(in, got) {
			t.Fatalf("GetView read (-Get +GetView):\n%s", cmp.Diff(in, got))
		}
		if out, err := c.Invoke(ctx, bitsJobURI, "CreateJob", Options{}, nil); err == nil && out != nil {
			exerciseInstance(out)
		}
		_, _ = c.Identify(ctx)
		n := 0
		for range c.Enumerate(ctx, bitsJobURI, EnumerateOptions{}) {
			// A peer that always answers with a context and no end gets
			// pulled for ever; stop as a caller would.
			if n++; n > 50 {
				break
			}
		}
		if calls > 60 {
			t.Fatalf("%d requests for four calls", calls)
		}
	})
}
