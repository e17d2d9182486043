package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/internal/testnet"
)

// TestExitCodes provokes exit codes 2 to 5 for real against live hosts
// and checks each message (codes 0 and 1 are provoked by the job tests).
// Every run is also scanned for the password.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{})
	tlsSim := startSim(t, simOptions{auth: "basic", https: true})
	// Basic offered over http, but (as on a default Windows host) only
	// with message encryption, which Basic cannot give.
	basicHTTP := startSim(t, simOptions{auth: "ntlm,basic"})
	host := s.host().Host
	closedPort := strconv.Itoa(testnet.RefusedPort(t))
	silent := silentListener(t)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(s.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrongFile, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badInventory := filepath.Join(t.TempDir(), "hosts.txt")
	if err := os.WriteFile(badInventory, []byte(host+"\nbad/host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const unknownID = "{0BADC0DE-0000-4000-8000-000000000001}"
	env := []string{"BITSREMOTE_PASSWORD=" + s.password}
	conn := []string{"-H", host, "-u", "admin"}
	with := func(args ...string) []string { return append(args, conn...) }

	tests := []struct {
		name string
		args []string
		env  []string
		code int
		// stderr must contain every one of these.
		stderr []string
		// help: the "Run '... --help' for usage." hint is expected.
		help bool
	}{
		// 0: the password from --password-file, no environment.
		{name: "password file", args: with("list", "--password-file", pwFile), code: 0},

		// 2: usage, found before any host is contacted.
		{name: "unknown flag", args: with("list", "--bogus"), env: env, code: 2, stderr: []string{"unknown flag: --bogus"}, help: true},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`}, help: true},
		{name: "missing argument", args: with("get"), env: env, code: 2, stderr: []string{"JOBID"}, help: true},
		{name: "job id not a GUID", args: with("get", "nonsense"), env: env, code: 2, stderr: []string{`job id "nonsense" is not a GUID`}},
		{name: "malformed selector", args: with("wsman", "get", bitsAlias, "-s", "JobId"), env: env, code: 2, stderr: []string{`-s "JobId": want Name=Value`}},
		{name: "missing password, stdin not a terminal", args: with("list"), code: 2, stderr: []string{"no password", "BITSREMOTE_PASSWORD", "--password-file"}},
		{name: "missing password file", args: with("list", "--password-file", filepath.Join(t.TempDir(), "nope")), code: 2, stderr: []string{"--password-file", "nope"}},
		{name: "missing inventory", args: []string{"list", "--inventory", filepath.Join(t.TempDir(), "hosts.txt"), "-u", "admin"}, env: env, code: 2, stderr: []string{"inventory", "hosts.txt"}},
		{name: "bad inventory line", args: []string{"list", "--inventory", badInventory, "-u", "admin"}, env: env, code: 2, stderr: []string{"bad/host"}},
		{name: "certificate without a key", args: with("list", "--auth", "certificate", "--https", "--cert-file", pwFile), env: env, code: 2, stderr: []string{"--key-file"}},
		{name: "no host", args: []string{"list", "-u", "admin"}, env: env, code: 2, stderr: []string{"no host"}},
		{name: "no user", args: []string{"list", "-H", host}, env: env, code: 2, stderr: []string{"--user"}},
		{name: "bad output format", args: with("list", "-o", "yaml"), env: env, code: 2, stderr: []string{`"yaml"`}},
		{name: "bad auth", args: with("list", "--auth", "digest"), env: env, code: 2, stderr: []string{`--auth "digest"`}},
		{name: "bad port", args: with("list", "--port", "70000"), env: env, code: 2, stderr: []string{"70000"}},
		{name: "credentials in URL", args: []string{"list", "-H", "http://admin:" + s.password + "@" + host + "/wsman", "-u", "admin"}, env: env, code: 2, stderr: []string{"not in the URL"}},
		{name: "bad priority", args: with("priority", unknownID, "urgent"), env: env, code: 2, stderr: []string{"urgent"}},
		{name: "bad wait policy", args: with("wait", unknownID, "--on-error", "retry"), env: env, code: 2, stderr: []string{`--on-error "retry"`}},
		{name: "create without url", args: with("create", "--local", "/tmp/x"), env: env, code: 2, stderr: []string{"--url"}},
		{name: "proxy list without override", args: with("set-proxy", unknownID, "--usage", "noproxy", "--list", "p:8080"), env: env, code: 2, stderr: []string{"--usage override"}},
		{name: "override without a list", args: with("set-proxy", unknownID, "--usage", "override"), env: env, code: 2, stderr: []string{"needs --list"}},
		{name: "set-proxy without usage", args: with("set-proxy", unknownID), env: env, code: 2, stderr: []string{"--usage is required"}},
		{name: "set-credentials without job user", args: with("set-credentials", unknownID), env: append(env, "BITSREMOTE_JOB_PASSWORD=jp"), code: 2, stderr: []string{"--job-user"}},
		{name: "set-credentials without job password", args: with("set-credentials", unknownID, "--job-user", "svc"), env: env, code: 2, stderr: []string{"BITSREMOTE_JOB_PASSWORD", "--job-password-file"}},
		{name: "bad credential scheme", args: with("set-credentials", unknownID, "--job-user", "svc", "--scheme", "kerberos"), env: append(env, "BITSREMOTE_JOB_PASSWORD=jp"), code: 2, stderr: []string{"--scheme"}},
		{name: "job password over plain http", args: with("set-credentials", unknownID, "--job-user", "u", "--auth", "basic", "--encryption", "never"),
			env: append(env, "BITSREMOTE_JOB_PASSWORD=jp"), code: 2, stderr: []string{"refusing to send a job password"}},

		// 3: authentication.
		{name: "wrong password", args: with("list"), env: []string{"BITSREMOTE_PASSWORD=not-the-password"}, code: 3, stderr: []string{host, "rejected the credentials"}},
		{name: "wrong password from file", args: with("list", "--password-file", wrongFile), code: 3, stderr: []string{"rejected the credentials"}},
		{name: "basic against an NTLM-only host", args: with("list", "--auth", "basic"), env: env, code: 3, stderr: []string{"401", "auth method"}},
		{name: "basic over http to a host that requires encryption", args: append([]string{"list", "--auth", "basic", "--retries", "0"}, basicHTTP.conn(0)...),
			env: []string{"BITSREMOTE_PASSWORD=" + basicHTTP.password}, code: 3, stderr: []string{"401"}},
		{name: "basic cannot seal", args: append([]string{"list", "--auth", "basic", "--encryption", "always"}, basicHTTP.conn(0)...),
			env: []string{"BITSREMOTE_PASSWORD=" + basicHTTP.password}, code: 2, stderr: []string{"basic auth cannot encrypt messages"}},
		{name: "unknown user", args: []string{"list", "-H", host, "-u", "mallory"}, env: env, code: 3, stderr: []string{"rejected the credentials"}},
		{name: "wrong basic password over https", args: append([]string{"list"}, tlsSim.conn(0)...), env: []string{"BITSREMOTE_PASSWORD=not-the-password"}, code: 3},

		// 4: connection, TLS, timeout.
		{name: "nothing listening", args: []string{"list", "-H", "127.0.0.1:" + closedPort, "-u", "admin"}, env: env, code: 4, stderr: []string{"connection refused"}},
		{name: "unknown CA", args: []string{"list", "-H", tlsSim.host().Host, "--https", "-u", "admin", "--auth", "basic"}, env: []string{"BITSREMOTE_PASSWORD=" + tlsSim.password}, code: 4, stderr: []string{"certificate"}},
		{name: "TLS to a plain HTTP listener", args: with("list", "--https"), env: env, code: 4},
		{name: "timeout", args: []string{"list", "-H", silent, "-u", "admin", "--timeout", "500ms", "--retries", "0"}, env: env, code: 4},

		// 5: faults from the host.
		{name: "unencrypted to a host that requires encryption", args: with("list", "--encryption", "never", "--retries", "0"), env: env, code: 5, stderr: []string{host, "500"}},
		{name: "unknown job id: get", args: with("get", unknownID), env: env, code: 5, stderr: []string{unknownID, "not found"}},
		{name: "unknown job id: get -o json", args: with("get", unknownID, "-o", "json"), env: env, code: 5, stderr: []string{unknownID, "not found"}},
		{name: "unknown job id: resume", args: with("resume", unknownID), env: env, code: 5, stderr: []string{unknownID}},
		{name: "unknown job id: priority", args: with("priority", unknownID, "low"), env: env, code: 5, stderr: []string{unknownID}},
		{name: "unknown job id: add-file", args: with("add-file", unknownID, "http://127.0.0.1:1/x", "/tmp/x"), env: env, code: 5, stderr: []string{unknownID}},
		{name: "unknown job id: error", args: with("error", unknownID), env: env, code: 5, stderr: []string{unknownID}},
		{name: "unknown job id: wait", args: with("wait", unknownID, "--interval", "50ms"), env: env, code: 5, stderr: []string{unknownID}},
		{name: "unknown job id: set-proxy", args: with("set-proxy", unknownID, "--usage", "noproxy"), env: env, code: 5, stderr: []string{unknownID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := run(t, runSpec{args: tc.args, env: tc.env, secrets: append(append(append(s.secrets(), tlsSim.secrets()...), basicHTTP.secrets()...), "not-the-password")})
			wantCode(t, res, tc.code)
			for _, want := range tc.stderr {
				if !strings.Contains(res.Stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, res)
				}
			}
			if tc.code != 0 {
				if res.Stdout != "" {
					t.Errorf("a failure printed on stdout:\n%s", res)
				}
				if !strings.HasPrefix(res.Stderr, "bitsremote: ") {
					t.Errorf("stderr does not start with \"bitsremote: \":\n%s", res)
				}
				if got := strings.Contains(res.Stderr, "--help' for usage"); got != tc.help {
					t.Errorf("help hint shown: %v, want %v:\n%s", got, tc.help, res)
				}
				if strings.Contains(res.Stderr, "panic") || strings.Contains(res.Stderr, "goroutine ") {
					t.Errorf("crashed:\n%s", res)
				}
			}
		})
	}
}

// silentListener accepts connections and never answers, so the client's
// timeout is what ends the request.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestSecretsNeverPrinted runs with --debug, whose wire dump shows
// headers and bodies, over Basic (the password travels in every request)
// and NTLM, and sends a job password (inside the SOAP body): neither the
// password nor its Basic token may appear.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	basic := startSim(t, simOptions{auth: "basic", https: true})
	ntlm := startSim(t, simOptions{})
	fs := newFileServer(t)
	const jobPassword = "Job-Secret-In-The-Body-42"
	for name, s := range map[string]*sim{"basic over https": basic, "sealed ntlm": ntlm} {
		t.Run(name, func(t *testing.T) {
			u, _ := fs.addRandom("debug.bin", 10)
			res := s.run(t, "create", "--url", u, "--local", filepath.Join(t.TempDir(), "debug.bin"), "--suspended", "--debug")
			wantCode(t, res, 0)
			id := strings.TrimSpace(res.Stdout)
			if !strings.Contains(res.Stderr, "CreateJob") {
				t.Errorf("--debug shows no wire dump:\n%s", res.Stderr)
			}
			res = run(t, runSpec{
				args:    append([]string{"set-credentials", id, "--job-user", "svc", "--scheme", "basic", "--debug"}, s.conn(0)...),
				env:     []string{"BITSREMOTE_PASSWORD=" + s.password, "BITSREMOTE_JOB_PASSWORD=" + jobPassword},
				secrets: append(s.secrets(), jobPassword, basicToken("svc", jobPassword)),
			})
			wantCode(t, res, 0)
			if !strings.Contains(res.Stderr, "SetCredentials") {
				t.Errorf("--debug shows no SetCredentials request:\n%s", res.Stderr)
			}
			res = s.run(t, "list", "--debug", "-o", "json")
			wantCode(t, res, 0)
		})
	}
}

// dropListener reads each request and closes the connection without an
// answer, as a host whose service is restarting or a proxy that drops us
// does; it counts the connections, one per attempt.
type dropListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func newDropListener(t *testing.T) *dropListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dropListener{Listener: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			d.mu.Lock()
			d.n++
			d.mu.Unlock()
			// Take the request first, so the client always sees its
			// connection closed while awaiting the answer (EOF or a
			// reset), never before sending.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Read(make([]byte, 64<<10))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return d
}

func (d *dropListener) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// TestDroppedConnections: a host that closes every connection without
// answering is a connection failure (exit 4), and --retries N makes N+1
// attempts in all, whatever the command, not N+1 at each layer. wait
// rides out a host that does not answer (it may be restarting) until its
// --timeout, then exits 4.
func TestDroppedConnections(t *testing.T) {
	t.Parallel()
	const id = "{0BADC0DE-0000-4000-8000-000000000002}"
	for _, tc := range []struct {
		args    []string
		retries int
	}{
		{[]string{"list"}, 0},
		{[]string{"list"}, 2},
		{[]string{"get", id}, 0},
		{[]string{"get", id}, 2},
		{[]string{"wsman", "enumerate", bitsAlias}, 2},
	} {
		t.Run(fmt.Sprintf("%s retries %d", tc.args[0], tc.retries), func(t *testing.T) {
			t.Parallel()
			d := newDropListener(t)
			res := run(t, runSpec{
				args: append(tc.args, "-H", d.Addr().String(), "-u", "admin", "--retries", strconv.Itoa(tc.retries)),
				env:  []string{"BITSREMOTE_PASSWORD=pw"},
			})
			wantCode(t, res, 4)
			if got := d.count(); got != tc.retries+1 {
				t.Errorf("%d connections, want %d (--retries %d)\n%s", got, tc.retries+1, tc.retries, res)
			}
		})
	}
	t.Run("wait", func(t *testing.T) {
		t.Parallel()
		d := newDropListener(t)
		res := run(t, runSpec{
			args: []string{"wait", id, "--interval", "100ms", "--timeout", "1s", "-H", d.Addr().String(), "-u", "admin"},
			env:  []string{"BITSREMOTE_PASSWORD=pw"},
		})
		wantCode(t, res, 4)
		if !strings.Contains(res.Stderr, d.Addr().String()) {
			t.Errorf("wait: stderr does not name the host:\n%s", res)
		}
		if d.count() < 2 {
			t.Errorf("wait tried the host %d times in 1 s; it should keep polling", d.count())
		}
	})
}
