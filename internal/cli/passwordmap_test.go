package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/internal/fleet"
)

// mapEntries flattens a map for comparison: key -> "password@line",
// the * line under "*".
func mapEntries(m *passwordMap) map[string]string {
	out := map[string]string{}
	for k, e := range m.byName {
		out[k] = fmt.Sprintf("%s@%d", e.password, e.line)
	}
	if m.def != nil {
		out["*"] = fmt.Sprintf("%s@%d", m.def.password, m.def.line)
	}
	return out
}

func TestParsePasswordMap(t *testing.T) {
	in := "\xef\xbb\xbf# LAPS export\r\n" +
		"\r\n" +
		"web01\tPw one\r\n" +
		"  WEB02:5986    p@ss w0rd  \r\n" +
		"[fe80::1]:5985 v6pw\n" +
		"::1 loop#not-a-comment\n" +
		"https://Web03/wsman tlspw\n" +
		"\t# an indented comment\n" +
		"*\t \tdefault pw"
	m, err := parsePasswordMap("m.txt", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"web01":          "Pw one@3",
		"web02:5986":     "p@ss w0rd  @4",
		"[fe80::1]:5985": "v6pw@5",
		"::1":            "loop#not-a-comment@6",
		"web03:5986":     "tlspw@7",
		"*":              "default pw@9",
	}
	if d := cmp.Diff(want, mapEntries(m)); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
}

func TestParsePasswordMapErrors(t *testing.T) {
	const secret = "Secret/Pw"
	tests := []struct {
		name, in, want string
	}{
		{"name only", "web01\n", "--password-map m.txt: line 1: no password after the name (want NAME PASSWORD)"},
		{"name and blanks", "# c\nweb01 \t \r\n", "--password-map m.txt: line 2: no password after the name (want NAME PASSWORD)"},
		{"name and CR", "web01 pw\nweb02 \t\r\n", "--password-map m.txt: line 2: no password after the name (want NAME PASSWORD)"},
		{"swapped columns", secret + " web01\n", "--password-map m.txt: line 1: the name is not a host, host:port or * (want NAME PASSWORD)"},
		{"bad port", "web01:99999 pw\n", "--password-map m.txt: line 1: the name is not a host, host:port or * (want NAME PASSWORD)"},
		{"glob", "web* pw\n", "--password-map m.txt: line 1: a name with * or ?: names are matched whole; * alone is the default for hosts no line names"},
		{"duplicate", "web01 a\n\nWEB01 " + secret + "\n", "--password-map m.txt: line 3: the same host as line 1"},
		{"duplicate as URL", "web01:5985 a\nhttp://web01/wsman b\n", "--password-map m.txt: line 2: the same host as line 1"},
		{"second default", "* a\nweb01 b\n*\t" + secret + "\n", "--password-map m.txt: line 3: a second * line (the first is line 1)"},
		{"empty", "# nothing\n\n   \n", "--password-map m.txt: no NAME PASSWORD line"},
		{"long line", "web01 a\n" + strings.Repeat("x", maxPasswordMapLine+1) + "\n", "--password-map m.txt: line 2: longer than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parsePasswordMap("m.txt", strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("no error; map %v", m)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
			if ExitCode(err) != ExitUsage {
				t.Errorf("exit code %d, want %d", ExitCode(err), ExitUsage)
			}
			if strings.Contains(err.Error(), "Secret") {
				t.Errorf("the password in the error: %v", err)
			}
		})
	}
}

func TestLoadPasswordMapPermissions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "laps.map")
	if err := os.WriteFile(file, []byte("web01 Pw-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		perm os.FileMode
		want string
	}{
		{0o600, ""},
		{0o400, ""},
		{0o700, ""},
		{0o640, "--password-map " + file + ": permissions 0640 are too open: group or others may read or change it, and it holds passwords; make it private with chmod 600 " + file + " (as ssh requires of a private key)"},
		{0o604, "--password-map " + file + ": permissions 0604 are too open: group or others may read or change it, and it holds passwords; make it private with chmod 600 " + file + " (as ssh requires of a private key)"},
		{0o620, "--password-map " + file + ": permissions 0620 are too open: group or others may read or change it, and it holds passwords; make it private with chmod 600 " + file + " (as ssh requires of a private key)"},
		{0o644, "--password-map " + file + ": permissions 0644 are too open: group or others may read or change it, and it holds passwords; make it private with chmod 600 " + file + " (as ssh requires of a private key)"},
	} {
		t.Run(fmt.Sprintf("%04o", tt.perm), func(t *testing.T) {
			if err := os.Chmod(file, tt.perm); err != nil {
				t.Fatal(err)
			}
			m, err := loadPasswordMap(file)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if e, ok := m.byName["web01"]; !ok || e.password != "Pw-1" {
					t.Errorf("entries %v", mapEntries(m))
				}
				return
			}
			if err == nil || err.Error() != tt.want || ExitCode(err) != ExitUsage {
				t.Errorf("error\n got %v\nwant %s", err, tt.want)
			}
		})
	}
	if _, err := loadPasswordMap(dir); err == nil || err.Error() != "--password-map "+dir+": not a regular file" {
		t.Errorf("a directory: %v", err)
	}
	missing := filepath.Join(dir, "none")
	if _, err := loadPasswordMap(missing); err == nil || err.Error() != "--password-map: open "+missing+": no such file or directory" || ExitCode(err) != ExitUsage {
		t.Errorf("a missing file: %v", err)
	}
}

