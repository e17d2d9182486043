package wsmantest_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

func replaceRE(re, with string) func(string) string {
	r := regexp.MustCompile(re)
	return func(s string) string {
		out := r.ReplaceAllString(s, with)
		if out == s {
			panic("test edit " + re + " matched nothing")
		}
		return out
	}
}

// TestValidationFaults sends requests Windows rejects and checks every
// field of the fault, as parsed by the real client.
func TestValidationFaults(t *testing.T) {
	s, _ := newServer(t, wsmantest.Config{Machine: "SIMHOST"}, 3)
	base := newClient(t, s, "basic", testPass, nil)
	ctx := context.Background()
	get := func(c *wsman.Client, name string) error {
		_, err := c.Get(ctx, widgetURI, sel("Name", name))
		return err
	}
	type want struct {
		code, subNS, sub, action, detail string
		wsmanCode                        uint32
		reason, message                  string
	}
	tests := []struct {
		name string
		call func() error
		want want
	}{
		{"missing MessageID", func() error {
			return get(rewriting(base, replaceRE(`<a:MessageID>[^<]*</a:MessageID>`, "")), "w000")
		}, want{"Sender", wsman.NsAddressing, "MessageInformationHeaderRequired", wsman.ActionFaultAddressing, "", 2150858769,
			"The WS-Management service cannot process the request. The request does not have all the expected SOAP headers.", ""}},
		{"garbled MessageID", func() error {
			return get(rewriting(base, replaceRE(`<a:MessageID>[^<]*</a:MessageID>`, "<a:MessageID>urn:not-a-uuid</a:MessageID>")), "w000")
		}, want{"Sender", wsman.NsAddressing, "InvalidMessageInformationHeader", wsman.ActionFaultAddressing, "", 2150858767,
			"The WS-Management service cannot process the request. The request contains one or more invalid SOAP headers.", ""}},
		{"missing ReplyTo", func() error {
			return get(rewriting(base, replaceRE(`<a:ReplyTo>.*?</a:ReplyTo>`, "")), "w000")
		}, want{"Sender", wsman.NsAddressing, "MessageInformationHeaderRequired", wsman.ActionFaultAddressing, "", 2150858769, "", ""}},
		{"ReplyTo not anonymous", func() error {
			return get(rewriting(base, replaceRE(`role/anonymous</a:Address>`, "role/elsewhere</a:Address>")), "w000")
		}, want{"Sender", wsman.NsWSMan, "UnsupportedFeature", wsman.ActionFaultWSMan, wsman.FaultDetailBase + "AddressingMode", 2150858818,
			"The WS-Management service does not support the specified feature. Remove the unsupported feature from the request and retry.", ""}},
		{"Locale mustUnderstand", func() error {
			return get(rewriting(base, replaceRE(`<w:Locale s:mustUnderstand="false"`, `<w:Locale s:mustUnderstand="true"`)), "w000")
		}, want{"Sender", wsman.NsWSMan, "UnsupportedFeature", wsman.ActionFaultWSMan, wsman.FaultDetailBase + "Locale", 2150858887, "", ""}},
		{"negative OperationTimeout", func() error {
			return get(rewriting(base, replaceRE(`<w:OperationTimeout>[^<]*<`, "<w:OperationTimeout>PT-1S<")), "w000")
		}, want{"Sender", wsman.NsAddressing, "InvalidMessageInformationHeader", wsman.ActionFaultAddressing, "", 2150858767,
			"The WS-Management service cannot process the request. The request contains one or more invalid SOAP headers.",
			"The WS-Management service cannot process the request. The XML contains an invalid timeout field in the SOAP header: PT-1S."}},
		{"MaxEnvelopeSize below 8192", func() error {
			return get(rewriting(base, replaceRE(`>153600<`, ">4096<")), "w000")
		}, want{"Sender", wsman.NsWSMan, "EncodingLimit", wsman.ActionFaultWSMan, wsman.FaultDetailBase + "MinimumEnvelopeLimit", 2150858878, "", ""}},
		{"unknown mustUnderstand header", func() error {
			return get(rewriting(base, replaceRE(`<s:Header>`, `<s:Header><x:Frob xmlns:x="urn:frob" s:mustUnderstand="true">1</x:Frob>`)), "w000")
		}, want{"MustUnderstand", "", "", wsman.ActionFaultAddressing, "", 2150858768, "", ""}},
		{"unknown resource URI", func() error {
			_, err := base.Get(ctx, wsman.ResourceWMI+"/root/test/Gadget", sel("Name", "x"))
			return err
		}, want{"Sender", wsman.NsAddressing, "DestinationUnreachable", wsman.ActionFaultAddressing, wsman.FaultDetailBase + "ResourceNotFound", 2150858752,
			"The WS-Management service cannot process the request. The service cannot find the resource identified by the resource URI and selectors.", ""}},
		{"unexpected selector", func() error {
			_, err := base.Get(ctx, widgetURI, sel("Bogus", "1"))
			return err
		}, want{"Sender", wsman.NsWSMan, "InvalidSelectors", wsman.ActionFaultWSMan, wsman.FaultDetailBase + "UnexpectedSelectors", 2150858843,
			"The WS-Management service cannot process the request because the request contained invalid selectors for the resource.", ""}},
		{"missing selector", func() error {
			_, err := base.Get(ctx, widgetURI, wsman.Options{})
			return err
		}, want{"Sender", wsman.NsWSMan, "InvalidSelectors", wsman.ActionFaultWSMan, wsman.FaultDetailBase + "InsufficientSelectors", 2150858842, "", ""}},
		{"unknown action", func() error {
			return get(rewriting(base, replaceRE(`transfer/Get<`, "transfer/Frobnicate<")), "w000")
		}, want{"Sender", wsman.NsAddressing, "ActionNotSupported", wsman.ActionFaultAddressing, "", 2150858771,
			"The WS-Management service does not support the action specified in the request.", ""}},
		{"provider blocks past OperationTimeout", func() error {
			c := *base
			c.OperationTimeout = 150 * time.Millisecond
			return get(&c, "slow")
		}, want{"Receiver", wsman.NsWSMan, "TimedOut", wsman.ActionFaultWSMan, "", 2150858793,
			"The WS-Management service cannot complete the operation within the time specified in OperationTimeout.", ""}},
		{"provider plain error", func() error {
			return get(base, "boom")
		}, want{"Receiver", wsman.NsWSMan, "InternalError", wsman.ActionFaultWSMan, "", 2147500037, "disk on fire", ""}},
		{"mustComply option on a WMI URI", func() error {
			c := rewriting(base, replaceRE(`<w:Option `, `<w:Option mustComply="true" `))
			_, err := c.Get(ctx, widgetURI, wsman.Options{Selectors: []wsman.Selector{{Name: "Name", Value: "w000"}}, OptionSet: []wsman.Option{{Name: "x", Value: "1"}}})
			return err
		}, want{"Sender", wsman.NsWSMan, "InvalidOptions", wsman.ActionFaultWSMan, wsman.FaultDetailBase + "NotSupported", 2150858833, "", ""}},
		{"Pull with unknown context", func() error {
			c := rewriting(base, func(s string) string {
				if !strings.Contains(s, "enumeration/Pull<") {
					return s
				}
				return replaceRE(`EnumerationContext>uuid:[0-9A-Fa-f-]+<`, "EnumerationContext>uuid:00000000-0000-0000-0000-000000000000<")(s)
			})
			for _, err := range c.Enumerate(ctx, widgetURI, wsman.EnumerateOptions{}) {
				if err != nil {
					return err
				}
			}
			return nil
		}, want{"Receiver", wsman.NsEnumeration, "InvalidEnumerationContext", wsman.ActionFaultEnumeration, "", 2150858779,
			"The WS-Enumeration context in the enumeration is not valid. Enumeration may have been completed or canceled. You cannot use this enumeration context anymore. Start a new enumeration.", ""}},
		{"unknown filter dialect", func() error {
			c := rewriting(base, replaceRE(`Dialect="[^"]*"`, `Dialect="http://www.w3.org/TR/1999/REC-xpath-19991116"`))
			for _, err := range c.Enumerate(ctx, widgetURI, wsman.EnumerateOptions{WQL: "select * from Widget"}) {
				if err != nil {
					return err
				}
			}
			return nil
		}, want{"Sender", wsman.NsEnumeration, "FilterDialectRequestedUnavailable", wsman.ActionFaultEnumeration,
			wsman.FaultDetailBase + "FilterDialectRequestedUnavailable", 2150858777, "", ""}},
		{"Put of another class", func() error {
			in := wsman.NewInstance(wsman.ResourceWMI + "/root/test/Gadget")
			in.Set("Name", "w000")
			_, err := base.Put(ctx, widgetURI, sel("Name", "w000"), in)
			return err
		}, want{"Sender", wsman.NsTransfer, "InvalidRepresentation", wsman.ActionFaultTransfer, "", 2150858773, "", ""}},
		{"malformed XML", func() error {
			return get(rewriting(base, replaceRE(`</s:Envelope>`, "</s:Envelop>")), "w000")
		}, want{"Sender", wsman.NsWSMan, "SchemaValidationError", wsman.ActionFaultWSMan, "", 2150858819, "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := asFault(t, tt.call())
			w := tt.want
			if f.HTTPStatus != 500 || f.Code != w.code || f.SubcodeNS != w.subNS || f.Subcode != w.sub || f.Action != w.action ||
				f.Detail != w.detail || f.WSManCode != w.wsmanCode || f.Machine != "SIMHOST" {
				t.Errorf("fault:\n got status=%d code=%s sub={%s}%s action=%s detail=%s wsman=%d machine=%s\nwant code=%s sub={%s}%s action=%s detail=%s wsman=%d",
					f.HTTPStatus, f.Code, f.SubcodeNS, f.Subcode, f.Action, f.Detail, f.WSManCode, f.Machine,
					w.code, w.subNS, w.sub, w.action, w.detail, w.wsmanCode)
			}
			if w.reason != "" && f.Reason != w.reason {
				t.Errorf("reason = %q, want %q", f.Reason, w.reason)
			}
			if w.message != "" && f.Message != w.message {
				t.Errorf("message = %q, want %q", f.Message, w.message)
			}
			if w.sub == "InternalError" && (f.ProviderFault == nil || f.ProviderFault.Text != w.reason) {
				t.Errorf("provider fault = %+v", f.ProviderFault)
			}
		})
	}
}

