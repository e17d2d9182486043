package wsman

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.xml")

const (
	testEndpoint = "http://win1.example:5985/wsman"
	bitsJobURI   = ResourceWMI + "/root/microsoft/bits/BitsClientJob"
)

// fakeHost is a scripted WS-Management peer over transport.Func. Each
// reply function sees the parsed request and returns status and body; the
// default echoes MessageID and answers with the expected action.
type fakeHost struct {
	t       *testing.T
	mu      sync.Mutex
	reqs    []*transport.Request
	replies []func(req *reply) (int, string)
}

func (f *fakeHost) client() *Client {
	c := NewClient(testEndpoint, transport.Func(f.roundTrip))
	// One reply per request: retries are tested on their own (retry_test.go).
	c.Retry = NoRetry
	n := 0
	c.newID = func() string {
		n++
		return fmt.Sprintf("uuid:00000000-0000-4000-8000-%012d", n)
	}
	return c
}

func (f *fakeHost) roundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if len(f.replies) == 0 {
		f.t.Errorf("unexpected request %d:\n%s", len(f.reqs), req.Body)
		return nil, errors.New("fake host: no reply scripted")
	}
	next := f.replies[0]
	f.replies = f.replies[1:]
	rep, err := parseEnvelope(req.Body)
	if err != nil {
		f.t.Errorf("request is not SOAP: %v", err)
		return nil, err
	}
	status, body := next(rep)
	return &transport.Response{StatusCode: status, Body: []byte(body), ContentType: "application/soap+xml;charset=UTF-8"}, nil
}

// windowsReply renders a reply the way Windows does (prefixes s/a/w/n/x/p,
// xml:lang), relating to the request.
func windowsReply(action, relatesTo, body string) string {
	return `<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>` +
		action + `</a:Action><a:MessageID>uuid:5E6EE511-87B0-4C03-8084-15EEC39AD510</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>` +
		relatesTo + `</a:RelatesTo></s:Header><s:Body>` + body + `</s:Body></s:Envelope>`
}

// ok answers 200 with action and body, relating to the request.
func ok(action, body string) func(*reply) (int, string) {
	return func(req *reply) (int, string) {
		return 200, windowsReply(action, req.headerText(NsAddressing, "MessageID"), body)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.xml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got):\n%s", path, diff)
	}
}

const svcItem = `<p:Win32_Service xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="p:Win32_Service_Type"><p:Name>%s</p:Name><p:State>Running</p:State></p:Win32_Service>`

func svc(name string) string { return fmt.Sprintf(svcItem, name) }

