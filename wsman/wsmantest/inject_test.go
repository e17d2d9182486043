package wsmantest_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

var relatesTo = regexp.MustCompile(`<a:RelatesTo>[^<]*</a:RelatesTo>`)

func TestInjections(t *testing.T) {
	for _, auth := range authModes {
		t.Run(auth, func(t *testing.T) {
			s, w := newServer(t, wsmantest.Config{Auth: wsmantest.AuthBasic | wsmantest.AuthNTLM, Machine: "SIMHOST"}, 2)
			w.add("big", "1", strings.Repeat("z", 8000))
			c := newClient(t, s, auth, testPass, func(cfg *transport.Config) { cfg.MaxResponseBytes = 6000 })
			ctx := context.Background()
			get := func() error {
				_, err := c.Get(ctx, widgetURI, sel("Name", "w000"))
				return err
			}
			if err := get(); err != nil { // authenticate first
				t.Fatal(err)
			}

			t.Run("drop", func(t *testing.T) {
				n := 1
				if auth == "ntlm-enc" {
					// The sealing transport sends an Idempotent message
					// again after each kept-alive connection that dies
					// before any reply (when it sees the connection as
					// reused), up to its 3 attempts: drop all of them.
					n = 3
				}
				s.Inject(wsmantest.Injection{Kind: wsmantest.InjectDrop}, n)
				defer s.ClearInjections()
				before := len(s.Log())
				err := get()
				var f *wsman.Fault
				var he *wsman.HTTPError
				if err == nil || errors.As(err, &f) || errors.As(err, &he) {
					t.Fatalf("dropped connection: err = %v", err)
				}
				drops := 0
				for _, e := range s.Log()[before:] {
					if e.Action == "" {
						continue // the sealing transport's new handshake
					}
					if e.Status != 0 || e.Injected != "drop" || e.Action != wsman.ActionGet {
						t.Errorf("log %+v", e)
					}
					drops++
				}
				if drops != n && (auth != "ntlm-enc" || drops < 1) {
					t.Errorf("%d requests dropped, want %d", drops, n)
				}
				s.ClearInjections()
				if err := get(); err != nil {
					t.Fatalf("after the drop: %v", err)
				}
			})
			t.Run("truncate", func(t *testing.T) {
				s.Inject(wsmantest.Injection{Kind: wsmantest.InjectTruncate}, 1)
				if err := get(); err == nil || !strings.Contains(err.Error(), "EOF") {
					t.Fatalf("truncated reply: err = %v", err)
				}
				if err := get(); err != nil {
					t.Fatalf("after the truncation: %v", err)
				}
			})
			t.Run("garble", func(t *testing.T) {
				s.Inject(wsmantest.Injection{Kind: wsmantest.InjectGarble}, 1)
				err := get()
				if err == nil {
					t.Fatal("garbled reply accepted")
				}
				if auth != "ntlm-enc" && !errors.Is(err, wsman.ErrProtocol) {
					t.Errorf("garbled plain reply: %v, want ErrProtocol", err)
				}
				if err := get(); err != nil {
					t.Fatalf("after the garbling: %v", err)
				}
			})
			t.Run("fault", func(t *testing.T) {
				s.Inject(wsmantest.Injection{Kind: wsmantest.InjectFault, Fault: wsmantest.FaultInternalError("The system cannot find the file specified. ", 0x80070002)}, 1)
				f := asFault(t, get())
				want := &wsman.Fault{
					Host: strings.TrimPrefix(strings.TrimSuffix(s.URL, "/wsman"), "http://"), Operation: "Get", HTTPStatus: 500,
					Action: wsman.ActionFaultWSMan, Code: "Receiver", SubcodeNS: wsman.NsWSMan, Subcode: "InternalError",
					Reason: "The system cannot find the file specified.", WSManCode: 2147942402, Machine: "SIMHOST",
					ProviderFault: &wsman.ProviderFault{Provider: "WMI Provider", Path: `%systemroot%\system32\WsmWmiPl.dll`, Text: "The system cannot find the file specified."},
				}
				if diff := cmp.Diff(want, f); diff != "" {
					t.Errorf("fault (-want +got):\n%s", diff)
				}
			})
			t.Run("502 page", func(t *testing.T) {
				s.Inject(wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 502, ContentType: "text/html", Body: "<html><body>Bad Gateway</body></html>"}, 1)
				var he *wsman.HTTPError
				err := get()
				if auth == "ntlm-enc" {
					// The sealing transport refuses any unsealed reply to a
					// sealed request, a proxy's page included.
					if err == nil || !strings.Contains(err.Error(), "HTTP 502") {
						t.Fatalf("502: %v", err)
					}
					return
				}
				if !errors.As(err, &he) || he.StatusCode != 502 || he.BodyStart != "<html><body>Bad Gateway</body></html>" || he.Kind != nil {
					t.Fatalf("502: %v", err)
				}
			})
			t.Run("503", func(t *testing.T) {
				s.Inject(wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503, RetryAfter: "2"}, 1)
				var he *wsman.HTTPError
				if err := get(); !errors.As(err, &he) || he.StatusCode != 503 {
					t.Fatalf("503: %v", err)
				}
			})
			t.Run("reply above the client limit", func(t *testing.T) {
				_, err := c.Get(ctx, widgetURI, sel("Name", "big"))
				if !errors.Is(err, transport.ErrResponseTooLarge) {
					t.Fatalf("err = %v, want ErrResponseTooLarge", err)
				}
			})
			t.Run("RelatesTo mismatch", func(t *testing.T) {
				s.Inject(wsmantest.Injection{Kind: wsmantest.InjectRewrite, Rewrite: func(b []byte) []byte {
					return []byte(relatesTo.ReplaceAllString(string(b), "<a:RelatesTo>uuid:00000000-0000-0000-0000-000000000000</a:RelatesTo>"))
				}}, 1)
				if err := get(); !errors.Is(err, wsman.ErrProtocol) || !strings.Contains(err.Error(), "RelatesTo") {
					t.Fatalf("err = %v, want ErrProtocol about RelatesTo", err)
				}
			})
			t.Run("delay beyond the caller's deadline", func(t *testing.T) {
				s.Inject(wsmantest.Injection{Kind: wsmantest.InjectDelay, Delay: 10 * time.Second}, 1)
				dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				if _, err := c.Get(dctx, widgetURI, sel("Name", "w000")); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want DeadlineExceeded", err)
				}
				if err := get(); err != nil {
					t.Fatalf("after the delay: %v", err)
				}
			})
			t.Run("only matching action", func(t *testing.T) {
				s.Inject(wsmantest.Injection{Kind: wsmantest.InjectFault, Action: wsman.ActionPull}, 1)
				if err := get(); err != nil {
					t.Fatalf("Get hit by a Pull injection: %v", err)
				}
				var got error
				for _, err := range c.Enumerate(ctx, widgetURI, wsman.EnumerateOptions{}) {
					if err != nil {
						got = err
					}
				}
				if f := asFault(t, got); f.Subcode != "InternalError" || f.Operation != "Pull" {
					t.Errorf("Pull fault = %+v", f)
				}
			})
		})
	}
}

