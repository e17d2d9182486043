package fleet

import (
	"github.com/bitsremote/bitsremote/wsman/transport"

	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		in       string
		want     Host
		endpoint string // with defaults (0, false)
		err      string
	}{
		{in: "win1", want: Host{Name: "win1", Address: "win1"}, endpoint: "http://win1:5985/wsman"},
		{in: " win1:5986 ", want: Host{Name: "win1:5986", Address: "win1", Port: 5986}, endpoint: "https://win1:5986/wsman"},
		{in: "10.0.0.1:15985", want: Host{Name: "10.0.0.1:15985", Address: "10.0.0.1", Port: 15985}, endpoint: "http://10.0.0.1:15985/wsman"},
		{in: "[::1]:5985", want: Host{Name: "[::1]:5985", Address: "::1", Port: 5985}, endpoint: "http://[::1]:5985/wsman"},
		{in: "fe80::1", want: Host{Name: "fe80::1", Address: "fe80::1"}, endpoint: "http://[fe80::1]:5985/wsman"},
		{in: "https://w.example.com/wsman", want: Host{Name: "w.example.com:5986", Address: "w.example.com", Port: 5986, Scheme: "https"}, endpoint: "https://w.example.com:5986/wsman"},
		{in: "http://127.0.0.2:40000/wsman", want: Host{Name: "127.0.0.2:40000", Address: "127.0.0.2", Port: 40000, Scheme: "http"}, endpoint: "http://127.0.0.2:40000/wsman"},
		{in: "http://h:1/custom", want: Host{Name: "h:1", Address: "h", Port: 1, Scheme: "http", Path: "/custom"}, endpoint: "http://h:1/custom"},
		{in: "", err: "empty host name"},
		{in: "h:0", err: `host "h:0": port "0" is not a number from 1 to 65535`},
		{in: "h:x", err: `host "h:x": port "x" is not a number from 1 to 65535`},
		{in: "ftp://h/", err: `host "ftp://h/": scheme must be http or https`},
		{in: "http://admin:s3cret@h/wsman", err: `host "http://REDACTED@h/wsman": put the user in --user and the password in BITSREMOTE_PASSWORD, not in the URL`},
		{in: "a b", err: `host "a b": not a host name`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			h, err := ParseHost(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatal("password echoed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, h); d != "" {
				t.Fatalf("host (-want +got):\n%s", d)
			}
			if _, ep := h.Endpoint(0, false); ep != tc.endpoint {
				t.Errorf("endpoint = %q, want %q", ep, tc.endpoint)
			}
		})
	}
}

func TestEndpointDefaults(t *testing.T) {
	for _, tc := range []struct {
		h                Host
		port             int
		https            bool
		wantName, wantEP string
	}{
		{Host{Name: "a", Address: "a"}, 0, true, "a:5986", "https://a:5986/wsman"},
		{Host{Name: "a", Address: "a"}, 15985, false, "a:15985", "http://a:15985/wsman"},
		{Host{Name: "a", Address: "a", Port: 5986}, 0, false, "a:5986", "https://a:5986/wsman"},
		{Host{Name: "a", Address: "a", Port: 5985}, 0, true, "a:5985", "http://a:5985/wsman"},
		{Host{Name: "a", Address: "a", Port: 7000}, 0, true, "a:7000", "https://a:7000/wsman"},
		{Host{Name: "web1", Address: "10.1.1.1", Scheme: "https"}, 0, false, "web1", "https://10.1.1.1:5986/wsman"},
	} {
		name, ep := tc.h.Endpoint(tc.port, tc.https)
		if name != tc.wantName || ep != tc.wantEP {
			t.Errorf("%+v.Endpoint(%d, %v) = %q, %q; want %q, %q", tc.h, tc.port, tc.https, name, ep, tc.wantName, tc.wantEP)
		}
	}
}

const iniInventory = `
# a plain host before any section is ungrouped
loose.example.com
[web]
web[01:03].example.com ansible_user=webadmin
db-[a:b] ansible_host=10.0.0.9 # trailing comment
[web:vars]
ansible_winrm_transport=ntlm,kerberos
ansible_port=5986
[db]
db-a
bigdb:15985 ansible_winrm_scheme=http ansible_winrm_message_encryption=always
[db:vars]
ansible_winrm_transport="basic"
ansible_password=hunter2
[windows:children]
web
db
[windows:vars]
ansible_user=admin
ansible_winrm_transport=credssp,ntlm
; another comment style
[all:vars]
ansible_winrm_scheme=https
`