// TestPasswordMapLookup: which line gives which host its password: the
// name as given (-H value or inventory name, never ansible_host), with the
// port the host is reached on before the name alone, then *, then none.
func TestPasswordMapLookup(t *testing.T) {
	const body = "web01 pw-web01\n" +
		"web01:5986 pw-web01-https\n" +
		"10.0.0.9 pw-by-address\n" +
		"127.0.0.1:6001 pw-one\n" +
		"[::1]:5985 pw-v6\n" +
		"Db02 pw-db02\n"
	inv, err := fleet.ParseInventory([]byte("web01 ansible_host=10.0.0.9 ansible_port=5986\n"+
		"db01 ansible_host=10.0.0.9\n"+
		"db02 ansible_host=10.0.0.9 ansible_port=5999\n"), "hosts.ini")
	if err != nil {
		t.Fatal(err)
	}
	invHosts, err := inv.Hosts("")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]fleet.Host{}
	for _, h := range invHosts {
		byName[h.Name] = h
	}
	hostArg := func(s string) fleet.Host {
		h, err := fleet.ParseHost(s)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	tests := []struct {
		name  string
		host  fleet.Host
		https bool
		// want is the password without a * line, then with one.
		want, withDefault string
	}{
		{"-H name", hostArg("web01"), false, "pw-web01", "pw-web01"},
		{"-H name, upper case", hostArg("WEB01"), false, "pw-web01", "pw-web01"},
		{"-H name:5985", hostArg("web01:5985"), false, "pw-web01", "pw-web01"},
		{"-H name:5986", hostArg("web01:5986"), false, "pw-web01-https", "pw-web01-https"},
		{"-H name --https", hostArg("web01"), true, "pw-web01-https", "pw-web01-https"},
		{"-H URL", hostArg("https://web01/wsman"), false, "pw-web01-https", "pw-web01-https"},
		{"-H address:port", hostArg("127.0.0.1:6001"), false, "pw-one", "pw-one"},
		{"-H address, another port", hostArg("127.0.0.1:6002"), false, "", "pw-default"},
		{"-H IPv6", hostArg("::1"), false, "pw-v6", "pw-v6"},
		{"-H address", hostArg("10.0.0.9"), false, "pw-by-address", "pw-by-address"},
		{"inventory name:port", byName["web01:5986"], false, "pw-web01-https", "pw-web01-https"},
		{"inventory name, not its ansible_host", byName["db01"], false, "", "pw-default"},
		{"inventory name with a port, line without", byName["db02:5999"], false, "pw-db02", "pw-db02"},
		{"unknown", hostArg("web09"), false, "", "pw-default"},
	}
	plain, err := parsePasswordMap("m", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	withDefault, err := parsePasswordMap("m", strings.NewReader(body+"* pw-default\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.host.Address == "" {
				t.Fatal("no such inventory host")
			}
			_, url := tt.host.Endpoint(0, tt.https)
			e, ok := plain.lookup(tt.host, url)
			if got := e.password; got != tt.want || ok != (tt.want != "") {
				t.Errorf("without *: %q, %v; want %q", got, ok, tt.want)
			}
			e, ok = withDefault.lookup(tt.host, url)
			if got := e.password; got != tt.withDefault || !ok {
				t.Errorf("with *: %q, %v; want %q", got, ok, tt.withDefault)
			}
		})
	}
	var none *passwordMap
	if _, ok := none.lookup(hostArg("web01"), "http://web01:5985/wsman"); ok {
		t.Error("no map gave a password")
	}
	for _, s := range []string{plain.String(), fmt.Sprintf("%v %+v %#v %s", plain, plain, plain, plain)} {
		if strings.Contains(s, "pw-") {
			t.Errorf("a password printed: %s", s)
		}
	}
	if got := plain.String(); got != "password map m (6 lines)" {
		t.Errorf("String() = %q", got)
	}
}

// Per-host passwords of the fleet tests: one with a space, as LAPS
// passwords may have.
const (
	lapsOne = "Laps-One-7f3a"
	lapsTwo = "Laps Two 9c1b"
	lapsBad = "Laps-Wrong-0000"
)