func TestInjectRandomIsRepeatable(t *testing.T) {
	run := func() []bool {
		s, _ := newServer(t, wsmantest.Config{}, 1)
		c := newClient(t, s, "basic", testPass, nil)
		s.InjectRandom(wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503}, 0.3, 42)
		var failed []bool
		for range 40 {
			_, err := c.Get(context.Background(), widgetURI, sel("Name", "w000"))
			failed = append(failed, err != nil)
		}
		return failed
	}
	a, b := run(), run()
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different failures (-first +second):\n%s", diff)
	}
	n := 0
	for _, f := range a {
		if f {
			n++
		}
	}
	if n < 4 || n > 24 {
		t.Errorf("%d of 40 requests failed at a rate of 0.3", n)
	}
}

// TestForgetSessions simulates a host restart: connections close, the
// NTLM clients authenticate again and carry on.
func TestForgetSessions(t *testing.T) {
	for _, auth := range []string{"ntlm", "ntlm-enc"} {
		t.Run(auth, func(t *testing.T) {
			s, _ := newServer(t, wsmantest.Config{Auth: wsmantest.AuthNTLM}, 1)
			c := newClient(t, s, auth, testPass, nil)
			ctx := context.Background()
			for i := range 3 {
				_, err := c.Get(ctx, widgetURI, sel("Name", "w000"))
				if err != nil && i == 2 {
					// A client may write on its pooled connection before
					// noticing that it closed, and not every transport
					// resends the POST: the first call after a restart can
					// fail, as with a real host; the next one must
					// authenticate again and succeed.
					var f *wsman.Fault
					if errors.As(err, &f) {
						t.Fatalf("Get after restart: unexpected fault %v", err)
					}
					_, err = c.Get(ctx, widgetURI, sel("Name", "w000"))
				}
				if err != nil {
					t.Fatalf("Get %d: %v", i, err)
				}
				if i == 1 {
					s.ForgetSessions()
				}
			}
			if got := s.NTLMHandshakes(); got != 2 {
				t.Errorf("handshakes = %d, want 2", got)
			}
			if got := s.Log(); got[len(got)-1].Status != 200 {
				t.Errorf("last request %+v", got[len(got)-1])
			}
		})
	}
}

// TestOneHandshakeFor100Gets: NTLM binds to the connection, so keep-alive
// must carry 100 sequential Gets on one handshake.
func TestOneHandshakeFor100Gets(t *testing.T) {
	for _, auth := range []string{"ntlm", "ntlm-enc"} {
		t.Run(auth, func(t *testing.T) {
			s, _ := newServer(t, wsmantest.Config{Auth: wsmantest.AuthNTLM}, 1)
			c := newClient(t, s, auth, testPass, nil)
			for i := range 100 {
				if _, err := c.Get(context.Background(), widgetURI, sel("Name", "w000")); err != nil {
					t.Fatalf("Get %d: %v", i, err)
				}
			}
			if got := s.NTLMHandshakes(); got != 1 {
				t.Errorf("handshakes = %d, want 1 (connections: %d)", got, s.Connections())
				for _, e := range s.Log() {
					if e.Action != wsman.ActionGet || e.Status != 200 {
						t.Logf("%+v", e)
					}
				}
			}
		})
	}
}

// TestRetryingClientRidesThroughInjectedFailures: with its default retry
// policy the client survives a dropped connection and a 503 on a Get; the
// server log shows every attempt.
func TestRetryingClientRidesThroughInjectedFailures(t *testing.T) {
	s, _ := newServer(t, wsmantest.Config{}, 1)
	c := newClient(t, s, "basic", testPass, nil)
	c.Retry = wsman.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond}
	s.Inject(wsmantest.Injection{Kind: wsmantest.InjectDrop, Action: wsman.ActionGet}, 1)
	s.Inject(wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503, Action: wsman.ActionGet}, 1)
	in, err := c.Get(context.Background(), widgetURI, sel("Name", "w000"))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustString(t, in, "Name"); got != "w000" {
		t.Errorf("Name = %q", got)
	}
	var got []string
	for _, e := range s.Log() {
		got = append(got, e.Injected+"/"+http.StatusText(e.Status))
	}
	want := []string{"drop/", "status/Service Unavailable", "/OK"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
}
