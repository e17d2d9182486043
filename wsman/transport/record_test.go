package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// getEnvelope is a small Get with a password value, as a SetCredentials
// Invoke would carry.
func getEnvelope(to, id, selector string) string {
	return `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">` +
		`<s:Header><a:To>` + to + `</a:To><a:MessageID>` + id + `</a:MessageID>` +
		`<w:SelectorSet><w:Selector Name="JobId">` + selector + `</w:Selector></w:SelectorSet></s:Header>` +
		`<s:Body><p:Creds xmlns:p="urn:bits"><p:UserName>svc</p:UserName><p:Password>hunter2&amp;co</p:Password></p:Creds></s:Body></s:Envelope>`
}

var messageIDRE = regexp.MustCompile(`<a:MessageID>([^<]*)</a:MessageID>`)

// echoServer answers every request with an envelope that relates to it.
func echoServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := ""
		if m := messageIDRE.FindSubmatch(body); m != nil {
			id = string(m[1])
		}
		w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
		w.Header().Set("Server", "Microsoft-HTTPAPI/2.0")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header><a:MessageID>uuid:RANDOM-REPLY-ID</a:MessageID><a:RelatesTo>`+id+`</a:RelatesTo></s:Header><s:Body><p:Job xmlns:p="urn:bits"><p:Name> </p:Name></p:Job></s:Body></s:Envelope>`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

const (
	wantRequestXML = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">
  <s:Header>
    <a:To>http://{host}/wsman</a:To>
    <a:MessageID>uuid:00000000-0000-4000-8000-000000000001</a:MessageID>
    <w:SelectorSet>
      <w:Selector Name="JobId">{J1}</w:Selector>
    </w:SelectorSet>
  </s:Header>
  <s:Body>
    <p:Creds xmlns:p="urn:bits">
      <p:UserName>svc</p:UserName>
      <p:Password>REDACTED</p:Password>
    </p:Creds>
  </s:Body>
</s:Envelope>
`
	wantResponseXML = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">
  <s:Header>
    <a:MessageID>uuid:00000000-0000-4000-9000-000000000001</a:MessageID>
    <a:RelatesTo>uuid:00000000-0000-4000-8000-000000000001</a:RelatesTo>
  </s:Header>
  <s:Body>
    <p:Job xmlns:p="urn:bits">
      <p:Name> </p:Name>
    </p:Job>
  </s:Body>
