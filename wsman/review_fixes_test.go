package wsman

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// invalidEnumContext is the fault Windows sends for a context it no
// longer holds (wsman-wire.md §1.12, 0x8033801B).
func invalidEnumContext(req *reply) (int, string) {
	return 500, `<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"><s:Header><a:Action>` + ActionFaultEnumeration +
		`</a:Action><a:MessageID>uuid:5E6EE511-87B0-4C03-8084-15EEC39AD511</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>` + req.headerText(NsAddressing, "MessageID") +
		`</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>n:InvalidEnumerationContext</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The enumeration context supplied in the message is not valid.</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858779" Machine="win1"><f:Message>The enumeration context supplied in the message is not valid.</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>`
}

// TestEnumerateReleasesAfterFailedPull checks which failed Pulls are
// followed by a Release of the context the host may still hold.
func TestEnumerateReleasesAfterFailedPull(t *testing.T) {
	first := ok(ActionEnumerateResp, `<n:EnumerateResponse><n:EnumerationContext>uuid:CTX-0</n:EnumerationContext><w:Items>`+svc("S1")+`</w:Items></n:EnumerateResponse>`)
	second := ok(ActionPullResponse, `<n:PullResponse><n:EnumerationContext>uuid:CTX-1</n:EnumerationContext><n:Items>`+svc("S2")+`</n:Items></n:PullResponse>`)
	timedOut := func(t *testing.T) func(req *reply) (int, string) {
		return func(req *reply) (int, string) {
			return 500, strings.Replace(string(readWire(t, "fault-w-TimedOut-receive.xml")), "uuid:9BE5F54A-6B47-487D-9ACD-65201E650446", req.headerText(NsAddressing, "MessageID"), 1)
		}
	}
	releaseOK := ok(ActionReleaseResponse, "")
	releaseRefused := func(*reply) (int, string) { return 401, "" }
	tests := []struct {
		name string
		// replies after the EnumerateResponse and one PullResponse.
		replies func(t *testing.T) []func(*reply) (int, string)
		// cancel cancels the caller's context after the second item.
		cancel bool
		want   []string // actions after Enumerate, Pull
		check  func(error) bool
	}{
		{"proxy error page", func(*testing.T) []func(*reply) (int, string) {
			return []func(*reply) (int, string){func(*reply) (int, string) { return 400, "<html>Bad Request</html>" }, releaseOK}
		}, false, []string{ActionPull, ActionRelease}, func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.StatusCode == 400
		}},
		{"garbled reply", func(*testing.T) []func(*reply) (int, string) {
			return []func(*reply) (int, string){ok(ActionPullResponse, `<n:Nonsense/>`), releaseOK}
		}, false, []string{ActionPull, ActionRelease}, func(err error) bool { return errors.Is(err, ErrProtocol) }},
		{"Release failing is ignored", func(*testing.T) []func(*reply) (int, string) {
			return []func(*reply) (int, string){func(*reply) (int, string) { return 400, "" }, releaseRefused}
		}, false, []string{ActionPull, ActionRelease}, func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.StatusCode == 400 && !errors.Is(err, ErrAuth)
		}},
		{"TimedOut until the limit", func(t *testing.T) []func(*reply) (int, string) {
			var r []func(*reply) (int, string)
			for range maxPullTimeouts + 1 {
				r = append(r, timedOut(t))
			}
			return append(r, releaseOK)
		}, false, append(slices.Repeat([]string{ActionPull}, maxPullTimeouts+1), ActionRelease), IsTimedOut},
		{"InvalidEnumerationContext: the host dropped it", func(*testing.T) []func(*reply) (int, string) {
			return []func(*reply) (int, string){invalidEnumContext}
		}, false, []string{ActionPull}, func(err error) bool {
			var f *Fault
			return errors.As(err, &f) && f.Subcode == "InvalidEnumerationContext" && f.Operation == "Pull"
		}},
		{"caller cancelled", func(*testing.T) []func(*reply) (int, string) {
			return []func(*reply) (int, string){releaseOK}
		}, true, []string{ActionRelease}, func(err error) bool { return errors.Is(err, context.Canceled) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeHost{t: t, replies: append([]func(*reply) (int, string){first, second}, tt.replies(t)...)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var names []string
			var errs []error
			c := f.client()
			// Like a real transport, refuse to send under a cancelled
			// context: the Release must come with a context of its own.
			c.Transport = transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				return f.roundTrip(ctx, req)
			})
			for it, err := range c.Enumerate(ctx, wmiSvc, EnumerateOptions{Optimize: true}) {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				s, _ := it.Instance.String("Name")
				names = append(names, s)
				if tt.cancel && len(names) == 2 {
					cancel()
				}
			}
			if want := []string{"S1", "S2"}; !cmp.Equal(names, want) {
				t.Errorf("items %v, want %v", names, want)
			}
			if len(errs) != 1 || !tt.check(errs[0]) {
				t.Fatalf("errors %v", errs)
			}
			var actions, released []string
			for _, r := range f.reqs[2:] {
				rep, err := parseEnvelope(r.Body)
				if err != nil {
					t.Fatal(err)
				}
				a := rep.headerText(NsAddressing, "Action")
				actions = append(actions, a)
				if a == ActionRelease {
					released = append(released, textOf(child(rep.bodyChild(), NsEnumeration, "EnumerationContext")))
				}
			}
			if diff := cmp.Diff(tt.want, actions); diff != "" {
				t.Errorf("requests after the first Pull (-want +got):\n%s", diff)
			}
			if len(released) > 0 && !cmp.Equal(released, []string{"uuid:CTX-1"}) {
				t.Errorf("released %v, want the latest context uuid:CTX-1", released)
			}
		})
	}
}

