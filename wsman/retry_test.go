package wsman_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

const counterURI = wsman.ResourceWMI + "/root/test/Counter"

// counter is a provider whose Invoke "Add" has a side effect the test can
// count: it shows whether a non-idempotent call ran once or twice.
type counter struct {
	mu    sync.Mutex
	value int
	items int
}

func (c *counter) instance() *wsman.Instance {
	return &wsman.Instance{ClassName: "Counter", ResourceURI: counterURI, Props: []wsman.Property{
		{Name: "Id", Values: []wsman.Value{{Kind: wsman.KindText, Text: "1"}}},
		{Name: "Value", Values: []wsman.Value{{Kind: wsman.KindText, Text: fmt.Sprint(c.value)}}},
	}}
}

func (c *counter) Get(ctx context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.instance(), nil
}

func (c *counter) Put(ctx context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.value += 100
	return c.instance(), nil
}

func (c *counter) Invoke(ctx context.Context, r *wsmantest.Request, method string, in *wsman.Instance) (*wsman.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if method == "Add" {
		c.value++
	}
	return &wsman.Instance{ClassName: method + "_OUTPUT", ResourceURI: counterURI, Props: []wsman.Property{
		{Name: "ReturnValue", Values: []wsman.Value{{Kind: wsman.KindText, Text: "0"}}},
	}}, nil
}

func (c *counter) Enumerate(ctx context.Context, r *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*wsman.Instance, c.items)
	for i := range out {
		out[i] = c.instance()
	}
	return out, nil
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value
}

// retryHost is a Basic-auth wsmantest server with a counter and a client
// that retries quickly.
func retryHost(t *testing.T, items int) (*wsmantest.Server, *counter, *wsman.Client) {
	t.Helper()
	return retryHostTimeout(t, items, 30*time.Second)
}

// slowDelay outlasts the reply timeout of retryHostFor's impatient
// client by far: the host answers only after the client has given up (the
// delay ends early when the client hangs up), however loaded the machine.
const slowDelay = time.Minute

// slowTimeout is the impatient client's reply timeout: its retry, which
// the host answers at once, must still fit in it on a loaded machine.
const slowTimeout = 3 * time.Second

