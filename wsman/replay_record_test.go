package wsman_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// Recording. The replay tests answer from fixtures/soap; with
// BITSREMOTE_RECORD=1 the same scenarios instead run against a live
// wsmantest server through a transport.Recorder, rewriting the fixtures:
//
//	BITSREMOTE_RECORD=1 go test ./wsman -run TestReplay
//
// The server listens on a fixed loopback port (recordAddr, or
// BITSREMOTE_RECORD_ADDR) because the EPR of a Create reply carries the
// server's address, which the recorder does not rewrite; a random port
// would change the fixtures on every recording and the assertions with it.
// The port is below Linux's ephemeral range (32768-60999), where outgoing
// connections cannot be holding it.
const (
	recordEnv     = "BITSREMOTE_RECORD"
	recordAddrEnv = "BITSREMOTE_RECORD_ADDR"
	recordAddr    = "127.0.0.1:25985"

	// recordUser and recordPassword authenticate the recording; the
	// password must never reach a fixture (TestFixturesHoldNoPassword).
	recordUser     = "admin"
	recordPassword = `Rec0rd&<pw>"'`

	// replayHost is the client's Host in both modes, so errors read the
	// same whether recorded or replayed.
	replayHost = "SIMHOST"
	// replayEndpoint is where replayed clients "connect"; the replayer
	// ignores host:port.
	replayEndpoint = "http://simhost:5985/wsman"

	widgetURI = wsman.ResourceWMI + "/root/test/Widget"
)

// fixtureDir is fixtures/soap at the repository root; go test runs in the
// package directory.
var fixtureDir = filepath.Join("..", "fixtures", "soap")

func recording() bool { return os.Getenv(recordEnv) == "1" }

// serverSetup adjusts the recording server's configuration or provider.
type serverSetup func(*wsmantest.Config, *widgets)

// sealedNTLM makes a recording go over NTLM with message encryption, as
// WinRM's default listener requires: the recorder sits above the
// transport, so the fixture holds the plaintext and says "encrypted".
func sealedNTLM(cfg *wsmantest.Config, _ *widgets) {
	cfg.Auth = wsmantest.AuthNTLM
	cfg.RequireEncryption = true
}

// replayClient returns a client for the fixture name: over a Recorder in
// front of a fresh widget server when recording, over a Replayer
// otherwise, with a flowSpy in front of either. The returned check runs at
// the end of the scenario and reports a mismatch or unused exchanges.
func replayClient(t *testing.T, name string, setup serverSetup) (*wsman.Client, *flowSpy, func()) {
	t.Helper()
	spy := &flowSpy{}
	if !recording() {
		rp, err := transport.NewReplayer(fixtureDir, name, recordPassword)
		if err != nil {
			t.Fatalf("load fixture (record it with %s=1): %v", recordEnv, err)
		}
		spy.next = rp
		c := wsman.NewClient(replayEndpoint, spy)
		c.Host = replayHost
		return c, spy, func() {
			t.Helper()
			if err := rp.Verify(); err != nil {
				t.Error(err)
			}
		}
	}
	addr := os.Getenv(recordAddrEnv)
	if addr == "" {
		addr = recordAddr
	}
	cfg := wsmantest.Config{
		Auth:    wsmantest.AuthBasic,
		Users:   map[string]string{recordUser: recordPassword},
		Machine: replayHost,
		Addr:    addr,
	}
	w := newWidgets(5)
	if setup != nil {
		setup(&cfg, w)
	}
	srv, err := wsmantest.New(cfg)
	if err != nil {
		t.Fatalf("recording server on %s: %v", addr, err)
	}
	srv.Handle(widgetURI, w, "Name")
	srv.Start()
	t.Cleanup(srv.Close)
	tcfg := transport.Config{Auth: transport.AuthBasic, User: recordUser, Password: recordPassword}
	if cfg.Auth == wsmantest.AuthNTLM {
		tcfg.Auth, tcfg.Encryption = transport.AuthNTLM, transport.EncryptionAlways
	}
	tr, err := transport.New(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	if ic, ok := tr.(interface{ CloseIdleConnections() }); ok {
		t.Cleanup(ic.CloseIdleConnections)
	}
	rec, err := transport.NewRecorder(tr, fixtureDir, name, recordPassword)
	if err != nil {
		t.Fatal(err)
	}
	spy.next = rec
	c := wsman.NewClient(srv.URL, spy)
	c.Host = replayHost
	return c, spy, func() {
		t.Helper()
		if err := rec.Err(); err != nil {
			t.Error(err)
		}
	}
}

// flowSpy notes each exchange as the local name of the request's Action
// and, when the reply holds widgets, how many ("Enumerate:1", "Pull:2",
// "Release"), or that it was a fault ("Get fault"). It shows how an enumeration was batched, which the items
// alone do not.
type flowSpy struct {
	next transport.Transport
	mu   sync.Mutex
	flow []string
}

var (
	actionRE = regexp.MustCompile(`<a:Action[^>]*>([^<]*)</a:Action>`)
	widgetRE = regexp.MustCompile(`<p:Widget[ >]`)
)

func (s *flowSpy) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	step := "Identify"
	if m := actionRE.FindSubmatch(req.Body); m != nil {
		a := string(m[1])
		step = a[strings.LastIndexByte(a, '/')+1:]
	}
	resp, err := s.next.RoundTrip(ctx, req)
	switch {
	case err != nil:
		step += " error"
	case bytes.Contains(resp.Body, []byte("<s:Fault>")):
		step += " fault"
	default:
		if n := len(widgetRE.FindAll(resp.Body, -1)); n > 0 {
			step += fmt.Sprintf(":%d", n)
		}
	}
	s.mu.Lock()
	s.flow = append(s.flow, step)
	s.mu.Unlock()
	return resp, err
}

