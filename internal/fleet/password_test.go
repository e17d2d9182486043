package fleet

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// TestConnectorPassword: a host's own password (Connector.Password)
// replaces the command's in that host's transport settings only; a host
// the function does not know keeps the command's, a certificate host is
// not asked, and nothing of the password reaches the Conn's ledger
// record.
func TestConnectorPassword(t *testing.T) {
	own := map[string]string{"web1": "Laps-Web1 pw", "web2:5986": "Laps-Web2"}
	var asked []string
	var cfgs []transport.Config
	cn := &Connector{
		Base: transport.Config{Auth: transport.AuthNTLM, User: "admin", Password: "Common-Pw"},
		Password: func(h Host) (string, bool) {
			asked = append(asked, h.Name)
			p, ok := own[h.Name]
			return p, ok
		},
		NewTransport: func(c transport.Config) (transport.Transport, error) {
			cfgs = append(cfgs, c)
			return transport.Func(nil), nil
		},
	}
	hosts := []Host{
		{Name: "web1", Address: "10.0.0.1"},
		{Name: "web2:5986", Address: "web2", Port: 5986},
		{Name: "web3", Address: "web3"},
		{Name: "web4", Address: "web4", Auth: "certificate", Scheme: "https"},
	}
	var records []string
	for _, h := range hosts {
		c, err := cn.Connect(h)
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		b, err := json.Marshal(c.Record())
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, string(b), fmt.Sprintf("%+v %#v", c, c.Host))
	}
	got := make([]string, len(cfgs))
	for i, c := range cfgs {
		got[i] = c.Password
	}
	if d := cmp.Diff([]string{"Laps-Web1 pw", "Laps-Web2", "Common-Pw", "Common-Pw"}, got); d != "" {
		t.Errorf("transport passwords (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"web1", "web2:5986", "web3"}, asked); d != "" {
		t.Errorf("hosts asked for (-want +got):\n%s", d)
	}
	if cn.Base.Password != "Common-Pw" {
		t.Errorf("Base changed: %q", cn.Base.Password)
	}
	for _, r := range records {
		for _, secret := range []string{"Laps-Web1", "Laps-Web2", "Common-Pw"} {
			if strings.Contains(r, secret) {
				t.Errorf("a password in %s", r)
			}
		}
	}
}