// retryHostTimeout is retryHost with the client's reply timeout.
func retryHostTimeout(t *testing.T, items int, timeout time.Duration) (*wsmantest.Server, *counter, *wsman.Client) {
	t.Helper()
	srv := wsmantest.NewUnstartedServer(wsmantest.Config{Users: map[string]string{"admin": "pw"}, PullBatch: 2})
	p := &counter{items: items}
	srv.Handle(counterURI, p, "Id")
	srv.Start()
	t.Cleanup(srv.Close)
	tr, err := transport.NewBasic(transport.Config{User: "admin", Password: "pw", ResponseTimeout: timeout,
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	c := wsman.NewClient(srv.URL, tr)
	c.Retry = wsman.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 1500 * time.Millisecond}
	return srv, p, c
}

// retryHostFor gives a slow injection a client that gives up before it
// ends (slowTimeout), and every other case a patient one.
func retryHostFor(t *testing.T, inj wsmantest.Injection) (*wsmantest.Server, *counter, *wsman.Client) {
	t.Helper()
	if inj.Kind == wsmantest.InjectDelay {
		return retryHostTimeout(t, 0, slowTimeout)
	}
	return retryHost(t, 0)
}

// waitLog waits until the server has logged n requests (10 s at most, for
// a loaded machine): a request is logged when its handler ends, and one
// the client gave up on ends when the server notices, which may be after
// the client's next request.
func waitLog(srv *wsmantest.Server, n int) {
	for deadline := time.Now().Add(10 * time.Second); len(srv.Log()) < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

// actions lists the Action of every logged SOAP request, shortened to its
// last path element ("Get", "Add", "Pull").
func actions(srv *wsmantest.Server) []string {
	var out []string
	for _, e := range srv.Log() {
		if e.Action == "" {
			continue
		}
		out = append(out, e.Action[strings.LastIndex(e.Action, "/")+1:])
	}
	return out
}

func sel() wsman.Options { return wsman.Options{Selectors: []wsman.Selector{{Name: "Id", Value: "1"}}} }

func TestRetryIdempotent(t *testing.T) {
	timedOut := wsmantest.FaultTimedOut()
	tests := []struct {
		name string
		inj  wsmantest.Injection
		n    int
		// want is the server's log of actions; ok whether the Get succeeds.
		want []string
		ok   bool
	}{
		{"drop twice", wsmantest.Injection{Kind: wsmantest.InjectDrop}, 2, []string{"Get", "Get", "Get"}, true},
		{"truncate", wsmantest.Injection{Kind: wsmantest.InjectTruncate}, 1, []string{"Get", "Get"}, true},
		{"garble", wsmantest.Injection{Kind: wsmantest.InjectGarble}, 1, []string{"Get", "Get"}, true},
		{"503", wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503}, 1, []string{"Get", "Get"}, true},
		{"502 page", wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 502, Body: "<html>Bad Gateway</html>", ContentType: "text/html"}, 1, []string{"Get", "Get"}, true},
		{"w:TimedOut", wsmantest.Injection{Kind: wsmantest.InjectFault, Fault: timedOut}, 1, []string{"Get", "Get"}, true},
		{"w:InternalError", wsmantest.Injection{Kind: wsmantest.InjectFault}, 1, []string{"Get", "Get"}, true},
		{"wrong RelatesTo", wsmantest.Injection{Kind: wsmantest.InjectRewrite, Rewrite: func(b []byte) []byte {
			return []byte(strings.Replace(string(b), "<a:RelatesTo>uuid:", "<a:RelatesTo>uuid:0", 1))
		}}, 1, []string{"Get", "Get"}, true},
		{"slow past the response timeout", wsmantest.Injection{Kind: wsmantest.InjectDelay, Delay: slowDelay}, 1, []string{"Get", "Get"}, true},
		{"attempts run out", wsmantest.Injection{Kind: wsmantest.InjectDrop}, 5, []string{"Get", "Get", "Get"}, false},
		{"not transient: access denied", wsmantest.Injection{Kind: wsmantest.InjectFault, Fault: wsmantest.FaultWMI("AccessDenied", 0x80070005, "Access is denied. ")}, 1, []string{"Get"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, c := retryHostFor(t, tt.inj)
			tt.inj.Action = wsman.ActionGet
			srv.Inject(tt.inj, tt.n)
			in, err := c.Get(context.Background(), counterURI, sel())
			waitLog(srv, len(tt.want))
			if tt.ok != (err == nil) {
				t.Fatalf("Get = %v, %v; want success %v", in, err, tt.ok)
			}
			if wsman.IsAmbiguous(err) {
				t.Errorf("a Get is never ambiguous: %v", err)
			}
			if diff := cmp.Diff(tt.want, actions(srv)); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Run("within Max: waited for and retried", func(t *testing.T) {
		srv, _, c := retryHost(t, 0)
		srv.Inject(wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503, RetryAfter: "1"}, 1)
		start := time.Now()
		if _, err := c.Get(context.Background(), counterURI, sel()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("retried after %v, before the Retry-After of 1s", d)
		}
		if diff := cmp.Diff([]string{"Get", "Get"}, actions(srv)); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
	})
	t.Run("beyond Max: not retried", func(t *testing.T) {
		srv, _, c := retryHost(t, 0)
		srv.Inject(wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503, RetryAfter: "120"}, 1)
		_, err := c.Get(context.Background(), counterURI, sel())
		var he *wsman.HTTPError
		if !errors.As(err, &he) || he.StatusCode != 503 || he.RetryAfter != 120*time.Second {
			t.Fatalf("err = %#v", err)
		}
		if diff := cmp.Diff([]string{"Get"}, actions(srv)); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
	})
	t.Run("context shorter than the wait", func(t *testing.T) {
		srv, _, c := retryHost(t, 0)
		// A Retry-After within Max but beyond the context's deadline; the
		// deadline leaves the first request plenty of time on a loaded
		// machine.
		c.Retry.Max = time.Minute
		srv.Inject(wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503, RetryAfter: "30"}, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Get(ctx, counterURI, sel())
		var he *wsman.HTTPError
		if !errors.As(err, &he) || he.StatusCode != 503 {
			t.Fatalf("err = %v, want the 503 at once", err)
		}
	})
}

// TestHostNotProvenIsAmbiguous: a reply that failed Kerberos mutual
// authentication arrived after the request went out, so a call that is
// not safe to repeat is ambiguous (a CreateJob then looks for its marker)
// and is not sent again; one that never left is not ambiguous.
func TestHostNotProvenIsAmbiguous(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		ambiguous bool
	}{
		{"after the reply", fmt.Errorf("reply from h: the host did not prove it is HTTP/h: %w %w", transport.ErrHostNotProven, transport.ErrAuthentication), true},
		{"never sent", fmt.Errorf("handshake: %w %w %w", transport.ErrHostNotProven, transport.ErrAuthentication, transport.ErrNotSent), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			c := wsman.NewClient("https://h:5986/wsman", transport.Func(func(context.Context, *transport.Request) (*transport.Response, error) {
				calls++
				return nil, tc.err
			}))
			_, err := c.Invoke(context.Background(), counterURI, "Add", sel(), nil)
			if calls != 1 || wsman.IsAmbiguous(err) != tc.ambiguous || !errors.Is(err, transport.ErrAuthentication) {
				t.Fatalf("Invoke = %v after %d calls; want ambiguous %v, one call, ErrAuthentication", err, calls, tc.ambiguous)
			}
		})
	}
}

