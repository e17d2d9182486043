package wsmantest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

type rawReply struct {
	status int
	header http.Header
	body   string
}

// post sends body to url with Basic credentials (unless user is "") and
// the given extra headers.
func post(t testing.TB, method, url, user, body string, hdr map[string]string) rawReply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if user != "" {
		req.SetBasicAuth(user, testPass)
	}
	cl := &http.Client{Transport: &http.Transport{}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawReply{resp.StatusCode, resp.Header, string(b)}
}

const getEnvelope = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>` +
	`<a:To>http://host:5985/wsman</a:To><w:ResourceURI s:mustUnderstand="true">%s</w:ResourceURI>` +
	`<a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>` +
	`<a:Action s:mustUnderstand="true">%s</a:Action><w:MaxEnvelopeSize s:mustUnderstand="true">153600</w:MaxEnvelopeSize>` +
	`<a:MessageID>uuid:4ED2993C-4339-4E99-81FC-C2FD3812781A</a:MessageID><w:OperationTimeout>PT60.000S</w:OperationTimeout>` +
	`<w:SelectorSet><w:Selector Name="Name">%s</w:Selector></w:SelectorSet></s:Header><s:Body>%s</s:Body></s:Envelope>`

func TestHTTPFront(t *testing.T) {
	s, _ := newServer(t, wsmantest.Config{Auth: wsmantest.AuthBasic | wsmantest.AuthNTLM}, 1)
	get := fmt.Sprintf(getEnvelope, widgetURI, wsman.ActionGet, "w000", "")
	root := strings.TrimSuffix(s.URL, "/wsman")
	tests := []struct {
		name, method, url, user, body string
		hdr                           map[string]string
		status                        int
		wantHeader                    map[string][]string
	}{
		{"ok", "POST", s.URL, testUser, get, nil, 200, map[string][]string{"Content-Type": {"application/soap+xml;charset=UTF-8"}}},
		{"other path", "POST", root + "/other", testUser, get, nil, 404, nil},
		{"GET", "GET", s.URL, testUser, "", nil, 405, map[string][]string{"Allow": {"POST"}}},
		{"no credentials", "POST", s.URL, "", get, nil, 401, map[string][]string{"Www-Authenticate": {"Negotiate", `Basic realm="WSMAN"`}}},
		{"wrong media type", "POST", s.URL, testUser, get, map[string]string{"Content-Type": "text/xml"}, 415, nil},
		{"unsupported charset", "POST", s.URL, testUser, get, map[string]string{"Content-Type": "application/soap+xml;charset=ISO-8859-1"}, 415, nil},
		{"anonymous Identify", "POST", s.URL, "", `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>`,
			map[string]string{"WSMANIDENTIFY": "unauthenticated"}, 200, nil},
		{"anonymous Get refused", "POST", s.URL, "", get, map[string]string{"WSMANIDENTIFY": "unauthenticated"}, 401, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, tt.method, tt.url, tt.user, tt.body, tt.hdr)
			if r.status != tt.status || r.header.Get("Server") != "Microsoft-HTTPAPI/2.0" {
				t.Errorf("status %d Server %q, want %d Microsoft-HTTPAPI/2.0; body %q", r.status, r.header.Get("Server"), tt.status, r.body)
			}
			for k, v := range tt.wantHeader {
				if diff := cmp.Diff(v, r.header.Values(k)); diff != "" {
					t.Errorf("header %s (-want +got):\n%s", k, diff)
				}
			}
		})
	}
}

// TestIdentifyBytes compares the anonymous IdentifyResponse byte for byte
// with the Windows capture.
func TestIdentifyBytes(t *testing.T) {
	want := readWire(t, "identify-response-unauthenticated.xml")
	s, _ := newServer(t, wsmantest.Config{}, 0)
	r := post(t, "POST", s.URL, "", string(readWire(t, "identify-request-unauthenticated.xml")), map[string]string{"WSMANIDENTIFY": "unauthenticated"})
	if r.body != string(want) {
		t.Errorf("IdentifyResponse:\n got %s\nwant %s", r.body, want)
	}
}

