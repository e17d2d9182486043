package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		spec  string
		port  int
		https bool
		want  Endpoint
		err   string
	}{
		{spec: "server1", port: 5985, want: Endpoint{Name: "server1:5985", URL: "http://server1:5985/wsman"}},
		{spec: "server1", port: 5986, https: true, want: Endpoint{Name: "server1:5986", URL: "https://server1:5986/wsman"}},
		{spec: "server1:1234", port: 5985, want: Endpoint{Name: "server1:1234", URL: "http://server1:1234/wsman"}},
		{spec: "10.0.0.1", port: 5985, want: Endpoint{Name: "10.0.0.1:5985", URL: "http://10.0.0.1:5985/wsman"}},
		{spec: "[::1]:5985", port: 1, want: Endpoint{Name: "[::1]:5985", URL: "http://[::1]:5985/wsman"}},
		{spec: "fe80::1", port: 5985, want: Endpoint{Name: "[fe80::1]:5985", URL: "http://[fe80::1]:5985/wsman"}},
		{spec: "https://srv.example.com", port: 5985, want: Endpoint{Name: "srv.example.com:5986", URL: "https://srv.example.com:5986/wsman"}},
		{spec: "http://srv:8080/custom", port: 5985, want: Endpoint{Name: "srv:8080", URL: "http://srv:8080/custom"}},
		{spec: "  server2  ", port: 5985, want: Endpoint{Name: "server2:5985", URL: "http://server2:5985/wsman"}},
		{spec: "", err: "empty host name"},
		{spec: "server:0", err: `port "0" is not a number from 1 to 65535`},
		{spec: "server:http", err: `port "http" is not a number`},
		{spec: "ftp://server", err: "scheme must be http or https"},
		{spec: "http://admin:secret@server", err: "REDACTED"},
		{spec: "serv er", err: "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := parseHost(tt.spec, tt.port, tt.https)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseHost(%q) error = %v, want one containing %q", tt.spec, err, tt.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(Endpoint{}), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".host" }, cmp.Ignore())); diff != "" {
				t.Errorf("parseHost(%q) (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
}

// TestInventoryEndpoints reads hosts files and Ansible inventories
// through --inventory and --limit, after -H hosts, without duplicates.
func TestInventoryEndpoints(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("hosts.txt", "a\r\nb:5986\n\n# comment\nc # trailing\n")
	ini := write("inv.ini", "[web]\nweb[1:2] ansible_port=15985\n[db]\ndb1 ansible_host=10.0.0.5 ansible_winrm_scheme=https\n")
	yml := write("inv.yml", "all:\n  children:\n    win:\n      hosts:\n        w1:\n          ansible_port: 5986\n")
	tests := []struct {
		name string
		conn ConnOptions
		want []Endpoint
		err  string
	}{
		{name: "plain", conn: ConnOptions{Hosts: []string{"c"}, Inventory: plain}, want: []Endpoint{
			{Name: "c:5985", URL: "http://c:5985/wsman"}, {Name: "a:5985", URL: "http://a:5985/wsman"}, {Name: "b:5986", URL: "https://b:5986/wsman"}}},
		{name: "ini limit", conn: ConnOptions{Inventory: ini, Limit: "db"}, want: []Endpoint{{Name: "db1", URL: "https://10.0.0.5:5986/wsman"}}},
		{name: "ini all", conn: ConnOptions{Inventory: ini, Port: 7000}, want: []Endpoint{
			{Name: "web1:15985", URL: "http://web1:15985/wsman"}, {Name: "web2:15985", URL: "http://web2:15985/wsman"}, {Name: "db1", URL: "https://10.0.0.5:7000/wsman"}}},
		{name: "yaml", conn: ConnOptions{Inventory: yml}, want: []Endpoint{{Name: "w1:5986", URL: "https://w1:5986/wsman"}}},
		{name: "limit without inventory", conn: ConnOptions{Hosts: []string{"a"}, Limit: "web"}, err: "--limit selects hosts of an --inventory"},
		{name: "limit matches nothing", conn: ConnOptions{Inventory: ini, Limit: "sql"}, err: `--limit: "sql" matches no group or host in the inventory`},
		{name: "missing file", conn: ConnOptions{Inventory: filepath.Join(dir, "none")}, err: "inventory: open "},
		{name: "bad inventory", conn: ConnOptions{Inventory: write("bad.ini", "[web\n")}, err: "bad.ini line 1: bad section header"},
		{name: "none", conn: ConnOptions{}, err: "no host: give -H HOST (repeatable) or --inventory FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _, _ := Test()
			f := NewFactory()
			f.IO = ios
			f.Conn = tt.conn
			got, err := f.endpoints()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || ExitCode(err) != ExitUsage {
					t.Fatalf("error = %v, want a usage error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b Endpoint) bool { return a.Name == b.Name && a.URL == b.URL })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