// TestNoBlindRetry: Invoke and Put run at most once unless the host
// provably never saw them; a failure after they may have run is
// ErrAmbiguous, and the counter shows whether they ran.
func TestNoBlindRetry(t *testing.T) {
	tests := []struct {
		name      string
		inj       wsmantest.Injection
		n         int
		want      []string
		ok        bool
		ambiguous bool
		value     int
	}{
		{"reply truncated after the method ran", wsmantest.Injection{Kind: wsmantest.InjectTruncate}, 1, []string{"Add"}, false, true, 1},
		{"reply garbled after the method ran", wsmantest.Injection{Kind: wsmantest.InjectGarble}, 1, []string{"Add"}, false, true, 1},
		{"wrong RelatesTo", wsmantest.Injection{Kind: wsmantest.InjectRewrite, Rewrite: func(b []byte) []byte {
			return []byte(strings.Replace(string(b), "<a:RelatesTo>uuid:", "<a:RelatesTo>uuid:0", 1))
		}}, 1, []string{"Add"}, false, true, 1},
		{"connection dropped", wsmantest.Injection{Kind: wsmantest.InjectDrop}, 1, []string{"Add"}, false, true, 0},
		{"slow past the response timeout", wsmantest.Injection{Kind: wsmantest.InjectDelay, Delay: slowDelay}, 1, []string{"Add"}, false, true, 0},
		{"w:TimedOut", wsmantest.Injection{Kind: wsmantest.InjectFault, Fault: wsmantest.FaultTimedOut()}, 1, []string{"Add"}, false, true, 0},
		{"503 from HTTP.sys: never reached WinRM", wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503}, 1, []string{"Add", "Add"}, true, false, 1},
		{"w:InternalError: a definite answer", wsmantest.Injection{Kind: wsmantest.InjectFault}, 1, []string{"Add"}, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, p, c := retryHostFor(t, tt.inj)
			tt.inj.Action = counterURI + "/Add"
			srv.Inject(tt.inj, tt.n)
			_, err := c.Invoke(context.Background(), counterURI, "Add", sel(), nil)
			waitLog(srv, len(tt.want))
			if tt.ok != (err == nil) || tt.ambiguous != wsman.IsAmbiguous(err) {
				t.Fatalf("Invoke = %v; want success %v, ambiguous %v", err, tt.ok, tt.ambiguous)
			}
			if tt.ambiguous && !strings.HasSuffix(err.Error(), " (outcome unknown: the host may have carried out the request)") {
				t.Errorf("Error() = %q", err)
			}
			if diff := cmp.Diff(tt.want, actions(srv)); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if got := p.get(); got != tt.value {
				t.Errorf("method ran to %d, want %d", got, tt.value)
			}
		})
	}
	t.Run("Put", func(t *testing.T) {
		srv, p, c := retryHost(t, 0)
		in, err := c.Get(context.Background(), counterURI, sel())
		if err != nil {
			t.Fatal(err)
		}
		srv.Inject(wsmantest.Injection{Kind: wsmantest.InjectGarble, Action: wsman.ActionPut}, 1)
		_, err = c.Put(context.Background(), counterURI, sel(), in)
		if !wsman.IsAmbiguous(err) || !errors.Is(err, wsman.ErrProtocol) {
			t.Fatalf("Put = %v, want ambiguous protocol error", err)
		}
		if p.get() != 100 || len(actions(srv)) != 2 {
			t.Fatalf("value %d after %v", p.get(), actions(srv))
		}
	})
	t.Run("idempotent Invoke is retried", func(t *testing.T) {
		srv, p, c := retryHost(t, 0)
		srv.Inject(wsmantest.Injection{Kind: wsmantest.InjectGarble, Action: counterURI + "/Peek"}, 1)
		o := sel()
		o.Idempotent = true
		if _, err := c.Invoke(context.Background(), counterURI, "Peek", o, nil); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"Peek", "Peek"}, actions(srv)); diff != "" || p.get() != 0 {
			t.Errorf("value %d; requests (-want +got):\n%s", p.get(), diff)
		}
	})
}