func TestParseINI(t *testing.T) {
	inv, err := ParseInventory([]byte(iniInventory), "hosts.ini")
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := inv.Hosts("")
	if err != nil {
		t.Fatal(err)
	}
	win := []string{"all", "web", "windows"}
	want := []Host{
		{Name: "loose.example.com", Address: "loose.example.com", Scheme: "https", Groups: []string{"all", "ungrouped"}},
		{Name: "web01.example.com:5986", Address: "web01.example.com", Port: 5986, Scheme: "https", User: "webadmin", Auth: "ntlm", Groups: win},
		{Name: "web02.example.com:5986", Address: "web02.example.com", Port: 5986, Scheme: "https", User: "webadmin", Auth: "ntlm", Groups: win},
		{Name: "web03.example.com:5986", Address: "web03.example.com", Port: 5986, Scheme: "https", User: "webadmin", Auth: "ntlm", Groups: win},
		// db-a is in web and db: db's vars and web's vars are at the same
		// depth, so the later group by name (web) wins.
		{Name: "db-a:5986", Address: "10.0.0.9", Port: 5986, Scheme: "https", User: "admin", Auth: "ntlm", Groups: []string{"all", "db", "web", "windows"}},
		{Name: "db-b:5986", Address: "10.0.0.9", Port: 5986, Scheme: "https", User: "admin", Auth: "ntlm", Groups: win},
		{Name: "bigdb:15985", Address: "bigdb", Port: 15985, Scheme: "http", User: "admin", Auth: "basic", Encryption: "always", Groups: []string{"all", "db", "windows"}},
	}
	if d := cmp.Diff(want, hosts); d != "" {
		t.Fatalf("hosts (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"all", "db", "ungrouped", "web", "windows"}, inv.Groups()); d != "" {
		t.Errorf("groups (-want +got):\n%s", d)
	}
	wantWarn := []string{"hosts.ini: group db: ansible_password ignored (passwords come from BITSREMOTE_PASSWORD, --password-file or a prompt)"}
	if d := cmp.Diff(wantWarn, inv.Warnings); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
}

func TestLimit(t *testing.T) {
	inv, err := ParseINI(strings.NewReader(iniInventory), "hosts")
	if err != nil {
		t.Fatal(err)
	}
	names := func(hs []Host) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Address)
		}
		return out
	}
	for _, tc := range []struct {
		limit string
		want  []string
		err   string
	}{
		{limit: "db", want: []string{"10.0.0.9", "bigdb"}},
		{limit: "windows:!db", want: []string{"web01.example.com", "web02.example.com", "web03.example.com", "10.0.0.9"}},
		{limit: "web,&db", want: []string{"10.0.0.9"}},
		{limit: "web0*", want: []string{"web01.example.com", "web02.example.com", "web03.example.com"}},
		{limit: "~^web0[13]", want: []string{"web01.example.com", "web03.example.com"}},
		{limit: "!windows", want: []string{"loose.example.com"}},
		{limit: "ungrouped,bigdb", want: []string{"loose.example.com", "bigdb"}},
		{limit: "all:!web:!db", want: []string{"loose.example.com"}},
		{limit: "*", want: []string{"loose.example.com", "web01.example.com", "web02.example.com", "web03.example.com", "10.0.0.9", "10.0.0.9", "bigdb"}},
		{limit: "dbx", err: `--limit: "dbx" matches no group or host in the inventory`},
		{limit: "web:!windows", err: `--limit "web:!windows" selects no hosts`},
		{limit: "~(", err: "--limit \"~(\": error parsing regexp: missing closing ): `(`"},
	} {
		t.Run(tc.limit, func(t *testing.T) {
			hs, err := inv.Hosts(tc.limit)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, names(hs)); d != "" {
				t.Fatalf("hosts (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseYAML(t *testing.T) {
	const doc = `all:
  vars:
    ansible_user: admin
    ansible_password: nope
  hosts:
    jump.example.com:
  children:
    windows:
      vars:
        ansible_winrm_transport: [credssp, ntlm]
        ansible_winrm_scheme: http
        ansible_port: 5985
      hosts:
        win[1:2]:
          ansible_winrm_message_encryption: never
        "win3:15985":
      children:
        sql:
          hosts:
            sql1: {ansible_host: 192.0.2.7, ansible_winrm_transport: basic, ansible_winrm_path: /wsman-ssl}
`
	dir := t.TempDir()
	p := filepath.Join(dir, "inventory") // no extension: detected by content
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := LoadInventory(p)
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := inv.Hosts("windows")
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{
		{Name: "win1:5985", Address: "win1", Port: 5985, Scheme: "http", User: "admin", Auth: "ntlm", Encryption: "never", Groups: []string{"all", "windows"}},
		{Name: "win2:5985", Address: "win2", Port: 5985, Scheme: "http", User: "admin", Auth: "ntlm", Encryption: "never", Groups: []string{"all", "windows"}},
		{Name: "win3:15985", Address: "win3", Port: 15985, Scheme: "http", User: "admin", Auth: "ntlm", Groups: []string{"all", "windows"}},
		{Name: "sql1:5985", Address: "192.0.2.7", Port: 5985, Scheme: "http", Path: "/wsman-ssl", User: "admin", Auth: "basic", Groups: []string{"all", "sql", "windows"}},
	}
	if d := cmp.Diff(want, hosts); d != "" {
		t.Fatalf("hosts (-want +got):\n%s", d)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "group all: ansible_password ignored") {
		t.Errorf("warnings = %q", inv.Warnings)
	}
	for _, h := range hosts {
		if strings.Contains(h.User+h.Name+h.Address, "nope") {
			t.Fatal("password leaked into a host")
		}
	}
}

func TestPlainHostsFile(t *testing.T) {
	inv, err := ParseInventory([]byte("\ufeff# fleet\nhost1\nhost2:15985   # a comment\n\nhttp://127.0.0.3:40000/wsman\nhost1\n127.0.0.1:1\n127.0.0.1:2\n"), "hosts.txt")
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := inv.Hosts("")
	if err != nil {
		t.Fatal(err)
	}
	var eps []string
	for _, h := range hosts {
		name, ep := h.Endpoint(0, false)
		eps = append(eps, name+" "+ep)
	}
	want := []string{
		"host1:5985 http://host1:5985/wsman",
		"host2:15985 http://host2:15985/wsman",
		"127.0.0.3:40000 http://127.0.0.3:40000/wsman",
		"127.0.0.1:1 http://127.0.0.1:1/wsman",
		"127.0.0.1:2 http://127.0.0.1:2/wsman",
	}
	if d := cmp.Diff(want, eps); d != "" {
		t.Fatalf("endpoints (-want +got):\n%s", d)
	}
}

func TestInventoryErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, doc, err string
	}{
		{"bad section", "h.ini", "[web\nh1\n", `h.ini line 1: bad section header "[web": want [group], [group:vars] or [group:children]`},
		{"vars without =", "h.ini", "[g:vars]\nfoo\n", `h.ini line 2: "foo" in [g:vars]: want key=value`},
		{"host var without =", "h.ini", "[g]\nh1 foo\n", `h.ini line 2: host h1: "foo" is not key=value`},
		{"unterminated quote", "h.ini", "h1 a=\"b\n", `h.ini line 1: unterminated quote in "h1 a=\"b"`},
		{"cycle", "h.ini", "h1\n[a:children]\nb\n[b:children]\na\n", "h.ini: groups form a cycle: a -> b -> a"},
		{"self child", "h.ini", "[a:children]\na\n", `h.ini line 2: group "a" cannot be its own child`},
		{"empty", "h.ini", "# nothing\n", "h.ini: no hosts in the inventory"},
		{"bad port", "h.ini", "h1:99999\n", `h.ini line 1: host "h1:99999": port "99999" is not a number from 1 to 65535`},
		{"bad range", "h.ini", "web[5:1]\n", `h.ini line 1: host range "[5:1]": want start <= end and at most 100000 hosts`},
		{"mixed range", "h.ini", "web[1:c]\n", `h.ini line 1: host range "[1:c]": mixes numbers and letters`},
		{"huge range", "h.ini", "w[0:999999]\n", `h.ini line 1: host range "[0:999999]": want start <= end and at most 100000 hosts`},
		{"yaml not a mapping", "h.yml", "- a\n- b\n", "h.yml line 1: the inventory must be a mapping of group names"},
		{"yaml unknown key", "h.yml", "all:\n  host:\n    a:\n", `h.yml line 2: group "all": unknown key "host" (want hosts, vars or children)`},
		{"yaml hosts list", "h.yml", "all:\n  hosts:\n    - a\n", "h.yml line 3: all.hosts: want a mapping of host names"},
		{"yaml syntax", "h.yml", "all: [\n", "h.yml: yaml: line 1: did not find expected node content"},
		{"yaml empty", "h.yml", "", "h.yml: empty inventory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseInventory([]byte(tc.doc), tc.file)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("err = %v\nwant %s", err, tc.err)
			}
		})
	}
	// Variables are checked when hosts are resolved.
	for _, tc := range []struct{ doc, err string }{
		{"h1 ansible_port=http\n", `host h1: ansible_port="http": port "http" is not a number from 1 to 65535`},
		{"h1 ansible_winrm_scheme=ftp\n", `host h1: ansible_winrm_scheme="ftp": want http or https`},
		{"h1 ansible_winrm_transport=credssp\n", `host h1: ansible_winrm_transport="credssp": no supported transport (want ntlm, basic, plaintext, ssl, kerberos or certificate; credssp is not supported)`},
		{"h1 ansible_winrm_message_encryption=sometimes\n", `host h1: ansible_winrm_message_encryption="sometimes": want auto, always or never`},
		{"h1 ansible_winrm_path=wsman\n", `host h1: ansible_winrm_path="wsman": want a path starting with /`},
		{"h1 ansible_winrm_service=HTTP/x\n", `host h1: ansible_winrm_service="HTTP/x": want a service name such as HTTP`},
		{"h1 ansible_winrm_kerberos_hostname_override=a@B\n", `host h1: ansible_winrm_kerberos_hostname_override="a@B": want a host name`},
	} {
		inv, err := ParseINI(strings.NewReader(tc.doc), "h")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inv.Hosts(""); err == nil || err.Error() != tc.err {
			t.Errorf("%q: err = %v, want %q", tc.doc, err, tc.err)
		}
	}
}

