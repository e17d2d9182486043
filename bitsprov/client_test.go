package bitsprov

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// call is one request as the host saw it.
type call struct {
	Action      string
	ResourceURI string
	Selectors   string // "Name=Value,…"
	Body        string // the s:Body child, serialised; "" for an empty body
}

// fakeHost is a WS-Man endpoint behind transport.Func: it records what
// the client sends and answers with envelopes built from reply.
type fakeHost struct {
	mu    sync.Mutex
	calls []call
	// reply returns the HTTP status, the reply Action and the s:Body content.
	reply func(c call) (status int, action, body string)
}

func (h *fakeHost) client() *Client {
	w := wsman.NewClient("http://srv1:5985/wsman", transport.Func(h.roundTrip))
	return NewClient(w)
}

func (h *fakeHost) roundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(req.Body); err != nil {
		return nil, err
	}
	env := doc.Root()
	var c call
	var msgID string
	var sels []string
	for _, el := range env.FindElements("./*/*") {
		switch {
		case el.Parent().Tag == "Header" && el.Tag == "Action":
			c.Action = el.Text()
		case el.Parent().Tag == "Header" && el.Tag == "ResourceURI":
			c.ResourceURI = el.Text()
		case el.Parent().Tag == "Header" && el.Tag == "MessageID":
			msgID = el.Text()
		case el.Parent().Tag == "Header" && el.Tag == "SelectorSet":
			for _, s := range el.ChildElements() {
				sels = append(sels, s.SelectAttrValue("Name", "")+"="+s.Text())
			}
		case el.Parent().Tag == "Body":
			d := etree.NewDocument()
			d.SetRoot(el.Copy())
			c.Body, _ = d.WriteToString()
		}
	}
	c.Selectors = strings.Join(sels, ",")
	h.mu.Lock()
	h.calls = append(h.calls, c)
	h.mu.Unlock()
	status, action, body := h.reply(c)
	env2 := `<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">` +
		`<s:Header><a:Action>` + action + `</a:Action><a:MessageID>uuid:00000000-0000-0000-0000-000000000001</a:MessageID>` +
		`<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>` + msgID + `</a:RelatesTo></s:Header>` +
		`<s:Body>` + body + `</s:Body></s:Envelope>`
	return &transport.Response{StatusCode: status, ContentType: "application/soap+xml", Body: []byte(env2)}, nil
}

const (
	testJobID = "{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}"
	pNS       = `xmlns:p="` + ResourceURI + `"`
)

// output renders a method's _OUTPUT body.
func output(method string, kv ...string) string {
	var b strings.Builder
	b.WriteString(`<p:` + method + `_OUTPUT xmlns:p="` + ResourceURI + `">`)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "<p:%s>%s</p:%s>", kv[i], kv[i+1], kv[i])
	}
	b.WriteString(`</p:` + method + `_OUTPUT>`)
	return b.String()
}

// jobXML is a GetResponse body of a BitsClientJob as the provider would
// render it, with one embedded BitsClientFile.
func jobXML(state, priority string) string {
	return `<p:BitsClientJob xmlns:p="` + ResourceURI + `" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="p:BitsClientJob_Type">` +
		`<p:BytesTotal>18446744073709551615</p:BytesTotal><p:BytesTransferred>0</p:BytesTransferred>` +
		`<p:Description xsi:nil="true"/><p:DisplayName>TestJob</p:DisplayName>` +
		`<p:Files><p:BitsClientFile xmlns:p="` + FileResourceURI + `" xsi:type="p:BitsClientFile_Type">` +
		`<p:BytesTotal>18446744073709551615</p:BytesTotal><p:BytesTransferred>0</p:BytesTransferred><p:Completed>false</p:Completed>` +
		`<p:LocalFile>C:\dl\a.bin</p:LocalFile><p:RemoteUrl>https://server01/dir/a.bin</p:RemoteUrl></p:BitsClientFile></p:Files>` +
		`<p:FilesTotal>1</p:FilesTotal><p:FilesTransferred>0</p:FilesTransferred>` +
		`<p:JobCompletionTime>0</p:JobCompletionTime><p:JobCreationTime>133000000000000000</p:JobCreationTime>` +
		`<p:JobId>` + testJobID + `</p:JobId><p:JobLastModificationTime>133000000010000000</p:JobLastModificationTime>` +
		`<p:MinimumRetryDelay>600</p:MinimumRetryDelay><p:NoProgressTimeout>1209600</p:NoProgressTimeout>` +
		`<p:Owner>NT AUTHORITY\NETWORK SERVICE</p:Owner><p:Priority>` + priority + `</p:Priority><p:State>` + state + `</p:State>` +
		`<p:TransientErrorCount>0</p:TransientErrorCount></p:BitsClientJob>`
}

// okHost answers every method with ReturnValue 0 (CreateJob with a JobId),
// Get with jobXML and Put with the instance it was sent.
func okHost() *fakeHost {
	h := &fakeHost{}
	h.reply = func(c call) (int, string, string) {
		switch {
		case c.Action == wsman.ActionGet:
			return 200, wsman.ActionGetResponse, jobXML("3", "2")
		case c.Action == wsman.ActionPut:
			return 200, wsman.ActionPutResponse, c.Body
		case strings.HasSuffix(c.Action, "/CreateJob"):
			return 200, c.Action + "Response", output("CreateJob", "JobId", testJobID, "ReturnValue", "0")
		}
		m := c.Action[strings.LastIndex(c.Action, "/")+1:]
		return 200, c.Action + "Response", output(m, "ReturnValue", "0")
	}
	return h
}

