package wsman_test

import (
	"context"
	"encoding/base64"
	"errors"
	"html"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// The replay tests drive the real client against recorded exchanges in
// fixtures/soap/wsman/*: a request envelope that differs in anything but
// its MessageID (Action, ResourceURI, selectors, option sets, body,
// escaping, mustUnderstand attributes) fails with the replayer's line
// diff, and the parsed answers are checked exactly. See
// replay_record_test.go for re-recording.

// widget builds the instance the Widget provider renders.
func widget(caption, name string, state *string) *wsman.Instance {
	st := wsman.Value{Kind: wsman.KindNil}
	if state != nil {
		st = wsman.Value{Text: *state}
	}
	return &wsman.Instance{
		ClassName: "Widget", ResourceURI: widgetURI, TypeName: "Widget_Type",
		Props: []wsman.Property{
			{Name: "Caption", Values: []wsman.Value{{Text: caption}}},
			{Name: "Name", Values: []wsman.Value{{Text: name}}},
			{Name: "State", Values: []wsman.Value{st}},
			{Name: "Owner", Values: []wsman.Value{{Kind: wsman.KindNil}}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func byName(name string) wsman.Options {
	return wsman.Options{Selectors: []wsman.Selector{{Name: "Name", Value: name}}}
}

// faultOf returns err's *wsman.Fault or fails the test.
func faultOf(t *testing.T, err error) *wsman.Fault {
	t.Helper()
	var f *wsman.Fault
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *wsman.Fault", err, err)
	}
	return f
}

// faultSummary is what the tests compare of a fault.
type faultSummary struct {
	HTTPStatus int
	Action     string
	Code       string
	SubcodeNS  string
	Subcode    string
	Detail     string
	WSManCode  uint32
	Machine    string
	Error      string
}

func summarize(t *testing.T, err error) faultSummary {
	t.Helper()
	f := faultOf(t, err)
	return faultSummary{
		HTTPStatus: f.HTTPStatus, Action: f.Action, Code: f.Code, SubcodeNS: f.SubcodeNS, Subcode: f.Subcode,
		Detail: f.Detail, WSManCode: f.WSManCode, Machine: f.Machine, Error: err.Error(),
	}
}

// collect drains an enumeration, stopping after limit items (0: all).
func collect(t *testing.T, c *wsman.Client, uri string, opts wsman.EnumerateOptions, limit int) []*wsman.Item {
	t.Helper()
	var items []*wsman.Item
	for it, err := range c.Enumerate(context.Background(), uri, opts) {
		if err != nil {
			t.Fatalf("enumerate after %d items: %v", len(items), err)
		}
		items = append(items, it)
		if limit > 0 && len(items) == limit {
			break
		}
	}
	return items
}

func instancesOf(items []*wsman.Item) []*wsman.Instance {
	out := make([]*wsman.Instance, len(items))
	for i, it := range items {
		out[i] = it.Instance
	}
	return out
}

var fiveWidgets = []*wsman.Instance{
	widget("Widget number 0", "w000", ptr("0")),
	widget("Widget number 1", "w001", ptr("1")),
	widget("Widget number 2", "w002", ptr("2")),
	widget("Widget number 3", "w003", ptr("0")),
	widget("Widget number 4", "w004", ptr("1")),
}

type wsmanScenario struct {
	name  string
	setup serverSetup
	run   func(t *testing.T, c *wsman.Client)
	// flow is the expected exchanges (see flowSpy).
	flow []string
}

var wsmanScenarios = []wsmanScenario{
	{name: "identify", flow: []string{"Identify"}, run: func(t *testing.T, c *wsman.Client) {
		id, err := c.Identify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := &wsman.IdentifyResponse{
			ProtocolVersion: wsman.NsWSMan,
			ProductVendor:   "Microsoft Corporation",
			ProductVersion:  "OS: 0.0.0 SP: 0.0 Stack: 3.0",
		}
		if diff := cmp.Diff(want, id); diff != "" {
			t.Errorf("Identify (-want +got):\n%s", diff)
		}
	}},
	{name: "get", flow: []string{"Get:1"}, run: func(t *testing.T, c *wsman.Client) {
		in, err := c.Get(context.Background(), widgetURI, byName("w001"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(widget("Widget number 1", "w001", ptr("1")), in); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	}},
	{name: "get-sealed", setup: sealedNTLM, flow: []string{"Get:1", "Get fault"}, run: func(t *testing.T, c *wsman.Client) {
		// Recorded over sealed NTLM: the fixture holds the decrypted
		// envelopes, and a fault arrives sealed as well.
		ctx := context.Background()
		in, err := c.Get(ctx, widgetURI, byName("w004"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fiveWidgets[4], in); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
		_, err = c.Get(ctx, widgetURI, byName("w005"))
		if f := faultOf(t, err); f.Subcode != "DestinationUnreachable" || f.HTTPStatus != 500 {
			t.Errorf("sealed fault: %+v", f)
		}
	}},
	{name: "put", flow: []string{"Get:1", "Put:1", "Get fault"}, run: func(t *testing.T, c *wsman.Client) {
		ctx := context.Background()
		in, err := c.Get(ctx, widgetURI, byName("w002"))
		if err != nil {
			t.Fatal(err)
		}
		// Every character XML escapes, in an element and in a selector.
		const caption = `a&b <c> "d" 'e'`
		in.Set("Caption", caption)
		in.SetNil("State")
		out, err := c.Put(ctx, widgetURI, byName("w002"), in)
		if err != nil {
			t.Fatal(err)
		}
		want := widget(caption, "w002", nil)
		if diff := cmp.Diff(want, out); diff != "" {
			t.Errorf("Put (-want +got):\n%s", diff)
		}
		_, err = c.Get(ctx, widgetURI, byName(`x&<>"'`))
		if !wsman.IsNotFound(err) {
			t.Errorf("Get of a name with special characters: %v", err)
		}
	}},
	{name: "create-delete", flow: []string{"Create", "Get:1", "Create fault", "Delete", "Get fault", "Delete fault"}, run: func(t *testing.T, c *wsman.Client) {
		ctx := context.Background()
		in := wsman.NewInstance(widgetURI)
		in.Set("Name", "fresh")
		in.Set("State", "2")
		in.Set("Caption", "new & shiny")
		epr, err := c.Create(ctx, widgetURI, wsman.Options{}, in)
		if err != nil {
			t.Fatal(err)
		}
		wantEPR := &wsman.EndpointReference{
			Address:     "http://" + recordAddr + "/wsman",
			ResourceURI: widgetURI,
			Selectors:   []wsman.Selector{{Name: "Name", Value: "fresh"}},
		}
		if diff := cmp.Diff(wantEPR, epr); diff != "" {
			t.Errorf("Create EPR (-want +got):\n%s", diff)
		}
		got, err := c.Get(ctx, widgetURI, wsman.Options{Selectors: epr.Selectors})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(widget("new & shiny", "fresh", ptr("2")), got); diff != "" {
			t.Errorf("Get after Create (-want +got):\n%s", diff)
		}
		_, err = c.Create(ctx, widgetURI, wsman.Options{}, in)
		if f := faultOf(t, err); f.Subcode != "AlreadyExists" || f.WSManCode != 0x80338033 {
			t.Errorf("second Create: %v", err)
		}
		if err := c.Delete(ctx, widgetURI, byName("fresh")); err != nil {
			t.Fatal(err)
		}
		_, err = c.Get(ctx, widgetURI, byName("fresh"))
		if !wsman.IsNotFound(err) {
			t.Errorf("Get after Delete: %v", err)
		}
		err = c.Delete(ctx, widgetURI, byName("fresh"))
		if !wsman.IsNotFound(err) {
			t.Errorf("second Delete: %v", err)
		}
	}},
	{name: "invoke", flow: []string{"Paint", "Get:1", "Count", "Fail", "Paint fault"}, run: func(t *testing.T, c *wsman.Client) {
		ctx := context.Background()
		input := wsman.NewInstance(widgetURI)
		input.Set("Color", `blue & "green"`)
		out, err := c.Invoke(ctx, widgetURI, "Paint", byName("w003"), input)
		if err != nil {
			t.Fatal(err)
		}
		want := &wsman.Instance{ClassName: "Paint_OUTPUT", ResourceURI: widgetURI,
			Props: []wsman.Property{{Name: "ReturnValue", Values: []wsman.Value{{Text: "0"}}}}}
		if diff := cmp.Diff(want, out); diff != "" {
			t.Errorf("Paint (-want +got):\n%s", diff)
		}
		in, err := c.Get(ctx, widgetURI, byName("w003"))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := in.String("Caption"); got != `blue & "green" widget` {
			t.Errorf("Caption after Paint = %q", got)
		}
		static, err := c.Invoke(ctx, widgetURI, "Count", wsman.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = &wsman.Instance{ClassName: "Count_OUTPUT", ResourceURI: widgetURI,
			Props: []wsman.Property{{Name: "Total", Values: []wsman.Value{{Text: "5"}}}, {Name: "ReturnValue", Values: []wsman.Value{{Text: "0"}}}}}
		if diff := cmp.Diff(want, static); diff != "" {
			t.Errorf("Count (-want +got):\n%s", diff)
		}
		fail, err := c.Invoke(ctx, widgetURI, "Fail", wsman.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := fail.Uint64("ReturnValue"); err != nil || got != 2149580802 {
			t.Errorf("Fail ReturnValue = %d, %v", got, err)
		}
		_, err = c.Invoke(ctx, widgetURI, "Paint", byName("w003"), nil)
		if f := faultOf(t, err); f.Subcode != "InvalidParameter" || f.WSManCode != 87 || f.Detail != wsman.FaultDetailBase+"InvalidValue" {
			t.Errorf("Paint without Color: %+v", f)
		}
	}},
	{name: "enumerate-pull", flow: []string{"Enumerate", "Pull:2", "Pull:2", "Pull:1"}, run: func(t *testing.T, c *wsman.Client) {
		// Not optimized: the EnumerateResponse holds only a context, then
		// three Pulls of at most two items.
		items := collect(t, c, widgetURI, wsman.EnumerateOptions{MaxElements: 2}, 0)
		if diff := cmp.Diff(fiveWidgets, instancesOf(items)); diff != "" {
			t.Errorf("items (-want +got):\n%s", diff)
		}
	}},
	{name: "enumerate-release", flow: []string{"Enumerate:1", "Pull:2", "Release"}, run: func(t *testing.T, c *wsman.Client) {
		// One item in the EnumerateResponse (the server's optimized batch,
		// as Server 2012 answers), two in the first Pull, and a Release once
		// the caller stops after the third.
		items := collect(t, c, widgetURI, wsman.EnumerateOptions{Optimize: true, MaxElements: 2}, 3)
		if diff := cmp.Diff(fiveWidgets[:3], instancesOf(items)); diff != "" {
			t.Errorf("items (-want +got):\n%s", diff)
		}
	}},
	{name: "enumerate-optimized", flow: []string{"Enumerate:1", "Pull:4"}, run: func(t *testing.T, c *wsman.Client) {
		// Server 2012 puts one item in an optimized EnumerateResponse
		// whatever MaxElements says; the rest comes in a Pull.
		items := collect(t, c, widgetURI, wsman.EnumerateOptions{Optimize: true, MaxElements: 32000}, 0)
		if diff := cmp.Diff(fiveWidgets, instancesOf(items)); diff != "" {
			t.Errorf("items (-want +got):\n%s", diff)
		}
	}},
	{name: "enumerate-optimized-one-go", flow: []string{"Enumerate:5"}, setup: func(cfg *wsmantest.Config, _ *widgets) {
		cfg.OptimizedBatch = 32000
	}, run: func(t *testing.T, c *wsman.Client) {
		// Everything in the EnumerateResponse with w:EndOfSequence and an
		// empty context (Server 2003 style): one exchange, nothing to release.
		items := collect(t, c, widgetURI, wsman.EnumerateOptions{Optimize: true, MaxElements: 32000}, 0)
		if diff := cmp.Diff(fiveWidgets, instancesOf(items)); diff != "" {
			t.Errorf("items (-want +got):\n%s", diff)
		}
	}},
	{name: "enumerate-wql", flow: []string{"Enumerate:1", "Pull:1"}, run: func(t *testing.T, c *wsman.Client) {
		items := collect(t, c, wsman.ResourceWMI+"/root/test/*", wsman.EnumerateOptions{
			WQL: `SELECT * FROM Widget WHERE State = 1 AND Caption <> "x&<>'"`, Optimize: true, MaxElements: 10,
		}, 0)
		want := []*wsman.Instance{fiveWidgets[1], fiveWidgets[4]}
		if diff := cmp.Diff(want, instancesOf(items)); diff != "" {
			t.Errorf("items (-want +got):\n%s", diff)
		}
	}},
	{name: "enumerate-selector", flow: []string{"Enumerate:1"}, run: func(t *testing.T, c *wsman.Client) {
		items := collect(t, c, widgetURI, wsman.EnumerateOptions{
			SelectorFilter: []wsman.Selector{{Name: "Name", Value: "w002"}}, Optimize: true, MaxElements: 10,
		}, 0)
		if diff := cmp.Diff(fiveWidgets[2:3], instancesOf(items)); diff != "" {
			t.Errorf("items (-want +got):\n%s", diff)
		}
	}},
	{name: "enumerate-epr", flow: []string{"Enumerate:1", "Pull:3", "Pull:1"}, run: func(t *testing.T, c *wsman.Client) {
		items := collect(t, c, widgetURI, wsman.EnumerateOptions{Mode: wsman.EnumerateObjectAndEPR, Optimize: true, MaxElements: 3}, 0)
		if len(items) != 5 {
			t.Fatalf("%d items, want 5", len(items))
		}
		for i, it := range items {
			if diff := cmp.Diff(fiveWidgets[i], it.Instance); diff != "" {
				t.Errorf("item %d instance (-want +got):\n%s", i, diff)
			}
			want := &wsman.EndpointReference{
				Address:     wsman.AddressAnonymous,
				ResourceURI: widgetURI,
				Selectors:   []wsman.Selector{{Name: "Name", Value: fiveWidgets[i].Props[1].Values[0].Text}},
			}
			if diff := cmp.Diff(want, it.EPR); diff != "" {
				t.Errorf("item %d EPR (-want +got):\n%s", i, diff)
			}
		}
	}},
	{name: "fault-destination-unreachable", flow: []string{"Get fault", "Get fault"}, run: func(t *testing.T, c *wsman.Client) {
		ctx := context.Background()
		_, err := c.Get(ctx, widgetURI, byName("nope"))
		want := faultSummary{
			HTTPStatus: 500, Action: wsman.ActionFaultAddressing, Code: "Sender",
			SubcodeNS: wsman.NsAddressing, Subcode: "DestinationUnreachable", Detail: wsman.FaultDetailBase + "ResourceNotFound",
			WSManCode: wsman.CodeResourceNotFound, Machine: replayHost,
			Error: "SIMHOST: Get: WS-Management fault DestinationUnreachable (code 2150858752 = 0x80338000): " +
				"The WS-Management service cannot process the request. The service cannot find the resource identified by the resource URI and selectors.",
		}
		if diff := cmp.Diff(want, summarize(t, err)); diff != "" {
			t.Errorf("unknown instance (-want +got):\n%s", diff)
		}
		if !wsman.IsNotFound(err) {
			t.Errorf("IsNotFound(%v) = false", err)
		}
		_, err = c.Get(ctx, wsman.ResourceWMI+"/root/test/NoSuchClass", byName("w001"))
		if !wsman.IsNotFound(err) {
			t.Errorf("unknown class: IsNotFound(%v) = false", err)
		}
	}},
	{name: "fault-invalid-selectors", flow: []string{"Get fault", "Get fault"}, run: func(t *testing.T, c *wsman.Client) {
		ctx := context.Background()
		_, err := c.Get(ctx, widgetURI, wsman.Options{Selectors: []wsman.Selector{{Name: "Nmae", Value: "w001"}}})
		f := faultOf(t, err)
		if f.Subcode != "InvalidSelectors" || f.SubcodeNS != wsman.NsWSMan || f.HTTPStatus != 500 ||
			f.Detail != wsman.FaultDetailBase+"UnexpectedSelectors" || f.WSManCode != wsman.CodeInvalidSelectors {
			t.Errorf("unexpected selector: %+v", f)
		}
		_, err = c.Get(ctx, widgetURI, wsman.Options{})
		f = faultOf(t, err)
		if f.Subcode != "InvalidSelectors" || f.Detail != wsman.FaultDetailBase+"InsufficientSelectors" {
			t.Errorf("no selectors: %+v", f)
		}
	}},
	{name: "fault-action-not-supported", flow: []string{"Explode fault"}, run: func(t *testing.T, c *wsman.Client) {
		_, err := c.Invoke(context.Background(), widgetURI, "Explode", byName("w001"), nil)
		f := faultOf(t, err)
		if f.Subcode != "ActionNotSupported" || f.SubcodeNS != wsman.NsAddressing || f.WSManCode != wsman.CodeActionNotSupported ||
			f.Action != wsman.ActionFaultAddressing || f.HTTPStatus != 500 {
			t.Errorf("unknown method: %+v", f)
		}
	}},
}

// TestReplay replays every generic fixture (or records it, see
// replay_record_test.go).
func TestReplay(t *testing.T) {
	for _, sc := range wsmanScenarios {
		t.Run(sc.name, func(t *testing.T) {
			c, spy, check := replayClient(t, "wsman/"+sc.name, sc.setup)
			sc.run(t, c)
			check()
			if diff := cmp.Diff(sc.flow, spy.Flow()); diff != "" {
				t.Errorf("exchanges (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReplayDetectsChangedRequest proves the fixtures guard the request
// side: a request that differs from the recording fails with a diff that
// names the recorded and the sent line.
func TestReplayDetectsChangedRequest(t *testing.T) {
	if recording() {
		t.Skip("recording")
	}
	tests := []struct {
		name    string
		fixture string
		call    func(c *wsman.Client) error
		// edit, when set, rewrites each request body on its way to the
		// replayer, standing in for a client that renders differently.
		edit func(string) string
		want []string // regexps, each matching a whole line of the error
	}{
		{
			name: "selector value", fixture: "wsman/get",
			call: func(c *wsman.Client) error {
				_, err := c.Get(context.Background(), widgetURI, byName("w002"))
				return err
			},
			want: []string{
				`get .* on SIMHOST: replay wsman/get: request 001 differs from the recording \(-recorded \+sent\):`,
				`-\s*\d+ +<w:Selector Name="Name">w001</w:Selector>`,
				`\+\s*\d+ +<w:Selector Name="Name">w002</w:Selector>`,
			},
		},
		{
			name: "escaped value", fixture: "wsman/put",
			call: func(c *wsman.Client) error {
				_, err := c.Get(context.Background(), widgetURI, byName("w002&"))
				return err
			},
			want: []string{
				`-\s*\d+ +<w:Selector Name="Name">w002</w:Selector>`,
				`\+\s*\d+ +<w:Selector Name="Name">w002&amp;</w:Selector>`,
			},
		},
		{
			name: "escaping of an apostrophe", fixture: "wsman/put",
			call: func(c *wsman.Client) error {
				ctx := context.Background()
				in, err := c.Get(ctx, widgetURI, byName("w002"))
				if err != nil {
					return err
				}
				in.Set("Caption", `a&b <c> "d" 'e'`)
				in.SetNil("State")
				_, err = c.Put(ctx, widgetURI, byName("w002"), in)
				return err
			},
			edit: func(body string) string { return strings.ReplaceAll(body, `'e'`, `&apos;e&apos;`) },
			want: []string{
				`-\s*\d+ +` + regexp.QuoteMeta(`<p:Caption>a&amp;b &lt;c&gt; "d" 'e'</p:Caption>`),
				`\+\s*\d+ +` + regexp.QuoteMeta(`<p:Caption>a&amp;b &lt;c&gt; "d" &apos;e&apos;</p:Caption>`),
			},
		},
		{
			name: "mustUnderstand", fixture: "wsman/get",
			call: func(c *wsman.Client) error {
				_, err := c.Get(context.Background(), widgetURI, byName("w001"))
				return err
			},
			edit: func(body string) string {
				return strings.Replace(body, `<w:ResourceURI s:mustUnderstand="true">`, `<w:ResourceURI>`, 1)
			},
			want: []string{
				`-\s*\d+ +<w:ResourceURI s:mustUnderstand="true">` + regexp.QuoteMeta(widgetURI) + `</w:ResourceURI>`,
				`\+\s*\d+ +<w:ResourceURI>` + regexp.QuoteMeta(widgetURI) + `</w:ResourceURI>`,
			},
		},
		{
			name: "method", fixture: "wsman/fault-action-not-supported",
			call: func(c *wsman.Client) error {
				_, err := c.Invoke(context.Background(), widgetURI, "Implode", byName("w001"), nil)
				return err
			},
			want: []string{
				`-\s*\d+ +<a:Action s:mustUnderstand="true">` + regexp.QuoteMeta(widgetURI) + `/Explode</a:Action>`,
				`\+\s*\d+ +<a:Action s:mustUnderstand="true">` + regexp.QuoteMeta(widgetURI) + `/Implode</a:Action>`,
			},
		},
		{
			name: "operation", fixture: "wsman/get",
			call: func(c *wsman.Client) error {
				return c.Delete(context.Background(), widgetURI, byName("w001"))
			},
			want: []string{
				`-\s*\d+ +<a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action>`,
				`\+\s*\d+ +<a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete</a:Action>`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := replayClient(t, tt.fixture, nil)
			if tt.edit != nil {
				next := c.Transport
				c.Transport = transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
					r := *req
					r.Body = []byte(tt.edit(string(req.Body)))
					return next.RoundTrip(ctx, &r)
				})
			}
			err := tt.call(c)
			if err == nil {
				t.Fatal("changed request was answered from the recording")
			}
			for _, re := range tt.want {
				if !regexp.MustCompile(`(?m)^` + re + `$`).MatchString(err.Error()) {
					t.Errorf("error does not match line %q:\n%v", re, err)
				}
			}
		})
	}
}

// TestFixturesHoldNoPassword scans every fixture for the recording
// password, raw, XML-escaped or inside a Basic Authorization header.
func TestFixturesHoldNoPassword(t *testing.T) {
	forbidden := []string{
		recordPassword,
		html.EscapeString(recordPassword),
		strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(recordPassword),
		strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(recordPassword),
		base64.StdEncoding.EncodeToString([]byte(recordUser + ":" + recordPassword)),
	}
	scanFixtures(t, forbidden)
}

// scanFixtures fails for any file under fixtureDir holding one of secrets.
func scanFixtures(t *testing.T, secrets []string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(fixtureDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds the secret %q", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("only %d fixture files under %s", files, fixtureDir)
	}
}