// TestUnknownOptionalHeaderAccepted: a header WinRM does not know but that
// is not mustUnderstand is ignored, as SOAP requires.
func TestUnknownOptionalHeaderAccepted(t *testing.T) {
	s, _ := newServer(t, wsmantest.Config{}, 1)
	c := rewriting(newClient(t, s, "basic", testPass, nil), replaceRE(`<s:Header>`, `<s:Header><x:Frob xmlns:x="urn:frob">1</x:Frob>`))
	if _, err := c.Get(context.Background(), widgetURI, sel("Name", "w000")); err != nil {
		t.Fatal(err)
	}
}

// TestEnvelopeLimits: a request above MaxEnvelopeSizekb gets HTTP 413; a
// reply above the request's MaxEnvelopeSize gets w:EncodingLimit.
func TestEnvelopeLimits(t *testing.T) {
	s, w := newServer(t, wsmantest.Config{MaxEnvelopeSizeKB: 16}, 1)
	w.add("big", "1", strings.Repeat("x", 12000))
	c := newClient(t, s, "basic", testPass, nil)
	ctx := context.Background()

	in := wsman.NewInstance(widgetURI)
	in.Set("Caption", strings.Repeat("y", 20000))
	_, err := c.Put(ctx, widgetURI, sel("Name", "w000"), in)
	var he *wsman.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 413 || !errors.Is(err, wsman.ErrEnvelopeTooLarge) {
		t.Errorf("oversized request: %v", err)
	}

	c.MaxEnvelopeSize = 8192
	_, err = c.Get(ctx, widgetURI, sel("Name", "big"))
	if f := asFault(t, err); f.Subcode != "EncodingLimit" || f.WSManCode != 2150858824 || f.Detail != wsman.FaultDetailBase+"MaxEnvelopeSize" {
		t.Errorf("oversized reply: %+v", f)
	}
	c.MaxEnvelopeSize = 0 // 153600, clamped by the server to 16 KiB: fits
	if _, err := c.Get(ctx, widgetURI, sel("Name", "big")); err != nil {
		t.Errorf("Get within the limit: %v", err)
	}
}

