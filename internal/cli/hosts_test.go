package cli

import (
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
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseHost(%q) (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
}

func TestReadHostsFile(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      string
	}{
		{name: "plain", in: "a\nb:5986\n\n# comment\nc # trailing\n", want: []string{"a", "b:5986", "c"}},
		{name: "crlf", in: "a\r\nb\r\n", want: []string{"a", "b"}},
		{name: "empty", in: "# nothing\n\n", err: "hosts.txt: no hosts in the file"},
		{name: "two per line", in: "a\nb c\n", err: "hosts.txt line 2: want one host per line"},
		{name: "ansible group", in: "[web]\na\n", err: "hosts.txt line 1: group header \"[web]\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readHostsFile(strings.NewReader(tt.in), "hosts.txt")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