func TestRequireEncryption(t *testing.T) {
	s, _ := newServer(t, wsmantest.Config{Auth: wsmantest.AuthBasic | wsmantest.AuthNTLM, RequireEncryption: true}, 1)
	ctx := context.Background()
	// Basic cannot seal: refused over HTTP, as with AllowUnencrypted=false.
	if _, err := newClient(t, s, "basic", testPass, nil).Get(ctx, widgetURI, sel("Name", "w000")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Basic over HTTP: %v", err)
	}
	// NTLM without sealing: HTTP 500 with an empty body.
	_, err := newClient(t, s, "ntlm", testPass, nil).Get(ctx, widgetURI, sel("Name", "w000"))
	var he *wsman.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 500 || he.BodyStart != "" {
		t.Errorf("unsealed NTLM: %v", err)
	}
	if _, err := newClient(t, s, "ntlm-enc", testPass, nil).Get(ctx, widgetURI, sel("Name", "w000")); err != nil {
		t.Errorf("sealed NTLM: %v", err)
	}
}

// TestTLS serves HTTPS and trusts the server through CAFile.
func TestTLS(t *testing.T) {
	s := wsmantest.NewUnstartedServer(wsmantest.Config{Users: map[string]string{testUser: testPass}, Auth: wsmantest.AuthBasic | wsmantest.AuthNTLM, RequireEncryption: true})
	s.Handle(widgetURI, newWidgets(2))
	s.StartTLS()
	t.Cleanup(s.Close)
	ca, err := s.CAFile()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") || s.Certificate() == nil {
		t.Fatalf("URL %s, certificate %v", s.URL, s.Certificate())
	}
	for _, auth := range []string{"basic", "ntlm"} {
		c := newClient(t, s, auth, testPass, func(cfg *transport.Config) { cfg.CAFile = ca })
		in, err := c.Get(context.Background(), widgetURI, sel("Name", "w001"))
		if err != nil {
			t.Fatalf("%s over TLS: %v", auth, err)
		}
		if got := mustString(t, in, "Name"); got != "w001" {
			t.Errorf("Name = %q", got)
		}
	}
}

// wireDir is shared/wire next to the repository, or "" when absent.
func wireDir(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "wire")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("real captures not found at %s", dir)
	}
	return dir
}

// readWire reads a capture without its leading source comment.
func readWire(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(wireDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(b, []byte("-->")); bytes.HasPrefix(b, []byte("<!--")) && i > 0 {
		b = b[i+3:]
	}
	return bytes.TrimSpace(b)
}

// shape lists an envelope's elements in document order as
// depth/prefix:tag[attribute names], leaving out texts and values, plus
// the text of the fault's Code and Subcode values.
func shape(t testing.TB, doc []byte, skip ...string) []string {
	t.Helper()
	return shapeWith(t, doc, false, skip...)
}

// shapeWith is shape, with attribute names sorted when sortAttrs is set
// (for captures a repository re-serialised).
func shapeWith(t testing.TB, doc []byte, sortAttrs bool, skip ...string) []string {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		t.Fatalf("parse: %v\n%s", err, doc)
	}
	var out []string
	var walk func(e *etree.Element, depth int)
	walk = func(e *etree.Element, depth int) {
		if slices.Contains(skip, e.FullTag()) {
			return
		}
		var attrs []string
		for _, a := range e.Attr {
			attrs = append(attrs, a.FullKey())
		}
		if sortAttrs {
			slices.Sort(attrs)
		}
		line := fmt.Sprintf("%d/%s%v", depth, e.FullTag(), attrs)
		if e.Tag == "Value" {
			line += "=" + e.Text()
		}
		out = append(out, line)
		for _, c := range e.ChildElements() {
			walk(c, depth+1)
		}
	}
	walk(d.Root(), 0)
	return out
}

