package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// manyKeys answers Create with an EPR of several selectors, in an order
// neither sorted nor any map's.
type manyKeys struct{ listeners }

var manyKeysSelectors = []wsman.Selector{
	{Name: "Transport", Value: "HTTPS"}, {Name: "Address", Value: "*"}, {Name: "Zone", Value: "z"},
	{Name: "Bravo", Value: "2"}, {Name: "Port", Value: "5986"}, {Name: "Alpha", Value: "1"},
}

func (m *manyKeys) Create(ctx context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.EndpointReference, error) {
	return &wsman.EndpointReference{Address: wsman.AddressAnonymous, ResourceURI: listenerURI, Selectors: manyKeysSelectors}, nil
}

// TestWSManEPRSelectorOrder: the text form of a returned EPR lists its
// selectors in the order the host sent them, the same on every run.
func TestWSManEPRSelectorOrder(t *testing.T) {
	srv := wsmantest.NewUnstartedServer(wsmantest.Config{Auth: wsmantest.AuthBasic, Users: map[string]string{testUser: testPassword}})
	srv.Handle(listenerURI, &manyKeys{listeners{items: map[string]*wsman.Instance{}}})
	srv.Start()
	defer srv.Close()
	host := strings.TrimSuffix(strings.TrimPrefix(srv.URL, "http://"), "/wsman")
	want := listenerURI + "?Transport=HTTPS+Address=*+Zone=z+Bravo=2+Port=5986+Alpha=1\n"
	// Six keys: a map's order matches by chance once in 720 runs.
	for i := range 5 {
		r := run(t, withPassword(), "wsman", "create", "winrm/config/Listener", "-s", "Address=*", "-v", "Port=5986",
			"-H", host, "--auth", "basic", "--encryption", "never", "-u", testUser)
		if r.code != 0 {
			t.Fatalf("run %d: exit %d: %s", i+1, r.code, r.stderr)
		}
		if r.stdout != want {
			t.Fatalf("run %d printed %q, want %q", i+1, r.stdout, want)
		}
	}
}