// TestRetryEnumeration: Enumerate is repeated; a Pull whose reply was lost
// is not (its context moved on) and ends the sequence; a Pull the host
// never saw (503) is repeated with the same context.
func TestRetryEnumeration(t *testing.T) {
	count := func(c *wsman.Client) (int, error) {
		n := 0
		for it, err := range c.Enumerate(context.Background(), counterURI, wsman.EnumerateOptions{}) {
			if err != nil {
				return n, err
			}
			if it != nil {
				n++
			}
		}
		return n, nil
	}
	// baseline is the exchange without failures.
	baseline := func(t *testing.T, srv *wsmantest.Server, c *wsman.Client) []string {
		t.Helper()
		if n, err := count(c); err != nil || n != 5 {
			t.Fatalf("baseline: %d items, %v", n, err)
		}
		base := actions(srv)
		srv.ResetLog()
		return base
	}
	t.Run("Enumerate dropped", func(t *testing.T) {
		srv, _, c := retryHost(t, 5)
		base := baseline(t, srv, c)
		srv.Inject(wsmantest.Injection{Kind: wsmantest.InjectDrop, Action: wsman.ActionEnumerate}, 1)
		n, err := count(c)
		if err != nil || n != 5 {
			t.Fatalf("%d items, %v", n, err)
		}
		if diff := cmp.Diff(append([]string{"Enumerate"}, base...), actions(srv)); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
	})
	t.Run("Pull reply lost", func(t *testing.T) {
		srv, _, c := retryHost(t, 5)
		srv.Inject(wsmantest.Injection{Kind: wsmantest.InjectTruncate, Action: wsman.ActionPull}, 1)
		n, err := count(c)
		if err == nil || n != 0 {
			t.Fatalf("%d items, %v; want an error before any item", n, err)
		}
		if !wsman.IsTransient(err) || wsman.IsAmbiguous(err) {
			t.Errorf("err = %v: want transient (start over), not ambiguous", err)
		}
		// The host may still hold the context (the one we sent, if the
		// Pull never ran): it is Released rather than left to expire.
		if diff := cmp.Diff([]string{"Enumerate", "Pull", "Release"}, actions(srv)); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
	})
	t.Run("Pull refused with 503", func(t *testing.T) {
		srv, _, c := retryHost(t, 5)
		base := baseline(t, srv, c)
		srv.Inject(wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503, Action: wsman.ActionPull}, 1)
		n, err := count(c)
		if err != nil || n != 5 {
			t.Fatalf("%d items, %v", n, err)
		}
		if diff := cmp.Diff(append([]string{"Enumerate", "Pull"}, base[1:]...), actions(srv)); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
	})
}

func TestIsTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"503", &wsman.HTTPError{StatusCode: 503}, true},
		{"504", &wsman.HTTPError{StatusCode: 504}, true},
		{"401", &wsman.HTTPError{StatusCode: 401, Kind: wsman.ErrAuth}, false},
		{"404 page", &wsman.HTTPError{StatusCode: 404, BodyStart: "Not Found"}, false},
		{"bare 500 (unsealed message refused)", &wsman.HTTPError{StatusCode: 500}, false},
		{"200 not SOAP", &wsman.HTTPError{StatusCode: 200, Kind: fmt.Errorf("%w: junk", wsman.ErrProtocol)}, true},
		{"w:TimedOut", &wsman.Fault{Subcode: "TimedOut"}, true},
		{"InvalidSelectors", &wsman.Fault{Subcode: "InvalidSelectors"}, false},
		{"wrong password", fmt.Errorf("ntlm handshake: %w", transport.ErrAuthentication), false},
		{"reply too large", &transport.SizeError{Limit: 10}, false},
		{"unsealed reply", fmt.Errorf("x: %w", transport.ErrUnsealedReply), true},
		{"caller cancelled", context.Canceled, false},
		{"bad endpoint", errors.New("endpoint ftp://x: scheme must be http or https"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wsman.IsTransient(tt.err); got != tt.want {
				t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestNoResendBelow: below package wsman, no transport sends a
// non-idempotent message twice on its own when the host took it and the
// connection died: net/http does not replay a POST, the NTLM negotiator
// replays only after a 401, and the sealed transport only Idempotent
// requests.
func TestNoResendBelow(t *testing.T) {
	for _, tc := range []struct {
		name string
		auth transport.Auth
		enc  transport.Encryption
	}{
		{"basic", transport.AuthBasic, transport.EncryptionNever},
		{"ntlm", transport.AuthNTLM, transport.EncryptionNever},
		{"ntlm sealed", transport.AuthNTLM, transport.EncryptionAlways},
	} {
		for _, kind := range []wsmantest.InjectKind{wsmantest.InjectDrop, wsmantest.InjectTruncate} {
			t.Run(tc.name+" "+kind.String(), func(t *testing.T) {
				srv := wsmantest.NewUnstartedServer(wsmantest.Config{Auth: wsmantest.AuthBasic | wsmantest.AuthNTLM, Users: map[string]string{"admin": "pw"}})
				p := &counter{}
				srv.Handle(counterURI, p, "Id")
				srv.Start()
				t.Cleanup(srv.Close)
				tr, err := transport.New(transport.Config{Auth: tc.auth, Encryption: tc.enc, User: "admin", Password: "pw",
					Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(tr.(interface{ CloseIdleConnections() }).CloseIdleConnections)
				c := wsman.NewClient(srv.URL, tr)
				// Warm up, so the message rides on a kept-alive connection.
				if _, err := c.Get(context.Background(), counterURI, sel()); err != nil {
					t.Fatal(err)
				}
				srv.Inject(wsmantest.Injection{Kind: kind, Action: counterURI + "/Add"}, 1)
				_, err = c.Invoke(context.Background(), counterURI, "Add", sel(), nil)
				waitLog(srv, 2)
				if !wsman.IsAmbiguous(err) {
					t.Fatalf("Invoke = %v, want ambiguous", err)
				}
				if diff := cmp.Diff([]string{"Get", "Add"}, actions(srv)); diff != "" {
					t.Errorf("requests (-want +got):\n%s", diff)
				}
			})
		}
	}
}