// TestReplySizeOnlyBindsSOAP checks that the MaxEnvelopeSize limit is
// applied to SOAP replies only: a large error page is an HTTPError.
func TestReplySizeOnlyBindsSOAP(t *testing.T) {
	const soap = "application/soap+xml;charset=UTF-8"
	big := strings.Repeat("<p>Service Unavailable</p>", DefaultMaxEnvelopeSize/20)
	bigSOAP := windowsReply(ActionGetResponse, "x", "<p:A xmlns:p='urn:a'>"+strings.Repeat("x", DefaultMaxEnvelopeSize)+"</p:A>")
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantKind    error // for an HTTPError
		tooLarge    bool
	}{
		{"502 HTML page", http.StatusBadGateway, "text/html", big, nil, false},
		{"500 HTML page", http.StatusInternalServerError, "text/html; charset=utf-8", big, nil, false},
		{"502 even with a SOAP type", http.StatusBadGateway, soap, bigSOAP, nil, false},
		{"200 HTML page", http.StatusOK, "text/html", big, ErrProtocol, false},
		{"200 without a type", http.StatusOK, "", bigSOAP, ErrProtocol, false},
		{"200 SOAP", http.StatusOK, soap, bigSOAP, nil, true},
		{"500 SOAP", http.StatusInternalServerError, "Application/SOAP+XML; charset=utf-8", bigSOAP, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClient(testEndpoint, transport.Func(func(context.Context, *transport.Request) (*transport.Response, error) {
				return &transport.Response{StatusCode: tt.status, ContentType: tt.contentType, Body: []byte(tt.body)}, nil
			}))
			c.Retry = NoRetry
			_, err := c.Get(context.Background(), wmiSvc, Options{})
			if tt.tooLarge {
				want := "get " + wmiSvc + " on win1.example:5985: reply larger than the MaxEnvelopeSize sent: " + strconv.Itoa(len(tt.body)) + " bytes, limit 153600"
				if !errors.Is(err, ErrReplyTooLarge) || err.Error() != want {
					t.Errorf("err = %v\nwant %s", err, want)
				}
				return
			}
			var he *HTTPError
			if !errors.As(err, &he) || errors.Is(err, ErrReplyTooLarge) {
				t.Fatalf("err = %v, want an HTTPError", err)
			}
			if he.StatusCode != tt.status || he.BodyStart != strings.TrimSpace(tt.body[:maxBodyStart]) || he.Host != "win1.example:5985" || he.Operation != "Get" {
				t.Errorf("HTTPError = %+v", he)
			}
			if (tt.wantKind == nil) != (he.Kind == nil) || tt.wantKind != nil && !errors.Is(he.Kind, tt.wantKind) {
				t.Errorf("Kind = %v, want %v", he.Kind, tt.wantKind)
			}
			if tt.status == http.StatusBadGateway && !IsTransient(err) {
				t.Errorf("a 502 page must stay transient: %v", err)
			}
		})
	}
}