</s:Envelope>
`
	wantMetaJSON = `{
  "request": {
    "url": "http://{host}/wsman",
    "header": {
      "X-Note": [
        "user svc, password REDACTED"
      ]
    },
    "indented": true
  },
  "response": {
    "status": 200,
    "contentType": "application/soap+xml;charset=UTF-8",
    "header": {
      "Server": [
        "Microsoft-HTTPAPI/2.0"
      ]
    },
    "indented": true
  }
}
`
)

func TestRecordReplay(t *testing.T) {
	srv := echoServer(t)
	dir := t.TempDir()
	basic, err := NewBasic(Config{User: "svc", Password: "hunter2&co"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, basic)
	rec, err := NewRecorder(basic, dir, "bits/get-job", "hunter2&co")
	if err != nil {
		t.Fatal(err)
	}
	to := srv.URL + "/wsman"
	for i, sel := range []string{"{J1}", "{J2}"} {
		req := &Request{
			URL:    to,
			Body:   []byte(getEnvelope(to, "uuid:AAAA-"+sel, sel)),
			Header: http.Header{"Authorization": {"Basic c3ZjOmh1bnRlcjImY28="}, "X-Note": {"user svc, password hunter2&co"}},
		}
		resp, err := rec.RoundTrip(context.Background(), req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d: %+v, %v", i, resp, err)
		}
	}
	if err := rec.Err(); err != nil {
		t.Fatal(err)
	}

	d := filepath.Join(dir, "bits", "get-job")
	files := map[string]string{}
	ents, _ := os.ReadDir(d)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(d, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
		for _, secret := range []string{"hunter2", "c3ZjOmh1bnRlcjImY28", "Authorization"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s contains %q", e.Name(), secret)
			}
		}
	}
	wantFiles := []string{"001.json", "001.request.xml", "001.response.xml", "002.json", "002.request.xml", "002.response.xml"}
	if diff := cmp.Diff(wantFiles, mapKeys(files)); diff != "" {
		t.Fatalf("files (-want +got):\n%s", diff)
	}
	for name, want := range map[string]string{"001.json": wantMetaJSON, "001.request.xml": wantRequestXML, "001.response.xml": wantResponseXML} {
		if diff := cmp.Diff(want, files[name]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}

	// Replay on another port with fresh message IDs and the real password.
	rp, err := NewReplayer(dir, "bits/get-job", "hunter2&co")
	if err != nil {
		t.Fatal(err)
	}
	to2 := "http://127.0.0.1:1/wsman"
	resp, err := rp.RoundTrip(context.Background(), &Request{
		URL:    to2,
		Body:   []byte(getEnvelope(to2, "uuid:NEW-1", "{J1}")),
		Header: http.Header{"X-Note": {"user svc, password hunter2&co"}},
	})
	if err != nil {
		t.Fatalf("replay 1: %v", err)
	}
	wantBody := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header><a:MessageID>uuid:00000000-0000-4000-9000-000000000001</a:MessageID><a:RelatesTo>uuid:NEW-1</a:RelatesTo></s:Header><s:Body><p:Job xmlns:p="urn:bits"><p:Name> </p:Name></p:Job></s:Body></s:Envelope>`
	wantResp := &Response{
		StatusCode:  200,
		Header:      http.Header{"Server": {"Microsoft-HTTPAPI/2.0"}, "Content-Type": {"application/soap+xml;charset=UTF-8"}},
		ContentType: "application/soap+xml;charset=UTF-8",
		Body:        []byte(wantBody),
	}
	if diff := cmp.Diff(wantResp, resp); diff != "" {
		t.Errorf("replayed response (-want +got):\n%s", diff)
	}

	// A different selector fails with a line diff and does not advance.
	_, err = rp.RoundTrip(context.Background(), &Request{
		URL:    to2,
		Body:   []byte(getEnvelope(to2, "uuid:NEW-2", "{J3}")),
		Header: http.Header{"X-Note": {"user svc, password hunter2&co"}},
	})
	wantErr := `replay bits/get-job: request 002 differs from the recording (-recorded +sent):
    7     <a:MessageID>{MessageID}</a:MessageID>
    8     <w:SelectorSet>
-   9       <w:Selector Name="JobId">{J2}</w:Selector>
+   9       <w:Selector Name="JobId">{J3}</w:Selector>
   10     </w:SelectorSet>
   11   </s:Header>
`
	if err == nil || err.Error() != wantErr {
		t.Errorf("mismatch error:\n%v\nwant:\n%s", err, wantErr)
	}
	if n := rp.Remaining(); n != 1 {
		t.Errorf("Remaining = %d, want 1", n)
	}
	if err := rp.Verify(); err == nil || err.Error() != wantErr {
		t.Errorf("Verify = %v, want the mismatch", err)
	}
	if _, err := rp.RoundTrip(context.Background(), &Request{URL: to2, Body: []byte(getEnvelope(to2, "uuid:NEW-3", "{J2}")), Header: http.Header{"X-Note": {"user svc, password hunter2&co"}}}); err != nil {
		t.Fatalf("replay 2: %v", err)
	}
	_, err = rp.RoundTrip(context.Background(), &Request{URL: to2, Body: []byte(getEnvelope(to2, "uuid:NEW-4", "{J2}"))})
	if want := "replay bits/get-job: request 3 is beyond the 2 recorded"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}

	// Re-recording replaces the old exchanges.
	rec2, err := NewRecorder(basic, dir, "bits/get-job")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec2.RoundTrip(context.Background(), &Request{URL: to, Body: []byte(`<a/>`)}); err != nil {
		t.Fatal(err)
	}
	ex, err := LoadExchanges(dir, "bits/get-job")
	if err != nil || len(ex) != 1 {
		t.Fatalf("after re-recording: %d exchanges, %v; want 1", len(ex), err)
	}
}