// TestWireShapes compares the element structure of our replies with real
// Windows replies: same prefixes, elements, attributes and order.
func TestWireShapes(t *testing.T) {
	s, w := newServer(t, wsmantest.Config{}, 0)
	w.add("c:", "0", "x")
	send := func(action, name, body string) string {
		return post(t, "POST", s.URL, testUser, fmt.Sprintf(getEnvelope, widgetURI, action, name, body), nil).body
	}
	t.Run("InvalidSelectors fault", func(t *testing.T) {
		got := post(t, "POST", s.URL, testUser, strings.Replace(fmt.Sprintf(getEnvelope, widgetURI, wsman.ActionGet, "c:", ""), `Name="Name"`, `Name="Bogus"`, 1), nil).body
		want := readWire(t, "fault-w-InvalidSelectors-get.xml")
		if diff := cmp.Diff(shape(t, want), shape(t, []byte(got))); diff != "" {
			t.Errorf("(-windows +ours):\n%s\nours: %s", diff, got)
		}
	})
	t.Run("GetResponse", func(t *testing.T) {
		got := send(wsman.ActionGet, "c:", "")
		want := readWire(t, "wmi-get-response_Win32_LogicalDisk.xml")
		// Compare the envelope, the header and the instance element itself;
		// the properties differ by class. p:ActivityId is newer Windows only.
		head := func(b []byte) []string {
			var out []string
			for _, l := range shape(t, b, "p:ActivityId") {
				if !strings.HasPrefix(l, "3/") {
					l = strings.NewReplacer("2/p:Win32_LogicalDisk[", "2/p:CLASS[", "2/p:Widget[", "2/p:CLASS[").Replace(l)
					out = append(out, l)
				}
			}
			return out
		}
		if diff := cmp.Diff(head(want), head([]byte(got))); diff != "" {
			t.Errorf("(-windows +ours):\n%s\nours: %s", diff, got)
		}
	})
	t.Run("EnumerateResponse empty", func(t *testing.T) {
		s2, _ := newServer(t, wsmantest.Config{}, 0)
		body := `<n:Enumerate xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements></n:Enumerate>`
		env := strings.Replace(fmt.Sprintf(getEnvelope, widgetURI, wsman.ActionEnumerate, "x", body), `<w:SelectorSet><w:Selector Name="Name">x</w:Selector></w:SelectorSet>`, "", 1)
		got := post(t, "POST", s2.URL, testUser, env, nil).body
		want := readWire(t, "wsman-enumerate-selectorfilter-response-empty-eos.xml")
		// That capture is a newer host that adds p:ActivityId and so
		// declares p; the WMI captures of Server 2012 declare s a n w only.
		noP := func(l []string) []string {
			out := append([]string(nil), l...)
			out[0] = strings.Replace(out[0], " xmlns:p", "", 1)
			return out
		}
		if diff := cmp.Diff(noP(shape(t, want, "p:ActivityId")), shape(t, []byte(got))); diff != "" {
			t.Errorf("(-windows +ours):\n%s\nours: %s", diff, got)
		}
		if !strings.Contains(got, "<n:EnumerationContext></n:EnumerationContext><w:EndOfSequence/>") {
			t.Errorf("body %s", got)
		}
	})
	t.Run("DeleteResponse", func(t *testing.T) {
		got := send(wsman.ActionDelete, "c:", "")
		want := readWire(t, "wsman-delete-response.xml")
		if diff := cmp.Diff(shape(t, want), shape(t, []byte(got))); diff != "" {
			t.Errorf("(-windows +ours):\n%s\nours: %s", diff, got)
		}
		if !strings.HasSuffix(got, "<s:Body></s:Body></s:Envelope>") || !strings.Contains(got, "<a:RelatesTo>uuid:4ED2993C-4339-4E99-81FC-C2FD3812781A</a:RelatesTo>") {
			t.Errorf("body %s", got)
		}
	})
	t.Run("MSFT_WmiError fault", func(t *testing.T) {
		got := send(wsman.ActionGet, "wmierror", "")
		want := readWire(t, "fault-w-QuotaLimit-msft-wmierror.xml")
		norm := func(b []byte) []string {
			var out []string
			for _, l := range shapeWith(t, b, true, "a:RelatesTo") {
				out = append(out, strings.Replace(l, "=s:Receiver", "=s:Sender", 1))
			}
			return out
		}
		// The capture (re-serialised by its repository) has no RelatesTo
		// and a QuotaLimit subcode; the structure must match otherwise.
		g, w := norm([]byte(got)), norm(want)
		if diff := cmp.Diff(w, g, cmp.Transformer("sub", func(s string) string {
			return strings.NewReplacer("=w:QuotaLimit", "=SUB", "=w:InternalError", "=SUB").Replace(s)
		})); diff != "" {
			t.Errorf("(-windows +ours):\n%s\nours: %s", diff, got)
		}
	})
	t.Run("CannotProcessFilter fault", func(t *testing.T) {
		body := `<n:Enumerate xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements>` +
			`<w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">Select * from Win32_Processa where name="sshd.exe"</w:Filter></n:Enumerate>`
		env := strings.Replace(fmt.Sprintf(getEnvelope, wsman.ResourceWMI+"/root/cimv2/*", wsman.ActionEnumerate, "x", body), `<w:SelectorSet><w:Selector Name="Name">x</w:Selector></w:SelectorSet>`, "", 1)
		got := post(t, "POST", s.URL, testUser, env, nil).body
		want := readWire(t, "fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml")
		if diff := cmp.Diff(shapeWith(t, want, true), shapeWith(t, []byte(got), true)); diff != "" {
			t.Errorf("(-windows +ours):\n%s\nours: %s", diff, got)
		}
		for _, frag := range []string{
			`<p:ParameterInfo>Select * from Win32_Processa where name=&quot;sshd.exe&quot;</p:ParameterInfo>`,
			`xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/__ExtendedStatus"`,
			`<f:Message>The specified class does not exist in the given namespace. </f:Message>`,
		} {
			if !strings.Contains(got, frag) {
				t.Errorf("missing %s in %s", frag, got)
			}
		}
	})
	t.Run("Enumerate and Pull batches", func(t *testing.T) {
		s3, w3 := newServer(t, wsmantest.Config{}, 0)
		for i := range 53 {
			w3.add(fmt.Sprintf("svc%02d", i), "Running", "x")
		}
		noSel := func(env string) string {
			return regexp.MustCompile(`<w:SelectorSet>.*</w:SelectorSet>`).ReplaceAllString(env, "")
		}
		body := `<n:Enumerate xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements>` +
			`<w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">select * from Widget</w:Filter></n:Enumerate>`
		first := post(t, "POST", s3.URL, testUser, noSel(fmt.Sprintf(getEnvelope, wsman.ResourceWMI+"/root/test/*", wsman.ActionEnumerate, "", body)), nil).body
		// Items are compared down to the instance element (the classes
		// differ), and runs of items count as one (so do the batch sizes).
		top := func(b []byte) []string {
			var out []string
			for _, l := range shape(t, b) {
				if l[0] < '5' {
					out = append(out, strings.NewReplacer("4/p:Win32_Service[", "4/p:CLASS[", "4/p:Widget[", "4/p:CLASS[").Replace(l))
				}
			}
			return slices.Compact(out)
		}
		if diff := cmp.Diff(top(readWire(t, "wmi-enum-optimized-first-batch-response_Win32_Service_2012.xml")), top([]byte(first))); diff != "" {
			t.Errorf("EnumerateResponse (-windows +ours):\n%s\nours: %s", diff, first)
		}
		ctxRE := regexp.MustCompile(`<n:EnumerationContext>([^<]*)</n:EnumerationContext>`)
		pull := func(from string) string {
			m := ctxRE.FindStringSubmatch(from)
			if m == nil {
				t.Fatalf("no context in %s", from)
			}
			pb := `<n:Pull xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><n:EnumerationContext>` + m[1] + `</n:EnumerationContext><n:MaxElements>32000</n:MaxElements></n:Pull>`
			return post(t, "POST", s3.URL, testUser, noSel(fmt.Sprintf(getEnvelope, wsman.ResourceWMI+"/root/test/*", wsman.ActionPull, "", pb)), nil).body
		}
		mid := pull(first)
		want := readWire(t, "wmi-pull-response-mid-sequence_Win32_Service_2012.xml")
		if diff := cmp.Diff(top(want), top([]byte(mid))); diff != "" {
			t.Errorf("mid PullResponse (-windows +ours):\n%s", diff)
		}
		// Server 2012 sent 50 services per Pull; so do we.
		if got, want := strings.Count(mid, "<p:Widget "), strings.Count(string(want), "<p:Win32_Service "); got != want || got != 50 {
			t.Errorf("mid PullResponse has %d items, Windows %d", got, want)
		}
		end := pull(mid)
		if a, b := strings.Count(first, "<p:Widget "), strings.Count(end, "<p:Widget "); a != 1 || b != 2 {
			t.Errorf("EnumerateResponse has %d items (want 1, as Server 2012), last Pull %d (want 2)", a, b)
		}
		if diff := cmp.Diff(top(readWire(t, "wmi-pull-response-end-of-sequence_Win32_Service_2012.xml")), top([]byte(end))); diff != "" {
			t.Errorf("last PullResponse (-windows +ours):\n%s\nours: %s", diff, end)
		}
	})
	t.Run("CreateResponse", func(t *testing.T) {
		body := `<p:Widget xmlns:p="` + widgetURI + `"><p:Name>made</p:Name></p:Widget>`
		env := regexp.MustCompile(`<w:SelectorSet>.*</w:SelectorSet>`).ReplaceAllString(fmt.Sprintf(getEnvelope, widgetURI, wsman.ActionCreate, "", body), "")
		got := post(t, "POST", s.URL, testUser, env, nil).body
		// Windows appends the rsp:Shell resource for shells only.
		want := shape(t, readWire(t, "wsman-create-response_resourcecreated.xml"), "rsp:Shell")
		want[0] = strings.Replace(want[0], " xmlns:rsp", "", 1)
		if diff := cmp.Diff(want, shape(t, []byte(got))); diff != "" {
			t.Errorf("(-windows +ours):\n%s\nours: %s", diff, got)
		}
		if !strings.Contains(got, `<a:Address>`+s.URL+`</a:Address>`) || !strings.Contains(got, `<w:Selector Name="Name">made</w:Selector>`) {
			t.Errorf("EPR in %s", got)
		}
	})
	t.Run("timeout fault", func(t *testing.T) {
		env := strings.Replace(fmt.Sprintf(getEnvelope, widgetURI, wsman.ActionGet, "c:", ""), "PT60.000S", "PT-1S", 1)
		got := post(t, "POST", s.URL, testUser, env, nil).body
		want := readWire(t, "fault-a-InvalidMessageInformationHeader-bad-timeout.xml")
		if diff := cmp.Diff(shape(t, want), shape(t, []byte(got))); diff != "" {
			t.Errorf("(-windows +ours):\n%s\nours: %s", diff, got)
		}
	})
}