// lapsSecrets are the forms of the passwords that must never be printed.
func lapsSecrets() []string {
	var out []string
	for _, p := range []string{lapsOne, lapsTwo, lapsBad, testPassword} {
		out = append(out, p, base64.StdEncoding.EncodeToString([]byte(testUser+":"+p)))
	}
	return out
}

// writeMap writes a password map, private.
func writeMap(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "laps.map")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runTTY runs the command line in-process on a terminal: prompted
// passwords come from answer (an error when it is ""), and each prompt
// is counted.
func runTTY(t *testing.T, env map[string]string, answer string, args ...string) (result, []string) {
	t.Helper()
	ios, _, out, errOut := Test()
	ios.StdinTTY = true
	var prompts []string
	ios.ReadSecret = func(p string) (string, error) {
		prompts = append(prompts, p)
		if answer == "" {
			return "", errors.New("no answer")
		}
		return answer, nil
	}
	code := Execute(context.Background(), testFactory(t, ios, env), args)
	r := result{code: code, stdout: out.String(), stderr: errOut.String()}
	checkNoLapsSecrets(t, r.stdout+r.stderr)
	return r, prompts
}

func checkNoLapsSecrets(t *testing.T, text string) {
	t.Helper()
	for _, s := range lapsSecrets() {
		if strings.Contains(text, s) {
			t.Errorf("a password (%.4s...) in the output:\n%s", s, text)
		}
	}
}