func TestRequestsGolden(t *testing.T) {
	ctx := context.Background()
	job := NewInstance(bitsJobURI)
	job.Set("JobId", "{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}")
	job.Set("DisplayName", `Q1 <report> & "stuff"`)
	job.SetNil("Description")
	job.SetValues("Tags", Value{Text: "a"}, Value{Text: "b"})
	job.SetDatetime("Created", time.Date(2026, 11, 21, 10, 0, 0, 500000000, time.UTC))
	jobSel := Options{Selectors: []Selector{{Name: "JobId", Value: "{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}"}}}

	cases := []struct {
		name    string
		replies []func(*reply) (int, string)
		run     func(c *Client) error
	}{
		{"get", []func(*reply) (int, string){ok(ActionGetResponse, svc("Spooler"))}, func(c *Client) error {
			_, err := c.Get(ctx, "wmicimv2/Win32_Service", Options{
				Selectors: []Selector{{Name: "Name", Value: `Spo<o>l&"er'`}, {Name: "Antecedent", EPR: &EndpointReference{ResourceURI: ResourceWMI + "/root/cimv2/Win32_ComputerSystem", Selectors: []Selector{{Name: "Name", Value: "WIN1"}}}}},
				OptionSet: []Option{{Name: "IncludeInheritanceHierarchy", Value: "true", Type: "xs:boolean"}, {Name: "ShowExtensions", Value: ""}},
			})
			return err
		}},
		{"put", []func(*reply) (int, string){ok(ActionPutResponse, "")}, func(c *Client) error {
			_, err := c.Put(ctx, bitsJobURI, jobSel, job)
			return err
		}},
		{"create", []func(*reply) (int, string){ok(ActionCreateResponse, `<x:ResourceCreated><a:Address>`+testEndpoint+`</a:Address><a:ReferenceParameters><w:ResourceURI>`+bitsJobURI+`</w:ResourceURI></a:ReferenceParameters></x:ResourceCreated>`)}, func(c *Client) error {
			_, err := c.Create(ctx, bitsJobURI, Options{}, job)
			return err
		}},
		{"delete", []func(*reply) (int, string){ok(ActionDeleteResponse, "")}, func(c *Client) error {
			return c.Delete(ctx, "wmi/root/microsoft/bits/BitsClientJob", jobSel)
		}},
		{"invoke", []func(*reply) (int, string){ok(bitsJobURI+"/CreateJobResponse", `<p:CreateJob_OUTPUT xmlns:p="`+bitsJobURI+`"><p:JobId>{1}</p:JobId><p:ReturnValue>0</p:ReturnValue></p:CreateJob_OUTPUT>`)}, func(c *Client) error {
			in := NewInstance(bitsJobURI)
			in.Set("DisplayName", "TestJob")
			in.Set("RemoteUrl", "https://server01/dir/file.bin?a=1&b=2")
			in.Set("LocalFile", `C:\dir\file.bin`)
			in.Set("Type", "0")
			in.Set("Suspend", "true")
			_, err := c.Invoke(ctx, bitsJobURI, "CreateJob", Options{}, in)
			return err
		}},
		{"invoke-empty", []func(*reply) (int, string){ok(bitsJobURI+"/RemoveClientCertificateResponse", `<p:RemoveClientCertificate_OUTPUT xmlns:p="`+bitsJobURI+`"/>`)}, func(c *Client) error {
			_, err := c.Invoke(ctx, bitsJobURI, "RemoveClientCertificate", jobSel, nil)
			return err
		}},
		{"enumerate-wql", []func(*reply) (int, string){
			ok(ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext>uuid:CTX-0</n:EnumerationContext><w:Items>`+svc("A")+`</w:Items></n:EnumerateResponse>`),
			ok(ActionPullResponse, `<n:PullResponse><n:Items>`+svc("B")+`</n:Items><n:EndOfSequence/></n:PullResponse>`),
		}, func(c *Client) error {
			for _, err := range c.Enumerate(ctx, "wmicimv2/*", EnumerateOptions{WQL: `select * from Win32_Service where Name = "A"`, Optimize: true, MaxElements: 32000}) {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"enumerate-selectorfilter-epr", []func(*reply) (int, string){
			ok(ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext></n:EnumerationContext><w:Items></w:Items><w:EndOfSequence/></n:EnumerateResponse>`),
		}, func(c *Client) error {
			for _, err := range c.Enumerate(ctx, "wmicimv2/Win32_Service", EnumerateOptions{SelectorFilter: []Selector{{Name: "State", Value: "Stopped"}}, Mode: EnumerateEPR}) {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"enumerate-objectandepr", []func(*reply) (int, string){
			ok(ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext>uuid:CTX-0</n:EnumerationContext></n:EnumerateResponse>`),
			ok(ActionPullResponse, `<n:PullResponse><n:EnumerationContext>uuid:CTX-1</n:EnumerationContext><n:Items><w:Item>`+svc("A")+`<a:EndpointReference><a:Address>`+AddressAnonymous+`</a:Address><a:ReferenceParameters><w:ResourceURI>`+wmiSvc+`</w:ResourceURI></a:ReferenceParameters></a:EndpointReference></w:Item></n:Items></n:PullResponse>`),
			ok(ActionReleaseResponse, ""),
		}, func(c *Client) error {
			for _, err := range c.Enumerate(ctx, wmiSvc, EnumerateOptions{Mode: EnumerateObjectAndEPR, MaxElements: 1}) {
				if err != nil {
					return err
				}
				break
			}
			return nil
		}},
		{"identify", []func(*reply) (int, string){func(*reply) (int, string) {
			return 200, string(readWire(t, "identify-response-unauthenticated.xml"))
		}}, func(c *Client) error {
			_, err := c.Identify(ctx)
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "identify" {
				// Its reply is a real capture: skip here, in the subtest,
				// when the captures are absent (the reply func holds the
				// parent's t, which must not skip from this goroutine).
				wireDir(t)
			}
			f := &fakeHost{t: t, replies: tc.replies}
			c := f.client()
			c.SessionID = "uuid:11111111-2222-4333-8444-555555555555"
			if err := tc.run(c); err != nil {
				t.Fatal(err)
			}
			if len(f.replies) != 0 {
				t.Fatalf("%d scripted replies unused", len(f.replies))
			}
			for i, r := range f.reqs {
				name := tc.name
				if i > 0 {
					name = fmt.Sprintf("%s-%d", tc.name, i)
				}
				golden(t, name, r.Body)
				if r.URL != testEndpoint {
					t.Errorf("URL %q", r.URL)
				}
			}
		})
	}
}

func TestIdentifyRequest(t *testing.T) {
	f := &fakeHost{t: t, replies: []func(*reply) (int, string){func(*reply) (int, string) {
		return 200, string(readWire(t, "identify-response-unauthenticated.xml"))
	}}}
	got, err := f.client().Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := &IdentifyResponse{ProtocolVersion: NsWSMan, ProductVendor: "Microsoft Corporation", ProductVersion: "OS: 0.0.0 SP: 0.0 Stack: 3.0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
	r := f.reqs[0]
	if !r.Anonymous || r.Header.Get("WSMANIDENTIFY") != "unauthenticated" {
		t.Errorf("Identify sent Anonymous=%v header=%v", r.Anonymous, r.Header)
	}
	if want := `<s:Envelope xmlns:s="` + NsSOAP + `" xmlns:wsmid="` + NsIdentity + `"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>`; string(r.Body) != want {
		t.Errorf("Identify body\n%s\nwant\n%s", r.Body, want)
	}
}

// TestGetMatchesWindowsCapture compares our Get with a real request that
// Windows answered: same elements in the same order, same namespaces, same
// attributes, same values (OperationTimeout compared as a duration).
func TestGetMatchesWindowsCapture(t *testing.T) {
	real, err := parseEnvelope(readWire(t, "wsman-get-request-selectors_shell.xml"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeHost{t: t, replies: []func(*reply) (int, string){ok(ActionGetResponse, `<rsp:Shell xmlns:rsp="`+NsShell+`"/>`)}}
	c := f.client()
	c.Endpoint = "https://127.0.0.1:5986/wsman"
	c.MaxEnvelopeSize = 512000
	c.OperationTimeout = 20 * time.Second
	c.SessionID = "uuid:0D1DFB9F-6A26-494F-B5E6-B4C0F7A25591"
	c.newID = func() string { return "uuid:830521C2-D094-4AFD-82B2-C16E3D1B2E04" }
	if _, err := c.Get(context.Background(), NsShell, Options{Selectors: []Selector{{Name: "ShellId", Value: "12FC74F8-639A-45D8-88FF-3E494804563A"}}}); err != nil {
		t.Fatal(err)
	}
	ours, err := parseEnvelope(f.reqs[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(shape(real.doc.Root()), shape(ours.doc.Root())); diff != "" {
		t.Errorf("our Get differs from the Windows capture (-real +ours):\n%s", diff)
	}
}

// shape describes an element tree by namespace URI, local name, attributes
// (namespace declarations excluded) and text.
func shape(el *etree.Element) []string {
	var out []string
	var walk func(e *etree.Element, depth int)
	walk = func(e *etree.Element, depth int) {
		line := fmt.Sprintf("%s{%s}%s", strings.Repeat(" ", depth), e.NamespaceURI(), e.Tag)
		for _, a := range e.Attr {
			if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
				continue
			}
			ns := a.NamespaceURI()
			if a.Space == "xml" {
				ns = "xml"
			}
			line += fmt.Sprintf(" {%s}%s=%q", ns, a.Key, a.Value)
		}
		text := strings.TrimSpace(textOf(e))
		if e.Tag == "OperationTimeout" {
			d, err := ParseDuration(text)
			text = fmt.Sprint(d, err)
		}
		if text != "" {
			line += " text=" + text
		}
		out = append(out, line)
		for _, c := range e.ChildElements() {
			walk(c, depth+1)
		}
	}
	walk(el, 0)
	return out
}

func TestOperationResults(t *testing.T) {
	ctx := context.Background()
	t.Run("get", func(t *testing.T) {
		f := &fakeHost{t: t, replies: []func(*reply) (int, string){ok(ActionGetResponse, svc("Spooler"))}}
		in, err := f.client().Get(ctx, wmiSvc, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := in.String("Name"); s != "Spooler" || in.ClassName != "Win32_Service" {
			t.Errorf("got %+v", in)
		}
	})
	t.Run("create", func(t *testing.T) {
		f := &fakeHost{t: t, replies: []func(*reply) (int, string){func(req *reply) (int, string) {
			return 200, strings.Replace(string(readWire(t, "wsman-create-response_resourcecreated.xml")), "uuid:FC40E3CD-53E9-4315-B486-6D538B25D1F5", req.headerText(NsAddressing, "MessageID"), 1)
		}}}
		epr, err := f.client().Create(ctx, NsShell+"/cmd", Options{}, NewInstance(NsShell+"/Shell"))
		if err != nil {
			t.Fatal(err)
		}
		want := &EndpointReference{Address: "http://192.168.56.11:5985/wsman", ResourceURI: NsShell + "/cmd", Selectors: []Selector{{Name: "ShellId", Value: "4283CBDC-3706-415B-88BD-B385F3E51A53"}}}
		if diff := cmp.Diff(want, epr); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("invoke", func(t *testing.T) {
		f := &fakeHost{t: t, replies: []func(*reply) (int, string){
			ok(bitsJobURI+"/SetJobStateResponse", `<p:SetJobState_OUTPUT xmlns:p="`+bitsJobURI+`"><p:ReturnValue>2149580812</p:ReturnValue></p:SetJobState_OUTPUT>`),
			ok(bitsJobURI+"/SetJobStateResponse", `<p:Other_OUTPUT xmlns:p="`+bitsJobURI+`"/>`),
		}}
		c := f.client()
		in := NewInstance(bitsJobURI)
		in.Set("JobState", "2")
		out, err := c.Invoke(ctx, bitsJobURI, "SetJobState", Options{}, in)
		if err != nil {
			t.Fatal(err)
		}
		if rv, _ := out.Uint64("ReturnValue"); rv != 0x8020000C || out.ClassName != "SetJobState_OUTPUT" {
			t.Errorf("ReturnValue %d in %s", rv, out.ClassName)
		}
		_, err = c.Invoke(ctx, bitsJobURI, "SetJobState", Options{}, in)
		if !errors.Is(err, ErrProtocol) || err.Error() != "invoke SetJobState "+bitsJobURI+" on win1.example:5985: protocol violation: want <SetJobState_OUTPUT>, got <Other_OUTPUT>" {
			t.Errorf("err = %v", err)
		}
		if _, err := c.Invoke(ctx, bitsJobURI, "Set/Job", Options{}, nil); err == nil {
			t.Error("method with a slash accepted")
		}
	})
	t.Run("bad resource URI", func(t *testing.T) {
		f := &fakeHost{t: t}
		_, err := f.client().Get(ctx, "nosuchalias/Foo", Options{})
		if err == nil || !strings.HasPrefix(err.Error(), "get nosuchalias/Foo on win1.example:5985: resource URI") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestReplyClassification(t *testing.T) {
	faultBody := func(req *reply) string {
		return strings.Replace(string(readWire(t, "fault-w-InvalidSelectors-get.xml")), "uuid:877294B2-0B63-493A-9A91-DD6A4D68B0B3", req.headerText(NsAddressing, "MessageID"), 1)
	}
	deep := strings.Repeat("<a>", 300) + strings.Repeat("</a>", 300)
	cases := []struct {
		name  string
		reply func(*reply) (int, string)
		check func(t *testing.T, err error)
	}{
		{"RelatesTo mismatch", func(*reply) (int, string) {
			return 200, windowsReply(ActionGetResponse, "uuid:SOMEONE-ELSE", svc("x"))
		}, func(t *testing.T, err error) {
			want := `get ` + wmiSvc + ` on win1.example:5985: protocol violation: a:RelatesTo is "uuid:SOMEONE-ELSE", want our MessageID "uuid:00000000-0000-4000-8000-000000000001"`
			if !errors.Is(err, ErrProtocol) || err.Error() != want {
				t.Errorf("err = %v", err)
			}
		}},
		{"wrong Action", ok(ActionPutResponse, svc("x")), func(t *testing.T, err error) {
			want := `get ` + wmiSvc + ` on win1.example:5985: protocol violation: a:Action is "` + ActionPutResponse + `", want "` + ActionGetResponse + `"`
			if !errors.Is(err, ErrProtocol) || err.Error() != want {
				t.Errorf("err = %v", err)
			}
		}},
		{"401", func(*reply) (int, string) { return 401, "" }, func(t *testing.T, err error) {
			var he *HTTPError
			if !errors.As(err, &he) || he.StatusCode != 401 || !errors.Is(err, ErrAuth) || he.Host != "win1.example:5985" || he.Operation != "Get" {
				t.Errorf("err = %#v", err)
			}
		}},
		{"413", func(*reply) (int, string) { return 413, "" }, func(t *testing.T, err error) {
			if !errors.Is(err, ErrEnvelopeTooLarge) || err.Error() != "win1.example:5985: Get: HTTP 413 (request envelope too large for the host)" {
				t.Errorf("err = %v", err)
			}
		}},
		{"502 proxy page", func(*reply) (int, string) { return 502, "<html><body>Bad Gateway</body></html>" }, func(t *testing.T, err error) {
			var he *HTTPError
			if !errors.As(err, &he) || he.StatusCode != 502 || he.Kind != nil || he.BodyStart != "<html><body>Bad Gateway</body></html>" || he.Status != "Bad Gateway" {
				t.Errorf("err = %#v", err)
			}
		}},
		{"empty 500", func(*reply) (int, string) { return 500, "" }, func(t *testing.T, err error) {
			var he *HTTPError
			if !errors.As(err, &he) || he.StatusCode != 500 || he.BodyStart != "" || err.Error() != "win1.example:5985: Get: HTTP 500" {
				t.Errorf("err = %v", err)
			}
		}},
		{"long body is cut", func(*reply) (int, string) { return 503, strings.Repeat("x", 2000) }, func(t *testing.T, err error) {
			var he *HTTPError
			if !errors.As(err, &he) || len(he.BodyStart) != maxBodyStart {
				t.Errorf("err = %v", err)
			}
		}},
		{"500 fault", func(req *reply) (int, string) { return 500, faultBody(req) }, func(t *testing.T, err error) {
			var f *Fault
			if !errors.As(err, &f) || f.HTTPStatus != 500 || f.Host != "win1.example:5985" || f.Operation != "Get" || f.Action != ActionFaultWSMan || !IsNotFound(err) {
				t.Fatalf("err = %#v", err)
			}
			want := "win1.example:5985: Get: WS-Management fault InvalidSelectors (code 2150858843 = 0x8033805B): The WS-Management service cannot process the request because the request contained invalid selectors for the resource."
			if err.Error() != want {
				t.Errorf("Error() = %q", err.Error())
			}
		}},
		{"200 fault", func(req *reply) (int, string) { return 200, faultBody(req) }, func(t *testing.T, err error) {
			var f *Fault
			if !errors.As(err, &f) || f.HTTPStatus != 200 {
				t.Errorf("err = %v", err)
			}
		}},
		{"200 not SOAP", func(*reply) (int, string) { return 200, "hello" }, func(t *testing.T, err error) {
			var he *HTTPError
			if !errors.As(err, &he) || !errors.Is(err, ErrProtocol) || he.BodyStart != "hello" {
				t.Errorf("err = %v", err)
			}
		}},
		{"too deep", func(*reply) (int, string) { return 200, windowsReply(ActionGetResponse, "x", deep) }, func(t *testing.T, err error) {
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "depth") {
				t.Errorf("err = %v", err)
			}
		}},
		{"too many attributes", func(*reply) (int, string) {
			var b strings.Builder
			for i := range maxAttrs + 1 {
				fmt.Fprintf(&b, ` a%d="v"`, i)
			}
			return 200, windowsReply(ActionGetResponse, "x", "<p:A xmlns:p='urn:a'"+b.String()+"/>")
		}, func(t *testing.T, err error) {
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "element <p:A> has 258 attributes, more than the limit of 256") {
				t.Errorf("err = %v", err)
			}
		}},
		{"larger than MaxEnvelopeSize", func(*reply) (int, string) {
			return 200, windowsReply(ActionGetResponse, "x", "<p:A xmlns:p='urn:a'>"+strings.Repeat("x", DefaultMaxEnvelopeSize)+"</p:A>")
		}, func(t *testing.T, err error) {
			if !errors.Is(err, ErrReplyTooLarge) || !strings.Contains(err.Error(), "reply larger than the MaxEnvelopeSize sent: ") || !strings.HasSuffix(err.Error(), "limit 153600") {
				t.Errorf("err = %v", err)
			}
		}},
		{"DTD refused", func(*reply) (int, string) {
			return 200, `<!DOCTYPE s [<!ENTITY x "boom">]>` + windowsReply(ActionGetResponse, "x", "<p:A xmlns:p='urn:a'>&x;</p:A>")
		}, func(t *testing.T, err error) {
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("err = %v", err)
			}
		}},
		{"empty body", ok(ActionGetResponse, ""), func(t *testing.T, err error) {
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "empty s:Body") {
				t.Errorf("err = %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasSuffix(tc.name, " fault") {
				// faultBody reads a real capture with the parent's t: skip
				// here, in the subtest, when the captures are absent.
				wireDir(t)
			}
			f := &fakeHost{t: t, replies: []func(*reply) (int, string){tc.reply}}
			in, err := f.client().Get(context.Background(), wmiSvc, Options{})
			if err == nil {
				t.Fatalf("no error; got %+v", in)
			}
			tc.check(t, err)
		})
	}
	t.Run("transport error", func(t *testing.T) {
		c := NewClient(testEndpoint, transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
			return nil, context.DeadlineExceeded
		}))
		err := c.Delete(context.Background(), wmiSvc, Options{})
		if !errors.Is(err, context.DeadlineExceeded) || !IsAmbiguous(err) || err.Error() != "delete "+wmiSvc+" on win1.example:5985: context deadline exceeded (outcome unknown: the host may have carried out the request)" {
			t.Errorf("err = %v", err)
		}
	})
}

func TestEnumeratePullsAndReleases(t *testing.T) {
	ctx := context.Background()
	script := func() []func(*reply) (int, string) {
		return []func(*reply) (int, string){
			ok(ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext>uuid:CTX-0</n:EnumerationContext><w:Items>`+svc("S1")+`</w:Items></n:EnumerateResponse>`),
			ok(ActionPullResponse, `<n:PullResponse><n:EnumerationContext>uuid:CTX-1</n:EnumerationContext><n:Items>`+svc("S2")+svc("S3")+`</n:Items></n:PullResponse>`),
			ok(ActionPullResponse, `<n:PullResponse><n:EnumerationContext>uuid:CTX-2</n:EnumerationContext><n:Items>`+svc("S4")+svc("S5")+`</n:Items></n:PullResponse>`),
			ok(ActionPullResponse, `<n:PullResponse><n:Items>`+svc("S6")+`</n:Items><n:EndOfSequence/></n:PullResponse>`),
		}
	}
	contexts := func(f *fakeHost) (actions, ctxs []string) {
		for _, r := range f.reqs {
			rep, _ := parseEnvelope(r.Body)
			actions = append(actions, rep.headerText(NsAddressing, "Action"))
			if b := rep.bodyChild(); b != nil {
				if c := child(b, NsEnumeration, "EnumerationContext"); c != nil {
					ctxs = append(ctxs, textOf(c))
				}
			}
		}
		return actions, ctxs
	}
	t.Run("all", func(t *testing.T) {
		f := &fakeHost{t: t, replies: script()}
		var names []string
		for it, err := range f.client().Enumerate(ctx, "wmicimv2/Win32_Service", EnumerateOptions{Optimize: true}) {
			if err != nil {
				t.Fatal(err)
			}
			s, _ := it.Instance.String("Name")
			names = append(names, s)
		}
		if want := []string{"S1", "S2", "S3", "S4", "S5", "S6"}; !cmp.Equal(names, want) {
			t.Errorf("items %v, want %v", names, want)
		}
		actions, ctxs := contexts(f)
		if want := []string{ActionEnumerate, ActionPull, ActionPull, ActionPull}; !cmp.Equal(actions, want) {
			t.Errorf("actions %v", actions)
		}
		if want := []string{"uuid:CTX-0", "uuid:CTX-1", "uuid:CTX-2"}; !cmp.Equal(ctxs, want) {
			t.Errorf("pulled with contexts %v, want %v", ctxs, want)
		}
	})
	t.Run("early break releases", func(t *testing.T) {
		f := &fakeHost{t: t, replies: append(script()[:3], ok(ActionReleaseResponse, ""))}
		n := 0
		for _, err := range f.client().Enumerate(ctx, wmiSvc, EnumerateOptions{Optimize: true}) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 4 {
				break
			}
		}
		actions, ctxs := contexts(f)
		if want := []string{ActionEnumerate, ActionPull, ActionPull, ActionRelease}; !cmp.Equal(actions, want) {
			t.Errorf("actions %v", actions)
		}
		if want := []string{"uuid:CTX-0", "uuid:CTX-1", "uuid:CTX-2"}; !cmp.Equal(ctxs, want) {
			t.Errorf("contexts %v, want Release of uuid:CTX-2", ctxs)
		}
		golden(t, "release", f.reqs[3].Body)
	})
	t.Run("break on the last page sends no release", func(t *testing.T) {
		f := &fakeHost{t: t, replies: script()}
		n := 0
		for range f.client().Enumerate(ctx, wmiSvc, EnumerateOptions{}) {
			if n++; n == 6 {
				break
			}
		}
		if len(f.reqs) != 4 {
			t.Errorf("%d requests, want 4", len(f.reqs))
		}
	})
	t.Run("pull fault ends the sequence", func(t *testing.T) {
		f := &fakeHost{t: t, replies: append(script()[:1], func(req *reply) (int, string) {
			return 500, strings.Replace(string(readWire(t, "fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml")), "uuid:0CB1C49A-5054-4C12-AF30-FC60BE995DD9", req.headerText(NsAddressing, "MessageID"), 1)
		})}
		var items int
		var errs []error
		for it, err := range f.client().Enumerate(ctx, wmiSvc, EnumerateOptions{}) {
			if it != nil {
				items++
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		var fl *Fault
		if items != 1 || len(errs) != 1 || !errors.As(errs[0], &fl) || fl.Operation != "Pull" || fl.Subcode != "CannotProcessFilter" || fl.WMIError == nil {
			t.Errorf("items=%d errs=%v", items, errs)
		}
	})
	t.Run("pull timeout is retried", func(t *testing.T) {
		timedOut := func(req *reply) (int, string) {
			return 500, strings.Replace(string(readWire(t, "fault-w-TimedOut-receive.xml")), "uuid:9BE5F54A-6B47-487D-9ACD-65201E650446", req.headerText(NsAddressing, "MessageID"), 1)
		}
		s := script()
		f := &fakeHost{t: t, replies: []func(*reply) (int, string){s[0], timedOut, s[3]}}
		n := 0
		for _, err := range f.client().Enumerate(ctx, wmiSvc, EnumerateOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 2 || len(f.reqs) != 3 {
			t.Errorf("%d items over %d requests", n, len(f.reqs))
		}
	})
}

func TestResolveResourceURI(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"wmi/root/microsoft/bits/BitsClientJob", bitsJobURI},
		{"WMI/root/microsoft/bits/BitsClientJob", bitsJobURI},
		{"wmicimv2/Win32_Service", wmiSvc},
		{"wmicimv2/*", ResourceWMI + "/root/cimv2/*"},
		{"cimv2/CIM_Processor", ResourceCIM + "/CIM_Processor"},
		{"winrm/config", NsConfig},
		{"wsman/config/service", NsConfig + "/service"},
		{"shell/cmd", NsShell + "/cmd"},
		{"shell", NsShell},
		{bitsJobURI, bitsJobURI},
		{"http://schemas.microsoft.com/powershell/Microsoft.PowerShell", "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ResolveResourceURI(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ResolveResourceURI(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "Win32_Service", "foo/bar", "wmi/", "wmi//root", "wmi/root cimv2", "ftp://x/y", "http:///nohost", "wmi/root/\x00"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if got, err := ResolveResourceURI(bad); err == nil {
				t.Errorf("ResolveResourceURI(%q) = %q, want an error", bad, got)
			}
		})
	}
}

func TestEnumerateItemShapes(t *testing.T) {
	epr := `<a:EndpointReference><a:Address>` + AddressAnonymous + `</a:Address><a:ReferenceParameters><w:ResourceURI>` + wmiSvc + `</w:ResourceURI><w:SelectorSet><w:Selector Name="Name">%s</w:Selector></w:SelectorSet></a:ReferenceParameters></a:EndpointReference>`
	ref := func(name string) *EndpointReference {
		return &EndpointReference{Address: AddressAnonymous, ResourceURI: wmiSvc, Selectors: []Selector{{Name: "Name", Value: name}}}
	}
	for _, tc := range []struct {
		name, items string
		mode        EnumerationMode
		want        []string // "instance-name|epr-name"
	}{
		{"object and EPR", `<w:Item>` + svc("A") + fmt.Sprintf(epr, "A") + `</w:Item><w:Item>` + svc("B") + fmt.Sprintf(epr, "B") + `</w:Item>`, EnumerateObjectAndEPR, []string{"A|A", "B|B"}},
		{"EPR only", fmt.Sprintf(epr, "A") + fmt.Sprintf(epr, "B"), EnumerateEPR, []string{"|A", "|B"}},
		{"objects", svc("A"), EnumerateObjects, []string{"A|"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeHost{t: t, replies: []func(*reply) (int, string){
				ok(ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext></n:EnumerationContext><w:Items>`+tc.items+`</w:Items><w:EndOfSequence/></n:EnumerateResponse>`),
			}}
			var got []string
			for it, err := range f.client().Enumerate(context.Background(), wmiSvc, EnumerateOptions{Optimize: true, Mode: tc.mode}) {
				if err != nil {
					t.Fatal(err)
				}
				var in, e string
				if it.Instance != nil {
					in, _ = it.Instance.String("Name")
				}
				if it.EPR != nil {
					if diff := cmp.Diff(ref(it.EPR.Selectors[0].Value), it.EPR); diff != "" {
						t.Error(diff)
					}
					e = it.EPR.Selectors[0].Value
				}
				got = append(got, in+"|"+e)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestEnumerateEndlessEmptyPages: a peer that answers every Pull with a
// context and nothing else ends the sequence with an error instead of
// being pulled for ever.
func TestEnumerateEndlessEmptyPages(t *testing.T) {
	empty := ok(ActionPullResponse, `<n:PullResponse><n:EnumerationContext>uuid:CTX</n:EnumerationContext></n:PullResponse>`)
	replies := []func(*reply) (int, string){ok(ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext>uuid:CTX</n:EnumerationContext></n:EnumerateResponse>`)}
	for range maxEmptyPages {
		replies = append(replies, empty)
	}
	replies = append(replies, ok(ActionReleaseResponse, ""))
	f := &fakeHost{t: t, replies: replies}
	var errs []error
	for it, err := range f.client().Enumerate(context.Background(), wmiSvc, EnumerateOptions{}) {
		if it != nil {
			t.Fatalf("item %+v", it)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrProtocol) || !strings.HasSuffix(errs[0].Error(), "protocol violation: 101 answers in a row without items or end of sequence") {
		t.Fatalf("errs = %v", errs)
	}
	if len(f.reqs) != maxEmptyPages+2 {
		t.Errorf("%d requests, want %d (Enumerate, %d Pulls, Release)", len(f.reqs), maxEmptyPages+2, maxEmptyPages)
	}
}
