package ntlmauth

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	azure "github.com/Azure/go-ntlmssp"
	"github.com/bodgit/ntlmssp"

	"github.com/bitsremote/bitsremote/wsman/internal/encframe"
)

// echo answers with what it saw, and with HTTP 500 when the body asks for
// a fault.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	user, _ := UserFromContext(r.Context())
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	if bytes.Contains(body, []byte("fault")) {
		w.WriteHeader(http.StatusInternalServerError)
	}
	fmt.Fprintf(w, "user=%s encrypted=%v type=%s len=%d body=%s", user, EncryptedFromContext(r.Context()), r.Header.Get("Content-Type"), r.ContentLength, body)
})

func newServer(t *testing.T, opts MiddlewareOptions) *httptest.Server {
	t.Helper()
	s := testServer()
	ts := httptest.NewUnstartedServer(s.Middleware(echo, opts))
	ts.Config.ConnContext = s.ConnContext
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// client is a minimal sealing client on one kept-alive connection.
type client struct {
	t    *testing.T
	url  string
	hc   *http.Client
	nc   *ntlmssp.Client
	sess *ntlmssp.SecuritySession
}

func newClient(t *testing.T, ts *httptest.Server) *client {
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, url: ts.URL + "/wsman", hc: &http.Client{Transport: tr}}
}

func (c *client) post(body []byte, header map[string]string) (*http.Response, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, b
}

// handshake runs the three legs with an empty body and returns the
// statuses seen.
func (c *client) handshake(user, password string) []int {
	c.t.Helper()
	c.nc, _ = ntlmssp.NewClient(ntlmssp.SetUserInfo(user, password), ntlmssp.SetDomain("WORKGROUP"), ntlmssp.SetVersion(ntlmssp.DefaultVersion()))
	neg, _ := c.nc.Authenticate(nil, nil)
	r1, _ := c.post(nil, map[string]string{"Authorization": "Negotiate " + base64.StdEncoding.EncodeToString(neg)})
	tok, ok := strings.CutPrefix(r1.Header.Get("WWW-Authenticate"), "Negotiate ")
	if r1.StatusCode != http.StatusUnauthorized || !ok {
		c.t.Fatalf("NEGOTIATE leg: %d %q", r1.StatusCode, r1.Header.Get("WWW-Authenticate"))
	}
	ch, _ := base64.StdEncoding.DecodeString(tok)
	auth, err := c.nc.Authenticate(ch, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	r2, b2 := c.post(nil, map[string]string{"Authorization": "Negotiate " + base64.StdEncoding.EncodeToString(auth)})
	if len(b2) != 0 {
		c.t.Fatalf("AUTHENTICATE leg body %q", b2)
	}
	c.sess = c.nc.SecuritySession()
	return []int{r1.StatusCode, r2.StatusCode}
}

func (c *client) sealed(plain []byte) []byte {
	body, err := encframe.Wrap(plain, encframe.SOAPType, c.sess.Wrap)
	if err != nil {
		c.t.Fatal(err)
	}
	return body
}

func (c *client) unseal(resp *http.Response, body []byte) string {
	c.t.Helper()
	if !encframe.IsEncrypted(resp.Header.Get("Content-Type")) {
		c.t.Fatalf("reply %d not encrypted: %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	plain, ctype, err := encframe.Unwrap(body, c.sess.Unwrap)
	if err != nil {
		c.t.Fatalf("unwrap reply: %v", err)
	}
	if ctype != encframe.SOAPType {
		c.t.Fatalf("OriginalContent type %q", ctype)
	}
	return string(plain)
}

var encHeader = map[string]string{"Content-Type": encframe.ContentType}

func TestMiddlewareFlow(t *testing.T) {
	ts := newServer(t, MiddlewareOptions{})
	c := newClient(t, ts)

	r, b := c.post(nil, nil)
	if r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != "Negotiate" || len(b) != 0 {
		t.Fatalf("anonymous: %d %q %q", r.StatusCode, r.Header.Get("WWW-Authenticate"), b)
	}
	if got := c.handshake("alice", "S3cret!pw"); got[0] != 401 || got[1] != 200 {
		t.Fatalf("handshake statuses %v, want [401 200]", got)
	}
	// Unencrypted body without Authorization on the authenticated connection.
	r, b = c.post([]byte("<plain/>"), map[string]string{"Content-Type": "application/soap+xml;charset=UTF-8"})
	if want := "user=alice encrypted=false type=application/soap+xml;charset=UTF-8 len=8 body=<plain/>"; r.StatusCode != 200 || string(b) != want {
		t.Fatalf("plain: %d %q, want %q", r.StatusCode, b, want)
	}
	for i := range 3 {
		env := fmt.Sprintf("<s:Envelope>%d</s:Envelope>", i)
		r, b = c.post(c.sealed([]byte(env)), encHeader)
		want := fmt.Sprintf("user=alice encrypted=true type=application/soap+xml;charset=UTF-8 len=%d body=%s", len(env), env)
		if got := c.unseal(r, b); r.StatusCode != 200 || got != want {
			t.Fatalf("sealed %d: %d %q, want %q", i, r.StatusCode, got, want)
		}
		if r.ContentLength != int64(len(b)) {
			t.Fatalf("Content-Length %d for %d bytes", r.ContentLength, len(b))
		}
	}
	// A fault is sealed too, with its 500.
	r, b = c.post(c.sealed([]byte("<fault/>")), encHeader)
	if got := c.unseal(r, b); r.StatusCode != 500 || got != "user=alice encrypted=true type=application/soap+xml;charset=UTF-8 len=8 body=<fault/>" {
		t.Fatalf("sealed fault: %d %q", r.StatusCode, got)
	}

	// Another connection is not authenticated.
	other := newClient(t, ts)
	if r, _ := other.post(c.sealed([]byte("<x/>")), encHeader); r.StatusCode != 401 {
		t.Fatalf("second connection: %d, want 401", r.StatusCode)
	}
}

func TestMiddlewareRejects(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, c *client) (*http.Response, []byte)
		want int
	}{
		{"unencrypted body with RequireEncryption", func(t *testing.T, c *client) (*http.Response, []byte) {
			return c.post([]byte("<s:Envelope/>"), map[string]string{"Content-Type": "application/soap+xml;charset=UTF-8"})
		}, 500},
		{"replayed sealed message", func(t *testing.T, c *client) (*http.Response, []byte) {
			body := c.sealed([]byte("<once/>"))
			if r, b := c.post(body, encHeader); r.StatusCode != 200 {
				t.Fatalf("first: %d %q", r.StatusCode, b)
			}
			return c.post(body, encHeader)
		}, 400},
		{"tampered signature", func(t *testing.T, c *client) (*http.Response, []byte) {
			body := c.sealed([]byte("<x/>"))
			i := bytes.Index(body, []byte("octet-stream\r\n")) + len("octet-stream\r\n") + 4 + 6
			body[i] ^= 0x40
			return c.post(body, encHeader)
		}, 400},
		{"garbled framing", func(t *testing.T, c *client) (*http.Response, []byte) {
			return c.post([]byte("--Encrypted Boundary\r\nnonsense"), encHeader)
		}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, newServer(t, MiddlewareOptions{RequireEncryption: true}))
			c.handshake("bob", "hunter2")
			r, b := tt.run(t, c)
			if r.StatusCode != tt.want || len(b) != 0 {
				t.Fatalf("status %d body %q, want %d and empty", r.StatusCode, b, tt.want)
			}
			// A broken sealed stream ends the connection, forcing a new logon.
			if tt.want == 400 && !r.Close {
				t.Fatal("400 without Connection: close")
			}
			if tt.want == 400 {
				if r, _ := c.post(c.sealed([]byte("<next/>")), encHeader); r.StatusCode != 401 {
					t.Fatalf("after 400: %d, want 401 on the new connection", r.StatusCode)
				}
			}
		})
	}
}