func TestReplayVerifyUnused(t *testing.T) {
	dir := t.TempDir()
	rec, err := NewRecorder(Func(func(context.Context, *Request) (*Response, error) {
		return &Response{StatusCode: 500, ContentType: "text/plain", Body: []byte("boom"), Encrypted: true}, nil
	}), dir, "two")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := rec.RoundTrip(context.Background(), &Request{URL: "http://h:1/wsman", Body: []byte(`<a/>`)}); err != nil {
			t.Fatal(err)
		}
	}
	rp, err := NewReplayer(dir, "two")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rp.RoundTrip(context.Background(), &Request{URL: "http://other:2/wsman", Body: []byte(`<a/>`)})
	if err != nil || resp.StatusCode != 500 || string(resp.Body) != "boom" || resp.ContentType != "text/plain" || !resp.Encrypted {
		t.Fatalf("got %+v, %v", resp, err)
	}
	if err, want := rp.Verify(), "replay two: 1 of 2 recorded exchanges were not requested"; err == nil || err.Error() != want {
		t.Errorf("Verify = %v, want %q", err, want)
	}
}

func TestRecordTransportError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	basic, err := NewBasic(Config{User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, basic)
	dir := t.TempDir()
	rec, err := NewRecorder(basic, dir, "drop")
	if err != nil {
		t.Fatal(err)
	}
	_, sendErr := rec.RoundTrip(context.Background(), &Request{URL: srv.URL + "/wsman", Body: []byte(`<a/>`)})
	if sendErr == nil {
		t.Fatal("want an error from a dropped connection")
	}
	ex, err := LoadExchanges(dir, "drop")
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	want := []Exchange{{Request: Request{URL: "http://{host}/wsman", Body: []byte(`<a/>`)}, Err: sendErr.Error()}}
	if diff := cmp.Diff(want, ex); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !strings.Contains(sendErr.Error(), host) {
		t.Errorf("error %q does not name %s", sendErr, host)
	}
	rp, err := NewReplayer(dir, "drop")
	if err != nil {
		t.Fatal(err)
	}
	_, err = rp.RoundTrip(context.Background(), &Request{URL: "http://x:9/wsman", Body: []byte(`<a/>`)})
	if want := "replay drop: exchange 001: recorded error: " + sendErr.Error(); err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestLoadExchangesErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gap/001.json", `{"request":{"url":"http://{host}/wsman","indented":false},"error":"x"}`)
	write("gap/001.request.xml", ``)
	write("gap/003.json", `{"request":{"url":"http://{host}/wsman","indented":false},"error":"x"}`)
	write("both/001.json", `{"request":{"url":"http://{host}/wsman","indented":false},"error":"x","response":{"status":200,"indented":false}}`)
	write("typo/001.json", `{"request":{"url":"http://{host}/wsman","indented":false},"eror":"x"}`)
	write("empty/README", "nothing")
	tests := []struct{ name, want string }{
		{"gap", "load recording gap: exchange 002 is missing (found 003)"},
		{"both", "load recording both: exchange 001: 001.json: want exactly one of response and error"},
		{"typo", `load recording typo: exchange 001: 001.json: json: unknown field "eror"`},
		{"empty", "load recording empty: no exchanges in " + filepath.Join(dir, "empty")},
		{"../escape", `recording name "../escape": use letters, digits, '.', '_', '-' and '/' only`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadExchanges(dir, tc.name)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	_, err := LoadExchanges(dir, "absent")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent: got %v, want os.ErrNotExist", err)
	}
}

func mapKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