// TestDirectivesRefusedAnywhere checks that a DOCTYPE or ENTITY
// declaration is refused wherever it stands, on both readers: the fast
// reader leaves it to etree, and the etree path refuses it.
func TestDirectivesRefusedAnywhere(t *testing.T) {
	tests := []struct{ name, body string }{
		{"DOCTYPE before the root", `<!DOCTYPE s:Envelope>` + windowsReply(ActionGetResponse, "uuid:R", `<p:A xmlns:p="urn:a">1</p:A>`)},
		{"DOCTYPE in the body", windowsReply(ActionGetResponse, "uuid:R", `<!DOCTYPE x [<!ENTITY e "boom">]><p:A xmlns:p="urn:a">1</p:A>`)},
		{"DOCTYPE in an instance", windowsReply(ActionGetResponse, "uuid:R", `<p:A xmlns:p="urn:a"><!DOCTYPE x><p:B>1</p:B></p:A>`)},
		{"ENTITY in the header", strings.Replace(windowsReply(ActionGetResponse, "uuid:R", `<p:A xmlns:p="urn:a">1</p:A>`), "<s:Header>", `<s:Header><!ENTITY e "boom">`, 1)},
		{"ENTITY in a property", windowsReply(ActionGetResponse, "uuid:R", `<p:A xmlns:p="urn:a"><p:B>1<!ENTITY e "x"></p:B></p:A>`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFastReply([]byte(tt.body)); !errors.Is(err, errFastFallback) {
				t.Errorf("fast reader: err = %v, want errFastFallback", err)
			}
			if _, err := readXML([]byte(tt.body)); err != errDirective {
				t.Errorf("readXML: err = %v, want %v", err, errDirective)
			}
			f := &fakeHost{t: t, replies: []func(*reply) (int, string){func(req *reply) (int, string) {
				return 200, strings.Replace(tt.body, "uuid:R", req.headerText(NsAddressing, "MessageID"), 1)
			}}}
			_, err := f.client().Get(context.Background(), wmiSvc, Options{})
			var he *HTTPError
			if !errors.As(err, &he) || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), errDirective.Error()) {
				t.Errorf("Get: err = %v", err)
			}
		})
	}
}

// TestSelectorNameUnqualified checks that only the unqualified Name
// attribute names a selector, on both readers.
func TestSelectorNameUnqualified(t *testing.T) {
	created := func(sel string) string {
		return windowsReply(ActionCreateResponse, "uuid:R", `<x:ResourceCreated><a:Address>http://win1.example:5985/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>`+bitsJobURI+
			`</w:ResourceURI><w:SelectorSet xmlns:q="urn:q">`+sel+`</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>`)
	}
	tests := []struct {
		name, sel string
		want      []Selector
		wantErr   string
	}{
		{"unqualified", `<w:Selector Name="JobId">{1}</w:Selector>`, []Selector{{Name: "JobId", Value: "{1}"}}, ""},
		{"qualified only", `<w:Selector q:Name="JobId">{1}</w:Selector>`, nil, "selector without a Name attribute"},
		{"qualified first", `<w:Selector q:Name="Other" Name="JobId">{1}</w:Selector>`, []Selector{{Name: "JobId", Value: "{1}"}}, ""},
		{"w-qualified", `<w:Selector w:Name="JobId">{1}</w:Selector>`, nil, "selector without a Name attribute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(created(tt.sel))
			fr, err := parseFastReply(body)
			if err != nil {
				t.Fatalf("fast reader: %v", err)
			}
			rep, err := parseEnvelope(body)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []struct {
				name string
				rep  *reply
			}{{"fast", &reply{fast: fr}}, {"etree", rep}} {
				epr, ok, err := r.rep.resourceCreated()
				if !ok {
					t.Fatalf("%s: no ResourceCreated", r.name)
				}
				if tt.wantErr != "" {
					if err == nil || err.Error() != tt.wantErr {
						t.Errorf("%s: err = %v, want %q", r.name, err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				if diff := cmp.Diff(tt.want, epr.Selectors); diff != "" {
					t.Errorf("%s: selectors (-want +got):\n%s", r.name, diff)
				}
			}
		})
	}
}
