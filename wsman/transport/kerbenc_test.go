package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/internal/krbtest"
	"github.com/bitsremote/bitsremote/internal/testnet"
	"github.com/bitsremote/bitsremote/wsman/internal/encframe"
)

// sealedKrbSetup starts a KDC, an http:// host that accepts its service
// tickets and seals as a default Windows host does, and a Kerberos
// transport with Encryption=Auto for it.
func sealedKrbSetup(t *testing.T) (*krbtest.Realm, *krbServer, Transport) {
	t.Helper()
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	ks := newKrbServer(t, pki, r.AddService(t, "HTTP/localhost"), false)
	tr, err := New(krbConfig(r, pki))
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr)
	return r, ks, tr
}

// assertKrbNothingPlain checks that every body the host received is
// empty (the AP-REQ's POST) or MS-WSMV-framed, and that marker never
// crossed the wire in clear, headers included.
func assertKrbNothingPlain(t *testing.T, ks *krbServer, marker string) {
	t.Helper()
	ks.mu.Lock()
	bodies := append([][]byte(nil), ks.bodies...)
	ks.mu.Unlock()
	for i, b := range bodies {
		if len(b) != 0 && !bytes.HasPrefix(b, []byte("--Encrypted Boundary\r\n")) {
			t.Errorf("request %d went unsealed: %.80q", i, b)
		}
	}
	wire := ks.wire.bytes()
	if len(bodies) > 0 && !bytes.Contains(wire, []byte("POST /wsman HTTP/1.1\r\n")) {
		t.Fatalf("the host's connections recorded nothing of its %d requests", len(bodies))
	}
	if bytes.Contains(wire, []byte(marker)) {
		t.Errorf("%q crossed the wire in clear", marker)
	}
}

// TestKerberosSealedManyMessagesOneConnection: a thousand sealed messages
// go on the connection that carried the AP-REQ, one handshake for all,
// each exactly framed, the sequence numbers of both directions in step.
func TestKerberosSealedManyMessagesOneConnection(t *testing.T) {
	r, ks, tr := sealedKrbSetup(t)
	user := krbtest.User + "@" + r.Name
	for i := range 1000 {
		env := fmt.Sprintf("<s:Envelope>%d</s:Envelope>", i)
		resp := post(t, tr, localURL(ks), env)
		want := &Response{StatusCode: 200, ContentType: encframe.SOAPType, Body: []byte("user=" + user + " body=" + env), Encrypted: true}
		if diff := cmp.Diff(want, resp, cmpResponse); diff != "" {
			t.Fatalf("message %d (-want +got):\n%s", i, diff)
		}
	}
	auths, users := ks.seen()
	if len(users) != 1 || len(auths) != 1001 || auths[0] == "" || ks.conns.Load() != 1 {
		t.Fatalf("%d AP-REQs accepted, %d requests, %d connections: want 1 AP-REQ then 1000 messages on 1 connection", len(users), len(auths), ks.conns.Load())
	}
	for i, a := range auths[1:] {
		if a != "" {
			t.Fatalf("message %d carried Authorization %.30q", i, a)
		}
	}
	assertKrbNothingPlain(t, ks, "<s:Envelope>")
}

// TestKerberosSealedLargeMessage: a 1.2 MiB envelope goes sealed (its
// frame 44 bytes longer than NTLM's: a 60-byte signature) and its
// sealed echo comes back whole.
func TestKerberosSealedLargeMessage(t *testing.T) {
	r, ks, tr := sealedKrbSetup(t)
	env := "<s:Envelope>" + strings.Repeat("BitsClientJob ", 90_000) + "</s:Envelope>"
	resp := post(t, tr, localURL(ks), env)
	if want := "user=" + krbtest.User + "@" + r.Name + " body=" + env; string(resp.Body) != want || !resp.Encrypted {
		t.Fatalf("reply of %d bytes (encrypted %v) is not the echo of %d bytes", len(resp.Body), resp.Encrypted, len(env))
	}
	ks.mu.Lock()
	sealed := ks.bodies[len(ks.bodies)-1]
	ks.mu.Unlock()
	if got, want := len(sealed), len(env)+254+44+len(fmt.Sprint(len(env))); got != want {
		t.Fatalf("sealed request is %d bytes, want %d", got, want)
	}
	assertKrbNothingPlain(t, ks, "BitsClientJob")
}

