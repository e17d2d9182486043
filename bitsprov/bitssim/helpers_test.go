package bitssim

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

const testMachine = "sim01"

// newTestProvider returns a provider whose 600 s retry delay takes 0.6 s.
func newTestProvider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 0.001
	}
	p := New(cfg)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func req(id string, method string) *wsmantest.Request {
	r := &wsmantest.Request{ResourceURI: ResourceURI, Machine: testMachine, Action: ResourceURI + "/" + method}
	if id != "" {
		r.Selectors = []wsman.Selector{{Name: "JobId", Value: id}}
	}
	return r
}

// input builds a <method>_INPUT from name/value pairs.
func input(method string, kv ...string) *wsman.Instance {
	in := &wsman.Instance{ClassName: method + "_INPUT", ResourceURI: ResourceURI}
	for i := 0; i+1 < len(kv); i += 2 {
		in.Props = append(in.Props, textProp(kv[i], kv[i+1]))
	}
	return in
}

// invoke calls a method and returns its output; faults fail the test.
func invoke(t *testing.T, p *Provider, id, method string, kv ...string) *wsman.Instance {
	t.Helper()
	out, err := p.Invoke(context.Background(), req(id, method), method, input(method, kv...))
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if out.ClassName != method+"_OUTPUT" || out.ResourceURI != ResourceURI {
		t.Fatalf("%s: output element %s in %s", method, out.ClassName, out.ResourceURI)
	}
	return out
}

// prop returns a scalar property's text.
func prop(t *testing.T, in *wsman.Instance, name string) string {
	t.Helper()
	pr := findProp(in, name)
	if pr == nil || len(pr.Values) != 1 {
		t.Fatalf("%s: no scalar property %s in %+v", in.ClassName, name, in.Props)
	}
	return pr.Values[0].Text
}

// rv invokes a method and returns its ReturnValue.
func rv(t *testing.T, p *Provider, id, method string, kv ...string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(prop(t, invoke(t, p, id, method, kv...), "ReturnValue"), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

// create makes a suspended job and returns its JobId.
func create(t *testing.T, p *Provider, kv ...string) string {
	t.Helper()
	out := invoke(t, p, "", "CreateJob", append([]string{"Suspend", "true"}, kv...)...)
	if got := prop(t, out, "ReturnValue"); got != "0" {
		t.Fatalf("CreateJob ReturnValue %s", got)
	}
	return prop(t, out, "JobId")
}

func get(t *testing.T, p *Provider, id string) *wsman.Instance {
	t.Helper()
	in, err := p.Get(context.Background(), req(id, ""))
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return in
}

func state(t *testing.T, p *Provider, id string) bitsprov.State {
	t.Helper()
	v, err := strconv.ParseUint(prop(t, get(t, p, id), "State"), 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return bitsprov.State(v)
}

// waitState polls until the job is in want; it fails after 10 s, which no
// passing run comes near (scaled delays are well under a second).
func waitState(t *testing.T, p *Provider, id string, want bitsprov.State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := state(t, p, id)
		if s == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: state %s, want %s", id, s, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitFor polls cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// fileServer serves dir on loopback.
func fileServer(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(s.Close)
	return s
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d sent", path, len(got), len(want))
	}
}

func assertAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (err %v), want absent", path, err)
	}
}

// tmpFiles lists BITS temp files in dir.
func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "BIT*.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fault asserts err is a *wsman.Fault with the subcode and WSMan code.
func fault(t *testing.T, err error, subcode string, code uint32) *wsman.Fault {
	t.Helper()
	var f *wsman.Fault
	if !errors.As(err, &f) {
		t.Fatalf("err = %v, want a %s fault", err, subcode)
	}
	if f.Subcode != subcode || f.WSManCode != code {
		t.Fatalf("fault %s code 0x%08X, want %s 0x%08X (%v)", f.Subcode, f.WSManCode, subcode, code, f)
	}
	if f.Machine != testMachine {
		t.Fatalf("fault Machine %q, want %q", f.Machine, testMachine)
	}
	return f
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// newBasicHost starts a simulated host with cfg, user admin/pw added to
// its server (Machine SIM01 unless set), and a client that reaches it
// with Basic over HTTP.
func newBasicHost(t *testing.T, cfg HostConfig) (*Host, *wsman.Client) {
	t.Helper()
	cfg.Server.Users = map[string]string{"admin": "pw"}
	if cfg.Server.Machine == "" {
		cfg.Server.Machine = "SIM01"
	}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	tr, err := transport.NewBasic(transport.Config{Auth: transport.AuthBasic, User: "admin", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	return h, wsman.NewClient(h.URL, tr)
}