func TestCreateJobSafePattern(t *testing.T) {
	h := okHost()
	c := h.client()
	pri := PriorityHigh
	acct := AccountLocalSystem
	id, err := c.CreateJob(context.Background(), CreateJobOptions{
		DisplayName:       `Job & <"tag">`,
		RemoteURL:         "https://server01/dir/a.bin?x=1&y=2",
		LocalFile:         `C:\dl\a.bin`,
		ServiceAccount:    &acct,
		Description:       "d'scr",
		Marker:            "bitsremote:test-1",
		Priority:          &pri,
		MinimumRetryDelay: 60 * time.Second,
		ExtraFiles:        []FileSpec{{RemoteURL: "https://server01/dir/b.bin", LocalFile: `C:\dl\b.bin`}},
		Credentials:       []Credential{{Target: TargetServer, Scheme: SchemeNTLM, UserName: `DOM\u`, Password: "p<&>w"}},
		Proxy:             &ProxySettings{Usage: ProxyOverride, List: []string{"http://proxy1:8080", "proxy2"}, Bypass: []string{"<local>"}},
	})
	if err != nil || id != testJobID {
		t.Fatalf("CreateJob = %q, %v", id, err)
	}
	m := func(name string) string { return ResourceURI + "/" + name }
	sel := "JobId=" + testJobID
	want := []call{
		{m("CreateJob"), ResourceURI, "", `<p:CreateJob_INPUT ` + pNS + `><p:DisplayName>Job &amp; &lt;&quot;tag&quot;&gt;</p:DisplayName>` +
			`<p:RemoteUrl>https://server01/dir/a.bin?x=1&amp;y=2</p:RemoteUrl><p:LocalFile>C:\dl\a.bin</p:LocalFile>` +
			`<p:ServiceAccount>0</p:ServiceAccount><p:Type>0</p:Type><p:Suspend>true</p:Suspend><p:Description>d&apos;scr [bitsremote:test-1]</p:Description></p:CreateJob_INPUT>`},
		{m("AddFile"), ResourceURI, sel, `<p:AddFile_INPUT ` + pNS + `><p:remoteUrl>https://server01/dir/b.bin</p:remoteUrl><p:localFile>C:\dl\b.bin</p:localFile></p:AddFile_INPUT>`},
		{wsman.ActionGet, ResourceURI, sel, ""},
		{wsman.ActionPut, ResourceURI, sel, strings.NewReplacer(
			"<p:MinimumRetryDelay>600<", "<p:MinimumRetryDelay>60<",
			"<p:Priority>2<", "<p:Priority>1<").Replace(canonical(t, jobXML("3", "2")))},
		{m("SetCredentials"), ResourceURI, sel, `<p:SetCredentials_INPUT ` + pNS + `><p:Target>0</p:Target><p:Scheme>2</p:Scheme>` +
			`<p:UserName>DOM\u</p:UserName><p:Password>p&lt;&amp;&gt;w</p:Password></p:SetCredentials_INPUT>`},
		{m("SetProxySettings"), ResourceURI, sel, `<p:SetProxySettings_INPUT ` + pNS + `><p:ProxyUsage>2</p:ProxyUsage>` +
			`<p:ProxyList>http://proxy1:8080 proxy2</p:ProxyList><p:ProxyBypassList>&lt;local&gt;</p:ProxyBypassList></p:SetProxySettings_INPUT>`},
		{m("SetJobState"), ResourceURI, sel, `<p:SetJobState_INPUT ` + pNS + `><p:JobState>2</p:JobState></p:SetJobState_INPUT>`},
	}
	if diff := cmp.Diff(want, h.calls); diff != "" {
		t.Fatalf("calls (-want +got):\n%s", diff)
	}
}

// canonical renders XML the way the client's Put re-renders a parsed
// instance, so the expected Put body can be derived from the Get body.
func canonical(t *testing.T, s string) string {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(s); err != nil {
		t.Fatal(err)
	}
	in, err := wsman.ParseInstance(doc.Root())
	if err != nil {
		t.Fatal(err)
	}
	d := etree.NewDocument()
	d.SetRoot(in.Element())
	out, _ := d.WriteToString()
	return out
}

func TestCreateJobMinimalSuspended(t *testing.T) {
	h := okHost()
	id, err := h.client().CreateJob(context.Background(), CreateJobOptions{
		DisplayName: "J", RemoteURL: "http://a/b", LocalFile: `C:\b`, Type: TypeUpload, Suspended: true, Marker: "m-2",
	})
	if err != nil || id != testJobID {
		t.Fatalf("= %q, %v", id, err)
	}
	want := []call{{ResourceURI + "/CreateJob", ResourceURI, "", `<p:CreateJob_INPUT ` + pNS + `><p:DisplayName>J</p:DisplayName>` +
		`<p:RemoteUrl>http://a/b</p:RemoteUrl><p:LocalFile>C:\b</p:LocalFile><p:Type>1</p:Type><p:Suspend>true</p:Suspend><p:Description>[m-2]</p:Description></p:CreateJob_INPUT>`}}
	if diff := cmp.Diff(want, h.calls); diff != "" {
		t.Fatalf("calls (-want +got):\n%s", diff)
	}
}