// TestPasswordMapFleet: two hosts with their own passwords in one run,
// from a map of -H names or of inventory names, with no prompt when the
// map covers every host; a host the map leaves out gets the usual
// password, asked for once; a wrong password fails that host only.
func TestPasswordMapFleet(t *testing.T) {
	h1, h2 := newSimHostPassword(t, lapsOne), newSimHostPassword(t, lapsTwo)
	hosts := []string{"-H", h1.hostArg(), "-H", h2.hostArg(), "-u", testUser}
	both := writeMap(t, "# LAPS\n"+h1.hostArg()+"\t"+lapsOne+"\n"+h2.hostArg()+"   "+lapsTwo+"\r\n")

	t.Run("every host in the map", func(t *testing.T) {
		r, prompts := runTTY(t, nil, "", append([]string{"list", "--password-map", both, "--debug", "-o", "jsonl"}, hosts...)...)
		if r.code != 0 || len(prompts) != 0 || !strings.Contains(r.stderr, "summary: 2 hosts: 2 ok, 0 failed") {
			t.Fatalf("exit %d, prompts %q\n%s", r.code, prompts, r.stderr)
		}
		for i, h := range []string{h1.hostArg(), h2.hostArg()} {
			want := fmt.Sprintf(`msg=password host=%s from="--password-map line %d"`, h, i+2)
			if !strings.Contains(r.stderr, want) {
				t.Errorf("debug output lacks %q:\n%s", want, r.stderr)
			}
		}
	})

	t.Run("inventory names and *", func(t *testing.T) {
		_, p1, _ := strings.Cut(h1.hostArg(), ":")
		_, p2, _ := strings.Cut(h2.hostArg(), ":")
		inv := filepath.Join(t.TempDir(), "hosts.ini")
		body := "[laps]\nweb1 ansible_host=127.0.0.1 ansible_port=" + p1 + "\nweb2 ansible_host=127.0.0.1 ansible_port=" + p2 + "\n"
		if err := os.WriteFile(inv, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		m := writeMap(t, "WEB1 "+lapsOne+"\n* "+lapsTwo+"\n")
		r, prompts := runTTY(t, map[string]string{EnvPassword: lapsBad}, "", "list", "-i", inv, "-u", testUser, "--password-map", m, "-o", "jsonl")
		if r.code != 0 || len(prompts) != 0 || !strings.Contains(r.stderr, "summary: 2 hosts: 2 ok, 0 failed") {
			t.Fatalf("exit %d, prompts %q\n%s", r.code, prompts, r.stderr)
		}
	})

	t.Run("wrong password for one host", func(t *testing.T) {
		m := writeMap(t, h1.hostArg()+" "+lapsOne+"\n"+h2.hostArg()+" "+lapsBad+"\n")
		r, prompts := runTTY(t, nil, "", append([]string{"list", "--password-map", m, "--retries", "0", "-o", "jsonl"}, hosts...)...)
		if r.code != ExitAuth || len(prompts) != 0 || !strings.Contains(r.stderr, "summary: 2 hosts: 1 ok, 1 failed") {
			t.Fatalf("exit %d, prompts %q\n%s", r.code, prompts, r.stderr)
		}
		if !strings.Contains(r.stdout, `{"host":"`+h2.hostArg()+`","exitCode":3,`) || strings.Contains(r.stdout, `"host":"`+h1.hostArg()+`","exitCode"`) {
			t.Errorf("stdout:\n%s", r.stdout)
		}
	})

	t.Run("the usual password for the rest", func(t *testing.T) {
		m := writeMap(t, h1.hostArg()+" "+lapsOne+"\n")
		args := append([]string{"list", "--password-map", m, "-o", "jsonl"}, hosts...)
		r, prompts := runTTY(t, map[string]string{EnvPassword: lapsTwo}, "", args...)
		if r.code != 0 || len(prompts) != 0 {
			t.Fatalf("from $%s: exit %d, prompts %q\n%s", EnvPassword, r.code, prompts, r.stderr)
		}
		r, prompts = runTTY(t, nil, lapsTwo, args...)
		if r.code != 0 || cmp.Diff([]string{"Password for admin: "}, prompts) != "" {
			t.Fatalf("prompted: exit %d, prompts %q\n%s", r.code, prompts, r.stderr)
		}
		r = run(t, nil, args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "no password: set BITSREMOTE_PASSWORD, or use --password-file FILE, or run on a terminal to be prompted") {
			t.Fatalf("no terminal: exit %d\n%s", r.code, r.stderr)
		}
		checkNoLapsSecrets(t, r.stdout+r.stderr)
	})

	t.Run("refused map", func(t *testing.T) {
		before := len(h1.Server.Log()) + len(h2.Server.Log())
		m := writeMap(t, h1.hostArg()+" "+lapsOne+"\n"+h2.hostArg()+"\n")
		r, prompts := runTTY(t, nil, lapsTwo, append([]string{"list", "--password-map", m}, hosts...)...)
		if r.code != ExitUsage || len(prompts) != 0 || r.stderr != "bitsremote: --password-map "+m+": line 2: no password after the name (want NAME PASSWORD)\n" {
			t.Errorf("exit %d, prompts %q\n%s", r.code, prompts, r.stderr)
		}
		if err := os.Chmod(m, 0o644); err != nil {
			t.Fatal(err)
		}
		r, _ = runTTY(t, nil, "", append([]string{"list", "--password-map", m}, hosts...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "permissions 0644 are too open") {
			t.Errorf("exit %d\n%s", r.code, r.stderr)
		}
		if n := len(h1.Server.Log()) + len(h2.Server.Log()) - before; n != 0 {
			t.Errorf("%d requests reached the hosts", n)
		}
	})
}

// TestPasswordMapLedger: a transfer and a wait --run (which reaches the
// hosts as the ledger recorded them) on hosts with their own passwords;
// the ledger never holds one.
func TestPasswordMapLedger(t *testing.T) {
	h1, h2 := newSimHostPassword(t, lapsOne), newSimHostPassword(t, lapsTwo)
	m := writeMap(t, h1.hostArg()+" "+lapsOne+"\n"+h2.hostArg()+" "+lapsTwo+"\n")
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	env := map[string]string{fleet.EnvLedger: ledger}
	r, prompts := runTTY(t, env, "", "transfer", h1.FilesURL+"/file.bin", tempPath(t, "out.bin"), "--async", "--password-map", m,
		"-H", h1.hostArg(), "-H", h2.hostArg(), "-u", testUser, "-o", "jsonl")
	if r.code != 0 || len(prompts) != 0 {
		t.Fatalf("transfer: exit %d, prompts %q\n%s", r.code, prompts, r.stderr)
	}
	id := regexp.MustCompile(`wait --run (\S+)`).FindStringSubmatch(r.stderr)
	if id == nil {
		t.Fatalf("no run id:\n%s", r.stderr)
	}
	r, prompts = runTTY(t, env, "", "wait", "--run", id[1], "--complete", "--interval", "20ms", "--password-map", m, "-u", testUser, "-o", "jsonl")
	if r.code != 0 || len(prompts) != 0 || strings.Count(r.stdout, `"state":"Acknowledged"`) != 2 {
		t.Fatalf("wait --run: exit %d, prompts %q\n%s\n%s", r.code, prompts, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	checkNoLapsSecrets(t, string(b))
}

func FuzzParsePasswordMap(f *testing.F) {
	f.Add([]byte("web01\tPw one\r\n* default\n# c\n"))
	f.Add([]byte("[::1]:5985 a\nhttps://h/wsman b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parsePasswordMap("m", strings.NewReader(string(data)))
		if err != nil {
			if ExitCode(err) != ExitUsage {
				t.Fatalf("exit code %d for %v", ExitCode(err), err)
			}
			return
		}
		for k, e := range mapEntries(m) {
			if k == "" || e == "" || strings.ContainsAny(e, "\n") {
				t.Fatalf("entry %q = %q", k, e)
			}
		}
		h, _ := fleet.ParseHost("web01")
		_, _ = m.lookup(h, "http://web01:5985/wsman")
	})
}