// TestKerberosSPN: pywinrm's Kerberos service and hostname override make
// a host's SPN, for hosts reached by address whose tickets are for their
// domain names; without either the transport's default (HTTP/<address>)
// applies.
func TestKerberosSPN(t *testing.T) {
	doc := `[win]
web1.corp.example.com ansible_host=10.0.0.5 ansible_winrm_kerberos_hostname_override=WEB1.corp.example.com
web2 ansible_host=10.0.0.6 ansible_winrm_service=WSMAN
web3 ansible_winrm_service=HTTP ansible_winrm_kerberos_hostname_override=web3.corp.example.com
web4 ansible_host=10.0.0.8
`
	inv, err := ParseINI(strings.NewReader(doc), "hosts")
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := inv.Hosts("")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hosts {
		got = append(got, h.Name+"="+h.SPN)
	}
	want := []string{"web1.corp.example.com=HTTP/web1.corp.example.com", "web2=WSMAN/10.0.0.6", "web3=HTTP/web3.corp.example.com", "web4="}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("SPNs (-want +got):\n%s", d)
	}
	// The connection asks for tickets for it, and the ledger keeps it.
	var cfgs []transport.Config
	cn := &Connector{NewTransport: func(c transport.Config) (transport.Transport, error) {
		cfgs = append(cfgs, c)
		return transport.Func(nil), nil
	}}
	c, err := cn.Connect(hosts[0])
	if err != nil {
		t.Fatal(err)
	}
	if cfgs[0].SPN != "HTTP/web1.corp.example.com" {
		t.Errorf("transport SPN %q", cfgs[0].SPN)
	}
	back, err := c.Record().Host(hosts[0].Name)
	if err != nil || back.SPN != "HTTP/web1.corp.example.com" {
		t.Errorf("ledger round trip: %+v, %v", back, err)
	}
	if _, err := cn.Connect(hosts[3]); err != nil || cfgs[1].SPN != "" {
		t.Errorf("a host without its own SPN: %q, %v", cfgs[1].SPN, err)
	}
}

func TestExpandRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"plain", []string{"plain"}},
		{"w[08:10]", []string{"w08", "w09", "w10"}},
		{"w[1:5:2]x", []string{"w1x", "w3x", "w5x"}},
		{"r[a:b]-[1:2]", []string{"ra-1", "ra-2", "rb-1", "rb-2"}},
	} {
		got, err := expandRange(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.in, d)
		}
	}
}

func FuzzParseInventory(f *testing.F) {
	f.Add([]byte(iniInventory), "h.ini")
	f.Add([]byte("all:\n  hosts:\n    a:\n"), "h.yml")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		inv, err := ParseInventory(data, name)
		if err != nil {
			return
		}
		_, _ = inv.Hosts("")
	})
}