func TestCreateJobValidation(t *testing.T) {
	pri := Priority(7)
	base := CreateJobOptions{DisplayName: "J", RemoteURL: "http://a/b", LocalFile: `C:\b`}
	tests := []struct {
		name  string
		patch func(*CreateJobOptions)
		want  string
	}{
		{"no name", func(o *CreateJobOptions) { o.DisplayName = "" }, "bitsprov: CreateJob: DisplayName is required"},
		{"no url", func(o *CreateJobOptions) { o.RemoteURL = "" }, "bitsprov: CreateJob: RemoteURL is required"},
		{"no local", func(o *CreateJobOptions) { o.LocalFile = "" }, "bitsprov: CreateJob: LocalFile is required"},
		{"upload reply", func(o *CreateJobOptions) { o.Type = TypeUploadReply }, "bitsprov: CreateJob: job type UploadReply is not supported by the provider (Download or Upload)"},
		{"priority", func(o *CreateJobOptions) { o.Priority = &pri }, "bitsprov: CreateJob: invalid priority priority(7)"},
		{"upload extra", func(o *CreateJobOptions) { o.Type = TypeUpload; o.ExtraFiles = []FileSpec{{"a", "b"}} }, "bitsprov: CreateJob: an upload job holds exactly one file (BG_E_TOO_MANY_FILES)"},
		{"half file", func(o *CreateJobOptions) { o.ExtraFiles = []FileSpec{{"a", ""}} }, "bitsprov: CreateJob: extra file 1 needs both RemoteURL and LocalFile"},
		{"fractional delay", func(o *CreateJobOptions) { o.MinimumRetryDelay = 1500 * time.Millisecond }, "bitsprov: MinimumRetryDelay 1.5s must be whole seconds between 0 and 4294967295"},
		{"proxy list without override", func(o *CreateJobOptions) { o.Proxy = &ProxySettings{Usage: ProxyAutoDetect, List: []string{"p"}} }, "bitsprov: proxy usage AutoDetect takes no proxy or bypass list (lists only with Override)"},
		{"bad scheme", func(o *CreateJobOptions) { o.Credentials = []Credential{{Scheme: 5}} }, "bitsprov: invalid credential scheme 5 (0 Basic … 4 Passport)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := okHost()
			o := base
			tt.patch(&o)
			id, err := h.client().CreateJob(context.Background(), o)
			if err == nil || err.Error() != tt.want || id != "" {
				t.Fatalf("= %q, %v; want %s", id, err, tt.want)
			}
			if len(h.calls) != 0 {
				t.Fatalf("sent %d requests for bad input", len(h.calls))
			}
		})
	}
}

func TestCreateJobSetupFailure(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancel=%v", cancel), func(t *testing.T) {
			h := okHost()
			ok := h.reply
			h.reply = func(c call) (int, string, string) {
				if strings.HasSuffix(c.Action, "/AddFile") {
					return 200, c.Action + "Response", output("AddFile", "ReturnValue", "2149580802")
				}
				return ok(c)
			}
			id, err := h.client().CreateJob(context.Background(), CreateJobOptions{
				DisplayName: "J", RemoteURL: "http://a/b", LocalFile: `C:\b`,
				ExtraFiles:           []FileSpec{{"http://a/c", `C:\c`}},
				CancelOnSetupFailure: cancel,
			})
			if id != testJobID {
				t.Fatalf("id = %q: a created job must never be forgotten", id)
			}
			var se *SetupError
			if !errors.As(err, &se) || se.JobID != testJobID || se.Step != "AddFile" || se.Cancelled != cancel {
				t.Fatalf("err = %#v", err)
			}
			if !errors.Is(err, ErrInvalidState) {
				t.Errorf("errors.Is(ErrInvalidState) false")
			}
			suffix := " (job left on the host)"
			if cancel {
				suffix = " (job cancelled)"
			}
			want := "srv1:5985: CreateJob: job " + testJobID + " was created but AddFile failed" + suffix +
				": srv1:5985: AddFile on " + testJobID + ": BG_E_INVALID_STATE (0x80200002): action not allowed in the current job state"
			if err.Error() != want {
				t.Errorf("err =\n%s\nwant\n%s", err, want)
			}
			last := h.calls[len(h.calls)-1]
			wantLast := "AddFile"
			if cancel {
				wantLast = "SetJobState"
				if !strings.Contains(last.Body, "<p:JobState>0</p:JobState>") {
					t.Errorf("cancel body = %s", last.Body)
				}
			}
			if !strings.HasSuffix(last.Action, "/"+wantLast) {
				t.Errorf("last call = %s, want %s", last.Action, wantLast)
			}
		})
	}
}

