package cli

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

const listenerURI = "http://schemas.microsoft.com/wbem/wsman/1/config/Listener"

// listeners is a provider for wsman create/delete: instances keyed by
// their Address selector.
type listeners struct {
	mu    sync.Mutex
	items map[string]*wsman.Instance
}

func (l *listeners) Get(ctx context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	a, _ := r.Selector("Address")
	l.mu.Lock()
	defer l.mu.Unlock()
	if in, ok := l.items[a]; ok {
		return in, nil
	}
	return nil, &wsman.Fault{Code: "Sender", SubcodeNS: wsman.NsAddressing, Subcode: "DestinationUnreachable", Reason: "no such listener"}
}

func (l *listeners) Put(ctx context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.Instance, error) {
	return in, nil
}

func (l *listeners) Invoke(ctx context.Context, r *wsmantest.Request, method string, in *wsman.Instance) (*wsman.Instance, error) {
	return nil, &wsman.Fault{Code: "Sender", SubcodeNS: wsman.NsAddressing, Subcode: "ActionNotSupported"}
}

func (l *listeners) Enumerate(ctx context.Context, r *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	return nil, nil
}

func (l *listeners) Create(ctx context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.EndpointReference, error) {
	a, _ := r.Selector("Address")
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items[a] = in
	return &wsman.EndpointReference{Address: wsman.AddressAnonymous, ResourceURI: listenerURI, Selectors: []wsman.Selector{{Name: "Address", Value: a}}}, nil
}

func (l *listeners) Delete(ctx context.Context, r *wsmantest.Request) error {
	a, _ := r.Selector("Address")
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.items[a]; !ok {
		return &wsman.Fault{Code: "Sender", SubcodeNS: wsman.NsAddressing, Subcode: "DestinationUnreachable", Reason: "no such listener"}
	}
	delete(l.items, a)
	return nil
}

func TestWSManCreateDelete(t *testing.T) {
	srv := wsmantest.NewUnstartedServer(wsmantest.Config{Auth: wsmantest.AuthBasic, Users: map[string]string{testUser: testPassword}})
	prov := &listeners{items: map[string]*wsman.Instance{}}
	srv.Handle(listenerURI, prov)
	srv.Start()
	defer srv.Close()
	host := strings.TrimSuffix(strings.TrimPrefix(srv.URL, "http://"), "/wsman")
	conn := []string{"-H", host, "--auth", "basic", "--encryption", "never", "-u", testUser}

	r := run(t, withPassword(), append([]string{"wsman", "create", "winrm/config/Listener", "-s", "Address=*", "-v", "Hostname=server1", "-v", "Port=5986", "-o", "json"}, conn...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if m["host"] != host || m["resourceUri"] != listenerURI || m["selectors"].(map[string]any)["Address"] != "*" {
		t.Errorf("create printed %v", m)
	}
	in := prov.items["*"]
	if in == nil {
		t.Fatal("the provider got nothing")
	}
	if h, _ := in.String("Hostname"); h != "server1" {
		t.Errorf("created instance Hostname = %q", h)
	}

	r = run(t, withPassword(), append([]string{"wsman", "get", "winrm/config/Listener", "-s", "Address=*"}, conn...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "    Hostname = server1\n") || !strings.Contains(r.stdout, "    Port = 5986\n") {
		t.Errorf("get: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = run(t, withPassword(), append([]string{"wsman", "delete", "winrm/config/Listener", "-s", "Address=*"}, conn...)...)
	if r.code != 0 || r.stdout != "deleted "+listenerURI+"\n" {
		t.Errorf("delete: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, withPassword(), append([]string{"wsman", "delete", "winrm/config/Listener", "-s", "Address=*"}, conn...)...)
	if r.code != ExitFault || !strings.Contains(r.stderr, "DestinationUnreachable") {
		t.Errorf("second delete: exit %d: %s", r.code, r.stderr)
	}
}