func TestMiddlewareWrongPassword(t *testing.T) {
	c := newClient(t, newServer(t, MiddlewareOptions{RequireEncryption: true}))
	if got := c.handshake("alice", "wrong"); got[1] != 401 {
		t.Fatalf("handshake statuses %v, want the AUTHENTICATE leg to get 401", got)
	}
	if r, _ := c.post([]byte("<x/>"), nil); r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != "Negotiate" {
		t.Fatalf("after failed logon: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
}

// TestMiddlewareAzureNegotiator sends a body on every leg, as
// Azure/go-ntlmssp's Negotiator does; the body goes through on the
// AUTHENTICATE leg.
func TestMiddlewareAzureNegotiator(t *testing.T) {
	ts := newServer(t, MiddlewareOptions{})
	hc := &http.Client{Transport: &azure.Negotiator{RoundTripper: &http.Transport{MaxConnsPerHost: 1}}}
	defer hc.CloseIdleConnections()
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader("<hello/>"))
		req.SetBasicAuth("bob", "hunter2")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "user=bob encrypted=false type= len=8 body=<hello/>"; resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("request %d: %d %q, want %q", i, resp.StatusCode, b, want)
		}
	}
}

func TestMiddlewareWithoutConnContext(t *testing.T) {
	ts := httptest.NewServer(testServer().Middleware(echo, MiddlewareOptions{}))
	defer ts.Close()
	resp, err := http.Post(ts.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
}

func TestMiddlewareConcurrentConnections(t *testing.T) {
	ts := newServer(t, MiddlewareOptions{RequireEncryption: true})
	// Parallel subtests, so that the helpers' t.Fatal runs on the
	// goroutine of the test that owns it.
	t.Run("connections", func(t *testing.T) {
		for g := range 8 {
			t.Run(fmt.Sprint(g), func(t *testing.T) {
				t.Parallel()
				c := newClient(t, ts)
				c.handshake("alice", "S3cret!pw")
				for i := range 20 {
					env := fmt.Sprintf("<g%d i=%d/>", g, i)
					r, b := c.post(c.sealed([]byte(env)), encHeader)
					if got := c.unseal(r, b); !strings.HasSuffix(got, "body="+env) {
						t.Fatalf("message %d: %q", i, got)
					}
				}
			})
		}
	})
}