// TestKerberosSealedConcurrent: 8 goroutines share one host's sealed
// connection; the transport keeps the sealed stream in order, and one
// AP-REQ serves them all.
func TestKerberosSealedConcurrent(t *testing.T) {
	r, ks, tr := sealedKrbSetup(t)
	user := krbtest.User + "@" + r.Name
	concurrentRoundTrips(t, tr, localURL(ks), func(env string, resp *Response) bool {
		return string(resp.Body) == "user="+user+" body="+env && resp.Encrypted
	})
	if _, users := ks.seen(); len(users) != 1 {
		t.Errorf("%d AP-REQs, want 1", len(users))
	}
	assertKrbNothingPlain(t, ks, "<s:Envelope")
}

// TestKerberosSealedNeverPlain: whatever goes wrong before a session
// exists (the KDC refusing the password or out of reach, a host that
// refuses the ticket, does not prove itself, answers with an error or
// closes the connection), the request fails as not sent and its body
// never crosses the wire, sealed or not, on this try or the next.
func TestKerberosSealedNeverPlain(t *testing.T) {
	r := krbtest.Start(t)
	pki := newTestPKI(t)
	kt := r.AddService(t, "HTTP/localhost")
	down := t.TempDir() + "/krb5.conf"
	conf := fmt.Sprintf("[libdefaults]\n default_realm = %s\n udp_preference_limit = 1\n[realms]\n %s = {\n  kdc = %s\n }\n", r.Name, r.Name, testnet.RefusedAddr(t))
	if err := os.WriteFile(down, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// The AP-REP of an earlier context, with the same service ticket.
	var earlier string
	ks0 := newKrbServer(t, pki, kt, false)
	ks0.reply = func(good string) string { earlier = good; return good }
	tr0, err := New(krbConfig(r, pki))
	if err != nil {
		t.Fatal(err)
	}
	closeIdle(t, tr0)
	post(t, tr0, localURL(ks0), "<s:Envelope/>")
	for _, tc := range []struct {
		name      string
		cfg       func(*Config)
		handshake func(w http.ResponseWriter, good string) bool
		want      error
		// requests is how many requests the host must see: 0 when the
		// KDC failed, else the AP-REQ's empty POSTs.
		requests int
	}{
		{name: "wrong password", cfg: func(c *Config) { c.Password = "not-the-password" }, want: ErrAuthentication},
		{name: "KDC down", cfg: func(c *Config) { c.Krb5Conf = down }, want: ErrKDCUnreachable},
		{name: "200 without a token", handshake: func(w http.ResponseWriter, _ string) bool { return true }, want: ErrAuthentication, requests: 2},
		{name: "200 with a bare challenge", handshake: func(w http.ResponseWriter, _ string) bool {
			w.Header().Set("WWW-Authenticate", "Negotiate")
			return true
		}, want: ErrAuthentication, requests: 2},
		{name: "another context's AP-REP", handshake: func(w http.ResponseWriter, _ string) bool {
			w.Header().Set("WWW-Authenticate", earlier)
			return true
		}, want: ErrAuthentication, requests: 2},
		{name: "401", handshake: func(w http.ResponseWriter, _ string) bool {
			w.Header().Set("WWW-Authenticate", "Negotiate")
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}, want: ErrAuthentication, requests: 2},
		{name: "500 with the AP-REP", handshake: func(w http.ResponseWriter, good string) bool {
			w.Header().Set("WWW-Authenticate", good)
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}, requests: 2},
		{name: "connection closed instead of a reply", handshake: func(w http.ResponseWriter, _ string) bool {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
			return true
		}, requests: 2},
		{name: "Connection: close on the 200", handshake: func(w http.ResponseWriter, good string) bool {
			w.Header().Set("WWW-Authenticate", good)
			w.Header().Set("Connection", "close")
			return true
		}, requests: 2 * maxAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKrbServer(t, pki, kt, false)
			ks.handshake = tc.handshake
			cfg := krbConfig(r, pki)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			tr, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			closeIdle(t, tr)
			for i := range 2 {
				_, err := tr.RoundTrip(context.Background(), &Request{URL: localURL(ks), Body: []byte("<s:Envelope>SECRET-JOB-PASSWORD</s:Envelope>")})
				if err == nil || !errors.Is(err, ErrNotSent) || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Fatalf("attempt %d: got %v, want an error (not sent, %v)", i, err, tc.want)
				}
				if strings.Contains(err.Error(), "not-the-password") {
					t.Fatalf("the error shows the password: %v", err)
				}
			}
			ks.mu.Lock()
			bodies := append([][]byte(nil), ks.bodies...)
			ks.mu.Unlock()
			if len(bodies) != tc.requests {
				t.Errorf("the host saw %d requests, want %d", len(bodies), tc.requests)
			}
			for i, b := range bodies {
				if len(b) != 0 {
					t.Errorf("request %d carried a body of %d bytes although no session was made", i, len(b))
				}
			}
			assertKrbNothingPlain(t, ks, "SECRET-JOB-PASSWORD")
		})
	}
}