// TestWMIFaultHelpers checks the two WMI error shapes providers can return
// as the real client parses them.
func TestWMIFaultHelpers(t *testing.T) {
	s, _ := newServer(t, wsmantest.Config{Machine: "SIMHOST"}, 1)
	c := newClient(t, s, "basic", testPass, nil)
	ctx := context.Background()

	_, err := c.Get(ctx, widgetURI, sel("Name", "wmierror"))
	f := asFault(t, err)
	if f.Code != "Receiver" || f.Subcode != "InternalError" || f.Reason != "Not found" || f.WMIError == nil || f.WMIError.ClassName != "MSFT_WmiError" {
		t.Fatalf("FaultWMI: %+v", f)
	}
	for name, want := range map[string]string{"error_Code": "2147749890", "MessageID": "HRESULT 0x80041002", "CIMStatusCode": "6", "error_Type": "HRESULT"} {
		if got := mustString(t, f.WMIError, name); got != want {
			t.Errorf("MSFT_WmiError %s = %q, want %q", name, got, want)
		}
	}

	_, err = c.Get(ctx, widgetURI, sel("Name", "extstatus"))
	f = asFault(t, err)
	if f.WSManCode != 0x80041002 || f.ProviderFault == nil || f.ProviderFault.WSManCode != 0x80041002 || f.WMIError == nil || f.WMIError.ClassName != "__ExtendedStatus" {
		t.Fatalf("FaultExtendedStatus: %+v", f)
	}
	for name, want := range map[string]string{"Operation": "GetObject", "ParameterInfo": `Widget.Name="extstatus"`, "StatusCode": "2147749890", "ProviderName": "WinMgmt"} {
		if got := mustString(t, f.WMIError, name); got != want {
			t.Errorf("__ExtendedStatus %s = %q, want %q", name, got, want)
		}
	}
}