// TestUTF16Request: WinRM accepts UTF-16 bodies (MS-WSMV 2.2.9.1.1.2).
func TestUTF16Request(t *testing.T) {
	s, _ := newServer(t, wsmantest.Config{}, 1)
	env := fmt.Sprintf(getEnvelope, widgetURI, wsman.ActionGet, "w000", "")
	b := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(env)) {
		b = append(b, byte(u), byte(u>>8))
	}
	r := post(t, "POST", s.URL, testUser, string(b), map[string]string{"Content-Type": "application/soap+xml;charset=UTF-16"})
	if r.status != 200 || !strings.Contains(r.body, "<p:Name>w000</p:Name>") {
		t.Errorf("status %d body %s", r.status, r.body)
	}
}

// TestListenAddress: sim --hosts N binds one server per 127.0.0.x address.
func TestListenAddress(t *testing.T) {
	s, err := wsmantest.New(wsmantest.Config{Addr: "127.0.0.2:0", Users: map[string]string{testUser: testPass}})
	if err != nil {
		t.Skipf("127.0.0.2 not available here: %v", err)
	}
	s.Handle(widgetURI, newWidgets(1))
	s.Start()
	t.Cleanup(s.Close)
	if !strings.HasPrefix(s.URL, "http://127.0.0.2:") {
		t.Fatalf("URL = %s", s.URL)
	}
	if _, err := newClient(t, s, "basic", testPass, nil).Get(context.Background(), widgetURI, sel("Name", "w000")); err != nil {
		t.Fatal(err)
	}
	if _, err := wsmantest.New(wsmantest.Config{Addr: "256.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "256.0.0.1:0") {
		t.Errorf("bad address: err = %v", err)
	}
}