func TestMethodEnvelopes(t *testing.T) {
	hash := make([]byte, 20)
	for i := range hash {
		hash[i] = byte(i * 13)
	}
	tests := []struct {
		name string
		do   func(c *Client) error
		body string
	}{
		{"SetJobState", func(c *Client) error {
			_, err := c.SetJobState(context.Background(), testJobID, ActionSuspend)
			return err
		},
			`<p:SetJobState_INPUT ` + pNS + `><p:JobState>3</p:JobState></p:SetJobState_INPUT>`},
		{"Complete", func(c *Client) error { _, err := c.Complete(context.Background(), testJobID); return err },
			`<p:SetJobState_INPUT ` + pNS + `><p:JobState>1</p:JobState></p:SetJobState_INPUT>`},
		{"AddFile", func(c *Client) error {
			return c.AddFile(context.Background(), testJobID, "https://s/a?b=1&c=<2>", `C:\x & y`)
		}, `<p:AddFile_INPUT ` + pNS + `><p:remoteUrl>https://s/a?b=1&amp;c=&lt;2&gt;</p:remoteUrl><p:localFile>C:\x &amp; y</p:localFile></p:AddFile_INPUT>`},
		{"RemoveCredentials", func(c *Client) error {
			return c.RemoveCredentials(context.Background(), testJobID, TargetProxy, SchemePassport)
		}, `<p:RemoveCredentials_INPUT ` + pNS + `><p:Target>1</p:Target><p:Scheme>4</p:Scheme></p:RemoveCredentials_INPUT>`},
		{"SetProxySettings preconfig", func(c *Client) error {
			return c.SetProxySettings(context.Background(), testJobID, ProxyPreconfig, nil, nil)
		}, `<p:SetProxySettings_INPUT ` + pNS + `><p:ProxyUsage>0</p:ProxyUsage></p:SetProxySettings_INPUT>`},
		{"SetClientCertificateById", func(c *Client) error {
			return c.SetClientCertificateByID(context.Background(), testJobID, StoreLocalMachine, "MY", hash)
		}, `<p:SetClientCertificateById_INPUT ` + pNS + `><p:CertStoreLocation>1</p:CertStoreLocation><p:StoreName>MY</p:StoreName>` +
			`<p:CertHash>0</p:CertHash><p:CertHash>13</p:CertHash><p:CertHash>26</p:CertHash><p:CertHash>39</p:CertHash><p:CertHash>52</p:CertHash>` +
			`<p:CertHash>65</p:CertHash><p:CertHash>78</p:CertHash><p:CertHash>91</p:CertHash><p:CertHash>104</p:CertHash><p:CertHash>117</p:CertHash>` +
			`<p:CertHash>130</p:CertHash><p:CertHash>143</p:CertHash><p:CertHash>156</p:CertHash><p:CertHash>169</p:CertHash><p:CertHash>182</p:CertHash>` +
			`<p:CertHash>195</p:CertHash><p:CertHash>208</p:CertHash><p:CertHash>221</p:CertHash><p:CertHash>234</p:CertHash><p:CertHash>247</p:CertHash>` +
			`</p:SetClientCertificateById_INPUT>`},
		{"SetClientCertificateByName", func(c *Client) error {
			return c.SetClientCertificateByName(context.Background(), testJobID, StoreCurrentService, "MY", "CN=client & co")
		}, `<p:SetClientCertificateByName_INPUT ` + pNS + `><p:CertStoreLocation>2</p:CertStoreLocation><p:StoreName>MY</p:StoreName>` +
			`<p:SubjectName>CN=client &amp; co</p:SubjectName></p:SetClientCertificateByName_INPUT>`},
		{"RemoveClientCertificate", func(c *Client) error { return c.RemoveClientCertificate(context.Background(), testJobID) },
			`<p:RemoveClientCertificate_INPUT ` + pNS + `/>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := okHost()
			if err := tt.do(h.client()); err != nil {
				t.Fatal(err)
			}
			if len(h.calls) != 1 {
				t.Fatalf("%d calls", len(h.calls))
			}
			got := h.calls[0]
			method := strings.TrimSuffix(strings.TrimPrefix(tt.body, "<p:"), tt.body[strings.Index(tt.body, "_INPUT"):])
			want := call{ResourceURI + "/" + method, ResourceURI, "JobId=" + testJobID, tt.body}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestClientSideErrorsSendNothing(t *testing.T) {
	tests := []struct {
		name string
		do   func(c *Client) error
		want string
	}{
		{"proxy list with NoProxy", func(c *Client) error {
			return c.SetProxySettings(context.Background(), testJobID, ProxyNoProxy, []string{"p:1"}, nil)
		}, "SetProxySettings on " + testJobID + ": bitsprov: proxy usage NoProxy takes no proxy or bypass list (lists only with Override)"},
		{"override without list", func(c *Client) error {
			return c.SetProxySettings(context.Background(), testJobID, ProxyOverride, nil, []string{"x"})
		}, "SetProxySettings on " + testJobID + ": bitsprov: proxy usage Override needs a proxy list"},
		{"space in list", func(c *Client) error {
			return c.SetProxySettings(context.Background(), testJobID, ProxyOverride, []string{"a b"}, nil)
		}, "SetProxySettings on " + testJobID + `: bitsprov: proxy list entry "a b" is empty or contains white space (lists are space-delimited)`},
		{"short hash", func(c *Client) error {
			return c.SetClientCertificateByID(context.Background(), testJobID, StoreCurrentUser, "MY", []byte{1, 2})
		}, "bitsprov: SetClientCertificateById on " + testJobID + ": certificate hash is 2 bytes, want 20 (SHA-1)"},
		{"bad action", func(c *Client) error { _, err := c.SetJobState(context.Background(), testJobID, 4); return err },
			"bitsprov: SetJobState on " + testJobID + ": invalid action 4"},
		{"bad target", func(c *Client) error {
			return c.SetCredentials(context.Background(), testJobID, 2, SchemeBasic, "u", "secret")
		}, "SetCredentials on " + testJobID + ": bitsprov: invalid credential target 2 (0 Server, 1 Proxy)"},
		{"empty id", func(c *Client) error { return c.Resume(context.Background(), "") }, "bitsprov: SetJobState: empty JobId"},
		{"not writable", func(c *Client) error {
			_, err := c.SetProperties(context.Background(), testJobID, map[string]string{"State": "6"})
			return err
		}, "bitsprov: Put " + testJobID + `: property "State" is not writable (writable: DisplayName, Description, Priority, MinimumRetryDelay, NoProgressTimeout)`},
		{"bad priority", func(c *Client) error { return c.SetPriority(context.Background(), testJobID, 4) },
			"bitsprov: Put " + testJobID + ": invalid priority 4 (0-3)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := okHost()
			err := tt.do(h.client())
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
			if len(h.calls) != 0 {
				t.Fatalf("sent %d requests", len(h.calls))
			}
		})
	}
}

func TestSetPriorityPut(t *testing.T) {
	h := okHost()
	if err := h.client().SetPriority(context.Background(), testJobID, PriorityForeground); err != nil {
		t.Fatal(err)
	}
	if len(h.calls) != 2 || h.calls[0].Action != wsman.ActionGet || h.calls[1].Action != wsman.ActionPut {
		t.Fatalf("calls = %+v", h.calls)
	}
	put := h.calls[1]
	if put.Selectors != "JobId="+testJobID || put.ResourceURI != ResourceURI {
		t.Errorf("put addressed %s %s", put.ResourceURI, put.Selectors)
	}
	// The whole instance goes back, only Priority changed (Set-WSManInstance).
	want := strings.Replace(canonical(t, jobXML("3", "2")), "<p:Priority>2</p:Priority>", "<p:Priority>0</p:Priority>", 1)
	if put.Body != want {
		t.Errorf("Put body:\n got %s\nwant %s", put.Body, want)
	}
}

func TestJobGet(t *testing.T) {
	h := okHost()
	j, err := h.client().Job(context.Background(), testJobID)
	if err != nil {
		t.Fatal(err)
	}
	want := &Job{
		JobID: testJobID, DisplayName: "TestJob", Priority: PriorityNormal, State: StateSuspended,
		Owner:      `NT AUTHORITY\NETWORK SERVICE`,
		Files:      []File{{RemoteURL: "https://server01/dir/a.bin", LocalFile: `C:\dl\a.bin`}},
		FilesTotal: 1,
		Created:    FiletimeToTime(133000000000000000), Modified: FiletimeToTime(133000000010000000),
		MinimumRetryDelay: 10 * time.Minute, NoProgressTimeout: 14 * 24 * time.Hour,
	}
	if diff := cmp.Diff(want, j); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if got := j.Created.Format(time.RFC3339); got != "2022-06-18T04:26:40Z" {
		t.Errorf("created = %s", got)
	}
	want1 := call{wsman.ActionGet, ResourceURI, "JobId=" + testJobID, ""}
	if diff := cmp.Diff([]call{want1}, h.calls); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// TestJobGetPaths: Job decodes a GetResponse through a view of the reply
// (JobFromView) or, for a reply the views do not cover, through the
// Instance (JobFromInstance); both give the same job and the same errors.
// A property with a non-ASCII name sends the reply to the etree reader.
func TestJobGetPaths(t *testing.T) {
	etreeOnly := func(x string) string {
		return strings.Replace(x, "<p:BytesTotal>", "<p:Ünknown>1</p:Ünknown><p:BytesTotal>", 1)
	}
	get := func(body string) (*Job, error) {
		h := &fakeHost{reply: func(call) (int, string, string) { return 200, wsman.ActionGetResponse, body }}
		return h.client().Job(context.Background(), testJobID)
	}
	for _, tc := range []struct {
		name, body, err string
	}{
		{name: "job", body: jobXML("3", "2")},
		{name: "bad state", body: jobXML("x", "2"),
			err: `srv1:5985: Get ` + testJobID + `: bitsprov: decode job: BitsClientJob.State: "x" is not a uint16`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			viewed, verr := get(tc.body)
			whole, werr := get(etreeOnly(tc.body))
			for _, err := range []error{verr, werr} {
				if got := fmt.Sprint(err); tc.err == "" && err != nil || tc.err != "" && got != tc.err {
					t.Errorf("error %q, want %q", got, tc.err)
				}
			}
			if diff := cmp.Diff(whole, viewed); diff != "" {
				t.Errorf("job differs (-etree +view):\n%s", diff)
			}
			if tc.err == "" && (viewed == nil || viewed.State != StateSuspended || len(viewed.Files) != 1) {
				t.Errorf("job %+v, want a Suspended one with a file", viewed)
			}
		})
	}
}

func TestGetError(t *testing.T) {
	h := okHost()
	h.reply = func(c call) (int, string, string) {
		return 200, c.Action + "Response", output("GetError", "ErrorContext", "5", "ErrorCode", "2149122452",
			"ContextDescription", "The error occurred while the remote file was being processed.",
			"ErrorDescription", "HTTP status 404: The requested URL does not exist on the server.", "ReturnValue", "0")
	}
	je, err := h.client().GetError(context.Background(), testJobID, 1033)
	if err != nil {
		t.Fatal(err)
	}
	want := &JobError{Context: ContextRemoteFile, Code: 0x80190194,
		ContextDescription: "The error occurred while the remote file was being processed.",
		Description:        "HTTP status 404: The requested URL does not exist on the server."}
	if diff := cmp.Diff(want, je); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if got := je.Error(); got != "BG_E_HTTP_ERROR_404 (0x80190194) in RemoteFile: HTTP status 404: The requested URL does not exist on the server." {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(je, HTTPCode(404)) {
		t.Error("errors.Is(HTTPCode(404)) false")
	}
	if h.calls[0].Body != `<p:GetError_INPUT `+pNS+`><p:LanguageId>1033</p:LanguageId></p:GetError_INPUT>` {
		t.Errorf("body = %s", h.calls[0].Body)
	}
}

func TestReturnValues(t *testing.T) {
	tests := []struct {
		rv      string
		code    Code
		wantErr string
	}{
		{"0", 0, ""},
		{"2097175", CodePartialComplete, ""},
		{"2149580802", CodeInvalidState, "srv1:5985: SetJobState on " + testJobID + ": BG_E_INVALID_STATE (0x80200002): action not allowed in the current job state"},
		{"21", 21, "srv1:5985: SetJobState on " + testJobID + ": returned 0x00000015 (21)"},
	}
	for _, tt := range tests {
		t.Run(tt.rv, func(t *testing.T) {
			h := okHost()
			h.reply = func(c call) (int, string, string) {
				return 200, c.Action + "Response", output("SetJobState", "ReturnValue", tt.rv)
			}
			code, err := h.client().Complete(context.Background(), testJobID)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
				var re *ReturnError
				if !errors.As(err, &re) || re.Code != uint32(tt.code) {
					t.Errorf("not a *ReturnError with the code: %#v", err)
				}
			}
			if code != tt.code || gotErr != tt.wantErr {
				t.Fatalf("= %v, %q; want %v, %q", code, gotErr, tt.code, tt.wantErr)
			}
		})
	}
}

func wireDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "shared", "wire")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("real captures not available: %v", err)
	}
	return dir
}

// fileBody returns the s:Body content of a capture.
func fileBody(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join(wireDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "<s:Body>")
	j := strings.LastIndex(s, "</s:Body>")
	if i < 0 || j < 0 {
		t.Fatalf("%s has no s:Body", name)
	}
	return s[i+len("<s:Body>") : j]
}

func TestNotFoundFault(t *testing.T) {
	// The host and the operation appear once, then the fault alone.
	wantMsg := map[string]string{
		"spec-fault-a-DestinationUnreachable-get.xml": "srv1:5985: Get " + testJobID + ": not found: WS-Management fault DestinationUnreachable (code 32768 = 0x00008000): The WS-Management service cannot process the request. The service cannot find the resource identified by the resource URI and selectors.",
		"fault-w-InvalidSelectors-get.xml":            "srv1:5985: Get " + testJobID + ": not found: WS-Management fault InvalidSelectors (code 2150858843 = 0x8033805B): The WS-Management service cannot process the request because the request contained invalid selectors for the resource.",
	}
	for _, name := range []string{"spec-fault-a-DestinationUnreachable-get.xml", "fault-w-InvalidSelectors-get.xml"} {
		t.Run(name, func(t *testing.T) {
			body := fileBody(t, name)
			h := &fakeHost{reply: func(c call) (int, string, string) { return 500, wsman.ActionFaultWSMan, body }}
			_, err := h.client().Job(context.Background(), testJobID)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("not ErrNotFound: %v", err)
			}
			var f *wsman.Fault
			if !errors.As(err, &f) || f.Host != "srv1:5985" {
				t.Fatalf("fault not reachable: %#v", err)
			}
			var nf *NotFoundError
			if !errors.As(err, &nf) || nf.Key != testJobID || nf.Op != "Get" {
				t.Fatalf("not a *NotFoundError: %#v", err)
			}
			if err.Error() != wantMsg[name] {
				t.Errorf("err = %s\nwant  %s", err, wantMsg[name])
			}
		})
	}
}

func TestProviderMissingAndPasswordNeverShown(t *testing.T) {
	body := `<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidParameter</s:Value></s:Subcode></s:Code>` +
		`<s:Reason><s:Text xml:lang="en-US">Invalid namespace </s:Text></s:Reason><s:Detail>` +
		`<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2147749902" Machine="srv1"><f:Message>Invalid namespace </f:Message></f:WSManFault></s:Detail></s:Fault>`
	h := &fakeHost{reply: func(c call) (int, string, string) { return 500, wsman.ActionFaultWSMan, body }}
	err := h.client().SetCredentials(context.Background(), testJobID, TargetServer, SchemeBasic, "user", "S3cr3t!")
	if !errors.Is(err, ErrProviderMissing) {
		t.Fatalf("not ErrProviderMissing: %v", err)
	}
	var f *wsman.Fault
	if !errors.As(err, &f) || f.WSManCode != 0x8004100E {
		t.Fatalf("fault not reachable: %v", err)
	}
	if strings.Contains(err.Error(), "S3cr3t!") {
		t.Fatalf("password in error: %v", err)
	}
	if !strings.Contains(h.calls[0].Body, "<p:Password>S3cr3t!</p:Password>") {
		t.Fatalf("password not sent: %s", h.calls[0].Body)
	}
}

func TestJobsEnumerate(t *testing.T) {
	h := okHost()
	h.reply = func(c call) (int, string, string) {
		if c.Action != wsman.ActionEnumerate {
			t.Errorf("unexpected %s", c.Action)
			return 500, "", ""
		}
		items := jobXML("2", "2") + strings.Replace(jobXML("4", "3"), testJobID, "{00000000-0000-0000-0000-000000000002}", 1) +
			strings.Replace(jobXML("6", "1"), testJobID, "{00000000-0000-0000-0000-000000000003}", 1)
		return 200, wsman.ActionEnumerateResp, `<n:EnumerateResponse xmlns:n="` + wsman.NsEnumeration + `"><n:EnumerationContext></n:EnumerationContext>` +
			`<w:Items>` + items + `</w:Items><w:EndOfSequence/></n:EnumerateResponse>`
	}
	c := h.client()
	all, err := c.Jobs(context.Background(), JobFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("= %d jobs, %v", len(all), err)
	}
	some, err := c.Jobs(context.Background(), JobFilter{States: []State{StateError, StateTransferred}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range some {
		ids = append(ids, j.JobID+"="+j.State.String())
	}
	if diff := cmp.Diff([]string{"{00000000-0000-0000-0000-000000000002}=Error", "{00000000-0000-0000-0000-000000000003}=Transferred"}, ids); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if h.calls[0].ResourceURI != ResourceURI || h.calls[0].Selectors != "" {
		t.Errorf("enumerate addressed %+v", h.calls[0])
	}
}

func TestURLGroups(t *testing.T) {
	h := &fakeHost{}
	h.reply = func(c call) (int, string, string) {
		m := c.Action[strings.LastIndex(c.Action, "/")+1:]
		out := `<p:` + m + `_OUTPUT xmlns:p="` + URLGroupResourceURI + `">`
		if m == "CheckUrl" {
			out += `<p:UrlExists>true</p:UrlExists>`
		}
		return 200, c.Action + "Response", out + `<p:ReturnValue>0</p:ReturnValue></p:` + m + `_OUTPUT>`
	}
	c := h.client()
	ctx := context.Background()
	const g = "https://Server1:80/testurlgroup"
	if err := c.CreateURLGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateURL(ctx, g, "url.txt", `c:\temp\1.txt`, ""); err != nil {
		t.Fatal(err)
	}
	ok, err := c.CheckURL(ctx, g, "url.txt")
	if err != nil || !ok {
		t.Fatalf("CheckURL = %v, %v", ok, err)
	}
	ns := `xmlns:p="` + URLGroupResourceURI + `"`
	want := []call{
		{URLGroupResourceURI + "/CreateUrlGroup", URLGroupResourceURI, "", `<p:CreateUrlGroup_INPUT ` + ns + `><p:UrlGroup>` + g + `</p:UrlGroup></p:CreateUrlGroup_INPUT>`},
		{URLGroupResourceURI + "/CreateUrl", URLGroupResourceURI, "UrlGroup=" + g, `<p:CreateUrl_INPUT ` + ns + `><p:UrlSuffix>url.txt</p:UrlSuffix><p:SourceFilePath>c:\temp\1.txt</p:SourceFilePath><p:SDDLAuth/></p:CreateUrl_INPUT>`},
		{URLGroupResourceURI + "/CheckUrl", URLGroupResourceURI, "UrlGroup=" + g, `<p:CheckUrl_INPUT ` + ns + `><p:UrlSuffix>url.txt</p:UrlSuffix></p:CheckUrl_INPUT>`},
	}
	if diff := cmp.Diff(want, h.calls); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if err := c.SetURLGroupProperty(ctx, g, BandwidthLimit, 100); err == nil {
		t.Error("BandwidthLimit 100 accepted")
	}
}

// BenchmarkPollGet is one poll: Get over a canned reply and decode into a
// Job. The transport only echoes the MessageID, so the cost is the
// client's: building the request, checking and parsing the reply, decoding.
func BenchmarkPollGet(b *testing.B) {
	head := []byte(`<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">` +
		`<s:Header><a:Action>` + wsman.ActionGetResponse + `</a:Action><a:MessageID>uuid:00000000-0000-0000-0000-000000000001</a:MessageID><a:RelatesTo>`)
	tail := []byte(`</a:RelatesTo></s:Header><s:Body>` + jobXML("2", "2") + `</s:Body></s:Envelope>`)
	open, end := []byte("<a:MessageID>"), []byte("</a:MessageID>")
	tr := transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
		i := bytes.Index(req.Body, open)
		j := bytes.Index(req.Body[i:], end)
		body := make([]byte, 0, len(head)+len(tail)+64)
		body = append(append(append(body, head...), req.Body[i+len(open):i+j]...), tail...)
		return &transport.Response{StatusCode: 200, ContentType: "application/soap+xml", Body: body}, nil
	})
	c := NewClient(wsman.NewClient("http://srv1:5985/wsman", tr))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Job(ctx, testJobID); err != nil {
			b.Fatal(err)
		}
	}
}

func TestURLGroupMethods(t *testing.T) {
	const g = "https://Server1:80/grp"
	ns := `xmlns:p="` + URLGroupResourceURI + `"`
	h := &fakeHost{}
	h.reply = func(c call) (int, string, string) {
		if c.Action == wsman.ActionEnumerate {
			item := func(v string) string {
				return `<p:BitsCompactServerUrlGroup ` + ns + `><p:UrlGroup>` + v + `</p:UrlGroup></p:BitsCompactServerUrlGroup>`
			}
			return 200, wsman.ActionEnumerateResp, `<n:EnumerateResponse xmlns:n="` + wsman.NsEnumeration + `"><n:EnumerationContext></n:EnumerationContext>` +
				`<w:Items>` + item(g) + item("https://Server1:80/other") + `</w:Items><w:EndOfSequence/></n:EnumerateResponse>`
		}
		m := c.Action[strings.LastIndex(c.Action, "/")+1:]
		out := map[string]string{
			"GetProperty":               `<p:Value>2048</p:Value>`,
			"GetSslCertificate":         `<p:StoreName>MY</p:StoreName><p:hashBlob>1</p:hashBlob><p:hashBlob>255</p:hashBlob>`,
			"GetUrlGroupAuthentication": `<p:DomainName xsi:nil="true"/><p:Enable>true</p:Enable><p:Flag>0</p:Flag><p:Realm xsi:nil="true"/>`,
		}[m]
		return 200, c.Action + "Response", `<p:` + m + `_OUTPUT ` + ns + ` xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` + out +
			`<p:ReturnValue>0</p:ReturnValue></p:` + m + `_OUTPUT>`
	}
	c := h.client()
	ctx := context.Background()
	v, err := c.GetURLGroupProperty(ctx, g, BandwidthLimit)
	if err != nil || v != 2048 {
		t.Fatalf("GetURLGroupProperty = %d, %v", v, err)
	}
	store, hash, err := c.GetSslCertificate(ctx, g, 443)
	if err != nil || store != "MY" || !bytes.Equal(hash, []byte{1, 255}) {
		t.Fatalf("GetSslCertificate = %q, %v, %v", store, hash, err)
	}
	auth, err := c.GetURLGroupAuthentication(ctx, g, URLGroupAuthNTLM)
	if err != nil || *auth != (URLGroupAuth{Enable: true}) {
		t.Fatalf("GetURLGroupAuthentication = %+v, %v", auth, err)
	}
	groups, err := c.URLGroups(ctx)
	if err != nil || !cmp.Equal(groups, []string{g, "https://Server1:80/other"}) {
		t.Fatalf("URLGroups = %v, %v", groups, err)
	}
	for _, f := range []func() error{
		func() error { return c.SetURLGroupProperty(ctx, g, ConnectionLimit, 3) },
		func() error { return c.SetSslCertificate(ctx, g, 443, "MY", []byte{7, 8}) },
		func() error { return c.RemoveSslCertificate(ctx, g, 443) },
		func() error { return c.SetURLGroupAuthentication(ctx, g, URLGroupAuthNegotiate, false) },
		func() error { return c.DeleteURL(ctx, g, "a.txt") },
		func() error { return c.DeleteURLGroup(ctx, g) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	sel := "UrlGroup=" + g
	u := URLGroupResourceURI + "/"
	want := []call{
		{u + "GetProperty", URLGroupResourceURI, sel, `<p:GetProperty_INPUT ` + ns + `><p:Property>BandwidthLimit</p:Property></p:GetProperty_INPUT>`},
		{u + "GetSslCertificate", URLGroupResourceURI, sel, `<p:GetSslCertificate_INPUT ` + ns + `><p:Port>443</p:Port></p:GetSslCertificate_INPUT>`},
		{u + "GetUrlGroupAuthentication", URLGroupResourceURI, sel, `<p:GetUrlGroupAuthentication_INPUT ` + ns + `><p:Scheme>1</p:Scheme></p:GetUrlGroupAuthentication_INPUT>`},
		{wsman.ActionEnumerate, URLGroupResourceURI, "", ""},
		{u + "SetProperty", URLGroupResourceURI, sel, `<p:SetProperty_INPUT ` + ns + `><p:Property>ConnectionLimit</p:Property><p:Value>3</p:Value></p:SetProperty_INPUT>`},
		{u + "SetSslCertificate", URLGroupResourceURI, sel, `<p:SetSslCertificate_INPUT ` + ns + `><p:Port>443</p:Port><p:StoreName>MY</p:StoreName><p:hashBlob>7</p:hashBlob><p:hashBlob>8</p:hashBlob></p:SetSslCertificate_INPUT>`},
		{u + "RemoveSslCertificate", URLGroupResourceURI, sel, `<p:RemoveSslCertificate_INPUT ` + ns + `><p:Port>443</p:Port></p:RemoveSslCertificate_INPUT>`},
		{u + "SetUrlGroupAuthentication", URLGroupResourceURI, sel, `<p:SetUrlGroupAuthentication_INPUT ` + ns + `><p:Scheme>0</p:Scheme><p:Enable>false</p:Enable></p:SetUrlGroupAuthentication_INPUT>`},
		{u + "DeleteUrl", URLGroupResourceURI, sel, `<p:DeleteUrl_INPUT ` + ns + `><p:UrlSuffix>a.txt</p:UrlSuffix></p:DeleteUrl_INPUT>`},
		{u + "DeleteUrlGroup", URLGroupResourceURI, sel, `<p:DeleteUrlGroup_INPUT ` + ns + `><p:UrlGroup>` + g + `</p:UrlGroup></p:DeleteUrlGroup_INPUT>`},
	}
	// The enumerate body is a wsen:Enumerate element, not ours to check.
	h.calls[3].Body = ""
	if diff := cmp.Diff(want, h.calls); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if err := c.SetURLGroupAuthentication(ctx, g, 2, true); err == nil {
		t.Error("reserved scheme 2 accepted")
	}
	if err := c.DeleteURLGroup(ctx, ""); err == nil {
		t.Error("empty group accepted")
	}
}

// FuzzJobFromXML feeds arbitrary instance XML through wsman.ParseInstance
// and JobFromInstance: decoding may fail but must never panic, and a
// decoded job's unknown sizes are never numbers.
func FuzzJobFromXML(f *testing.F) {
	f.Add(jobXML("2", "2"))
	f.Add(`<p:BitsClientJob xmlns:p="x"><p:JobId>{a}</p:JobId><p:BytesTotal>18446744073709551615</p:BytesTotal></p:BitsClientJob>`)
	f.Add(`<p:BitsClientJob xmlns:p="x"><p:JobId>{a}</p:JobId><p:Files><p:F xmlns:p="y"><p:BytesTotal>5</p:BytesTotal></p:F></p:Files></p:BitsClientJob>`)
	f.Fuzz(func(t *testing.T, s string) {
		doc := etree.NewDocument()
		if doc.ReadFromString(s) != nil || doc.Root() == nil {
			return
		}
		in, err := wsman.ParseInstance(doc.Root())
		if err != nil {
			return
		}
		j, err := JobFromInstance(in)
		if err != nil {
			return
		}
		if j.JobID == "" {
			t.Fatal("decoded a job without JobId")
		}
		if j.BytesTotal != nil && *j.BytesTotal == SizeUnknown {
			t.Fatal("unknown size decoded as a number")
		}
		for _, fl := range j.Files {
			if fl.BytesTotal != nil && *fl.BytesTotal == SizeUnknown {
				t.Fatal("unknown file size decoded as a number")
			}
		}
	})
}
