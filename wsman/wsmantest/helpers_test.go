package wsmantest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// widgetURI is the tiny WMI-like class the tests serve.
const widgetURI = wsman.ResourceWMI + "/root/test/Widget"

const (
	testUser = "admin"
	testPass = "S3cret!pw"
)

// widgets is an in-memory provider for class Widget (key Name). Names
// with special meaning: "slow" blocks until the call's context ends,
// "boom" fails with a plain error.
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

func (w *widgets) Keys() []string { return []string{"Name"} }

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

func (w *widgets) Get(ctx context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	name, _ := r.Selector("Name")
	switch name {
	case "slow":
		<-ctx.Done()
		return nil, ctx.Err()
	case "boom":
		return nil, errors.New("disk on fire")
	case "wmierror":
		return nil, wsmantest.FaultWMI("", 0x80041002, "Not found ")
	case "extstatus":
		return nil, wsmantest.FaultExtendedStatus(widgetURI, "GetObject", `Widget.Name="extstatus"`, 0x80041002, "Not found ")
	}
	return w.lookup(r)
}

func (w *widgets) Put(ctx context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.Instance, error) {
	cur, err := w.lookup(r)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range in.Props {
		if strings.EqualFold(p.Name, "Name") {
			continue
		}
		cur.SetValues(p.Name, p.Values...)
	}
	return cur, nil
}

func (w *widgets) Invoke(ctx context.Context, r *wsmantest.Request, method string, input *wsman.Instance) (*wsman.Instance, error) {
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
	case "Count": // static
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

func (w *widgets) Enumerate(ctx context.Context, r *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
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

func (w *widgets) Create(ctx context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.EndpointReference, error) {
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

func (w *widgets) Delete(ctx context.Context, r *wsmantest.Request) error {
	if _, err := w.lookup(r); err != nil {
		return err
	}
	name, _ := r.Selector("Name")
	w.mu.Lock()
	delete(w.items, strings.ToLower(name))
	w.mu.Unlock()
	return nil
}

// newServer starts a server serving n widgets and closes it with the test.
func newServer(t testing.TB, cfg wsmantest.Config, n int) (*wsmantest.Server, *widgets) {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = map[string]string{testUser: testPass}
	}
	s := wsmantest.NewUnstartedServer(cfg)
	w := newWidgets(n)
	s.Handle(widgetURI, w)
	s.Start()
	t.Cleanup(s.Close)
	return s, w
}

type idleCloser interface{ CloseIdleConnections() }

// newClient returns a client for s with the given auth ("basic", "ntlm",
// "ntlm-enc") and password.
func newClient(t testing.TB, s *wsmantest.Server, auth, password string, mod func(*transport.Config)) *wsman.Client {
	t.Helper()
	cfg := transport.Config{User: testUser, Password: password}
	if mod != nil {
		mod(&cfg)
	}
	var tr transport.Transport
	var err error
	switch auth {
	case "basic":
		cfg.Auth = transport.AuthBasic
		tr, err = transport.NewBasic(cfg)
	case "ntlm":
		cfg.Auth = transport.AuthNTLM
		cfg.Encryption = transport.EncryptionNever
		tr, err = transport.NewNTLM(cfg)
	case "ntlm-enc":
		cfg.Auth = transport.AuthNTLM
		cfg.Encryption = transport.EncryptionAlways
		tr, err = transport.NewNTLMEncrypted(cfg)
	default:
		t.Fatalf("unknown auth %q", auth)
	}
	if err != nil {
		t.Fatalf("transport %s: %v", auth, err)
	}
	if ic, ok := tr.(idleCloser); ok {
		t.Cleanup(ic.CloseIdleConnections)
	}
	c := wsman.NewClient(s.URL, tr)
	// The tests look at what the server does to each request; retrying is
	// the client's business and is tested with the retry policy on.
	c.Retry = wsman.NoRetry
	return c
}

// rewriting wraps a client's transport so that each request body passes
// through edit first: the way tests send envelopes Windows would reject
// while still parsing the reply with the real client.
func rewriting(c *wsman.Client, edit func(string) string) *wsman.Client {
	next := c.Transport
	c2 := *c
	c2.Transport = transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
		r2 := *req
		r2.Body = []byte(edit(string(req.Body)))
		return next.RoundTrip(ctx, &r2)
	})
	return &c2
}

func sel(name, value string) wsman.Options {
	return wsman.Options{Selectors: []wsman.Selector{{Name: name, Value: value}}}
}

func mustString(t testing.TB, in *wsman.Instance, name string) string {
	t.Helper()
	v, err := in.String(name)
	if err != nil {
		t.Fatalf("property %s: %v", name, err)
	}
	return v
}

func asFault(t testing.TB, err error) *wsman.Fault {
	t.Helper()
	var f *wsman.Fault
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *wsman.Fault", err, err)
	}
	return f
}