// Flow returns the exchanges so far.
func (s *flowSpy) Flow() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.flow)
}

// widgets serves the small WMI-like class Widget (key Name) that the
// generic fixtures are recorded against.
type widgets struct {
	mu    sync.Mutex
	items map[string]*wsman.Instance
}

func newWidgets(n int) *widgets {
	w := &widgets{items: map[string]*wsman.Instance{}}
	for i := range n {
		w.add(fmt.Sprintf("w%03d", i), fmt.Sprint(i%3), fmt.Sprintf("Widget number %d", i))
	}
	return w
}

func (w *widgets) add(name, state, caption string) {
	in := wsman.NewInstance(widgetURI)
	in.Set("Caption", caption)
	in.Set("Name", name)
	in.Set("State", state)
	in.SetNil("Owner")
	w.mu.Lock()
	w.items[strings.ToLower(name)] = in
	w.mu.Unlock()
}

func (w *widgets) lookup(r *wsmantest.Request) (*wsman.Instance, error) {
	name, _ := r.Selector("Name")
	w.mu.Lock()
	defer w.mu.Unlock()
	in, ok := w.items[strings.ToLower(name)]
	if !ok {
		return nil, wsmantest.FaultNotFound("")
	}
	return in, nil
}

func (w *widgets) Get(_ context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	return w.lookup(r)
}

func (w *widgets) Put(_ context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.Instance, error) {
	cur, err := w.lookup(r)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range in.Props {
		if !strings.EqualFold(p.Name, "Name") {
			cur.SetValues(p.Name, p.Values...)
		}
	}
	return cur, nil
}

func (w *widgets) Invoke(_ context.Context, r *wsmantest.Request, method string, input *wsman.Instance) (*wsman.Instance, error) {
	out := wsman.NewInstance(widgetURI)
	switch method {
	case "Paint":
		cur, err := w.lookup(r)
		if err != nil {
			return nil, err
		}
		color, err := input.String("Color")
		if err != nil {
			return nil, wsmantest.FaultInvalidParameter("The parameter is incorrect. ", 87)
		}
		w.mu.Lock()
		cur.Set("Caption", color+" widget")
		w.mu.Unlock()
		out.Set("ReturnValue", "0")
	case "Count":
		w.mu.Lock()
		out.Set("Total", fmt.Sprint(len(w.items)))
		w.mu.Unlock()
		out.Set("ReturnValue", "0")
	case "Fail":
		out.Set("ReturnValue", "2149580802")
	default:
		return nil, wsmantest.FaultActionNotSupported(r.Action)
	}
	return out, nil
}

func (w *widgets) Enumerate(context.Context, *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := make([]string, 0, len(w.items))
	for k := range w.items {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]*wsman.Instance, 0, len(names))
	for _, n := range names {
		out = append(out, w.items[n])
	}
	return out, nil
}

func (w *widgets) Create(_ context.Context, _ *wsmantest.Request, in *wsman.Instance) (*wsman.EndpointReference, error) {
	name, err := in.String("Name")
	if err != nil {
		return nil, wsmantest.FaultInvalidParameter("Name is required. ", 0)
	}
	w.mu.Lock()
	_, dup := w.items[strings.ToLower(name)]
	w.mu.Unlock()
	if dup {
		return nil, wsmantest.FaultAlreadyExists()
	}
	state, _ := in.String("State")
	caption, _ := in.String("Caption")
	w.add(name, state, caption)
	return &wsman.EndpointReference{Selectors: []wsman.Selector{{Name: "Name", Value: name}}}, nil
}

func (w *widgets) Delete(_ context.Context, r *wsmantest.Request) error {
	if _, err := w.lookup(r); err != nil {
		return err
	}
	name, _ := r.Selector("Name")
	w.mu.Lock()
	delete(w.items, strings.ToLower(name))
	w.mu.Unlock()
	return nil
}
