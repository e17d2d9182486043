package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPasswordMap: a LAPS fleet, where every host's administrator has its
// own password: "sim --hosts 2 --password-per-host" and one run of the
// real binary over both with --password-map and no other password (none
// in the environment, stdin not a terminal), then a wrong password for
// one host failing that host only (exit 3), then a map others may read
// refused before any host is contacted.
func TestPasswordMap(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{hosts: 2, extra: []string{"--password-per-host"}})
	h1, h2 := s.hosts[0], s.hosts[1]
	if h1.Password == "" || h1.Password == h2.Password || h1.Password == s.password {
		t.Fatalf("sim --password-per-host passwords: %q, %q", h1.Password, h2.Password)
	}
	const wrong = "Not-The-Password-7"
	var secrets []string
	for _, p := range []string{h1.Password, h2.Password, wrong, s.password} {
		secrets = append(secrets, p, basicToken("admin", p))
	}
	dir := t.TempDir()
	writeMap := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hosts := []string{"-H", h1.Host, "-H", h2.Host, "-u", "admin"}
	list := func(m string) result {
		t.Helper()
		return run(t, runSpec{args: append([]string{"list", "--password-map", m, "--retries", "0", "--debug", "-o", "jsonl"}, hosts...), secrets: secrets})
	}

	good := writeMap("laps.map", "# exported from LAPS\n"+strings.ToUpper(h1.Host)+"\t"+h1.Password+"\n"+h2.Host+"  "+h2.Password+"\r\n")
	res := list(good)
	wantCode(t, res, 0)
	if !strings.Contains(res.Stderr, "summary: 2 hosts: 2 ok, 0 failed") {
		t.Errorf("no summary of 2 ok hosts:\n%s", res)
	}

	bad := writeMap("wrong.map", h1.Host+" "+h1.Password+"\n"+h2.Host+" "+wrong+"\n")
	res = list(bad)
	wantCode(t, res, 3)
	if !strings.Contains(res.Stderr, "summary: 2 hosts: 1 ok, 1 failed") {
		t.Errorf("no summary of 1 ok, 1 failed:\n%s", res)
	}
	type failure struct {
		Host     string `json:"host"`
		ExitCode int    `json:"exitCode"`
		Failure  string `json:"failure"`
	}
	fails := decodeLines[failure](t, res)
	if len(fails) != 1 || fails[0].Host != h2.Host || fails[0].ExitCode != 3 {
		t.Errorf("failure records %+v, want one for %s with exit code 3\n%s", fails, h2.Host, res)
	}

	if err := os.Chmod(good, 0o644); err != nil {
		t.Fatal(err)
	}
	res = list(good)
	wantCode(t, res, 2)
	want := "bitsremote: --password-map " + good + ": permissions 0644 are too open: group or others may read or change it, and it holds passwords; make it private with chmod 600 " + good + " (as ssh requires of a private key)\n"
	if res.Stderr != want || res.Stdout != "" {
		t.Errorf("a map others may read:\n got %q\nwant %q", res.Stderr, want)
	}
}