// TestKerberosSealedBadReplies: a reply to a sealed message that does not
// unseal (a byte changed, a plain envelope with 200) fails the request as
// ErrUnsealedReply and ends the session; a bare error status goes up as
// the host's answer and ends it too; a 401 (the host forgot the context)
// makes a new one and sends the message again. The next message in each
// case is sealed on a new connection with a new AP-REQ, and nothing ever
// goes in clear.
func TestKerberosSealedBadReplies(t *testing.T) {
	r, ks, tr := sealedKrbSetup(t)
	user := krbtest.User + "@" + r.Name
	url := localURL(ks)
	post(t, tr, url, "<s:Envelope>first</s:Envelope>")
	for i, tc := range []struct {
		name    string
		rewrite func(w http.ResponseWriter, framed []byte)
		want    error // nil: the reply goes up
		status  int
	}{
		{"a signature byte changed", func(w http.ResponseWriter, framed []byte) {
			i := bytes.Index(framed, []byte("octet-stream\r\n")) + len("octet-stream\r\n") + 4 + 20
			framed[i] ^= 1
			w.Header().Set("Content-Type", encframe.ContentType)
			w.Write(framed)
		}, ErrUnsealedReply, 0},
		{"a plain envelope with 200", func(w http.ResponseWriter, _ []byte) {
			w.Header().Set("Content-Type", encframe.SOAPType)
			w.Write([]byte("<s:Envelope>trust me</s:Envelope>"))
		}, ErrUnsealedReply, 0},
		{"a bare 400", func(w http.ResponseWriter, _ []byte) { w.WriteHeader(http.StatusBadRequest) }, nil, 400},
		{"a 401", func(w http.ResponseWriter, _ []byte) { w.WriteHeader(http.StatusUnauthorized) }, nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var once sync.Once
			ks.mu.Lock()
			ks.sealedReply = func(w http.ResponseWriter, framed []byte) bool {
				done := false
				once.Do(func() { tc.rewrite(w, framed); done = true })
				return done
			}
			ks.mu.Unlock()
			_, before := ks.seen()
			env := fmt.Sprintf("<s:Envelope>bad %d</s:Envelope>", i)
			resp, err := tr.RoundTrip(context.Background(), &Request{URL: url, Body: []byte(env)})
			switch {
			case tc.want != nil:
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v %v, want %v", resp, err, tc.want)
				}
			case err != nil || resp.StatusCode != tc.status:
				t.Fatalf("got %v %v, want HTTP %d", resp, err, tc.status)
			case tc.status == 200 && string(resp.Body) != "user="+user+" body="+env:
				t.Fatalf("after the 401: %q", resp.Body)
			}
			env = fmt.Sprintf("<s:Envelope>next %d</s:Envelope>", i)
			if resp := post(t, tr, url, env); string(resp.Body) != "user="+user+" body="+env || !resp.Encrypted {
				t.Fatalf("next message: %q", resp.Body)
			}
			if _, after := ks.seen(); len(after) != len(before)+1 {
				t.Errorf("%d AP-REQs for the failure and the next message, want 1", len(after)-len(before))
			}
		})
	}
	assertKrbNothingPlain(t, ks, "<s:Envelope>")
}
