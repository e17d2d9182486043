package integration

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// simOptions choose how a simulated host is started.
type simOptions struct {
	// auth is sim's --auth ("" is its default, ntlm).
	auth string
	// encryption is sim's --encryption ("" is its default, required).
	encryption string
	// https serves the WinRM HTTPS listener with a generated CA.
	https bool
	// ip is the loopback address of the first host ("" is 127.0.0.1).
	// A host that restarts takes one of the restart addresses below.
	ip string
	// port fixes the listening port (0: any free port).
	port int
	// hosts is sim's --hosts (0: one).
	hosts int
	// uploadDir receives uploads when set.
	uploadDir string
	// extra are more sim flags.
	extra []string
}

// Loopback addresses of hosts that restart on their old port, one per
// test, used nowhere else (127.0.0.1 and 127.0.0.2 are everyone's). On
// 127.0.0.1 the port a stopped host leaves is free for any listener of
// the tests running in parallel (and for the source port of an outgoing
// connection, which Linux takes from 127.0.0.1 for all of 127.0.0.0/8), so
// the host could not come back. sim puts its file and upload servers on
// the same address, so they come back too.
const (
	ipRestartKilled  = "127.0.0.11"
	ipRestartStopped = "127.0.0.12"
	ipRestartState   = "127.0.0.13"
)

// simRecord is one line of "sim -o jsonl": how to reach a host.
type simRecord struct {
	Host      string `json:"host"`
	URL       string `json:"url"`
	Machine   string `json:"machine"`
	Auth      string `json:"auth"`
	User      string `json:"user"`
	Password  string `json:"password"`
	CAFile    string `json:"caFile"`
	FilesURL  string `json:"filesUrl"`
	UploadURL string `json:"uploadUrl"`
}

// sim is a running "bitsremote sim" child process.
type sim struct {
	t        *testing.T
	opts     simOptions
	password string
	// hosts are the records sim printed, one per simulated host.
	hosts []simRecord
	cmd   *exec.Cmd
	// exited is closed when the process has been reaped.
	exited chan struct{}
	stderr *lockedBuffer
}

// startSim starts sim with a fresh password in its environment (never in
// argv) and stops it when the test ends.
func startSim(t *testing.T, opts simOptions) *sim {
	t.Helper()
	s := &sim{t: t, opts: opts, password: "Pw-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-x"}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// args are sim's command line.
func (s *sim) args() []string {
	o := s.opts
	ip := o.ip
	if ip == "" {
		ip = "127.0.0.1"
	}
	args := []string{"sim", "--listen", net.JoinHostPort(ip, strconv.Itoa(o.port)), "-o", "jsonl", "--user", "admin"}
	if o.auth != "" {
		args = append(args, "--auth", o.auth)
	}
	if o.encryption != "" {
		args = append(args, "--encryption", o.encryption)
	}
	if o.https {
		args = append(args, "--https")
	}
	if o.hosts > 1 {
		args = append(args, "--hosts", strconv.Itoa(o.hosts))
	}
	if o.uploadDir != "" {
		args = append(args, "--upload-dir", o.uploadDir)
	}
	return append(args, o.extra...)
}

// start runs the process and reads its ready lines: one JSON record per
// host on stdout.
func (s *sim) start() {
	t := s.t
	t.Helper()
	cmd := exec.Command(binary, s.args()...)
	cmd.Env = baseEnv()
	if s.password != "" {
		cmd.Env = append(cmd.Env, "BITSREMOTE_PASSWORD="+s.password)
	}
	// A process group of its own, so stopping it stops anything it
	// started and a ^C to the test run does not reach it twice.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stderr = &lockedBuffer{}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sim: %v", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	lines := make(chan string)
	exited := s.exited
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
		close(lines)
		// Reap only after stdout is drained: Wait closes the pipe.
		_ = cmd.Wait()
		close(exited)
	}()
	n := max(s.opts.hosts, 1)
	s.hosts = nil
	deadline := time.After(15 * time.Second)
	for len(s.hosts) < n {
		select {
		case line, ok := <-lines:
			if !ok {
				<-s.exited
				t.Fatalf("sim %s exited before it was ready: %v\nstderr:\n%s", strings.Join(s.args(), " "), cmd.ProcessState, s.stderr)
			}
			var rec simRecord
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("sim printed %q, not a host record: %v", line, err)
			}
			s.hosts = append(s.hosts, rec)
		case <-deadline:
			s.kill(syscall.SIGKILL)
			t.Fatalf("sim not ready after 15 s\nstderr:\n%s", s.stderr)
		}
	}
	// Drain later output so the child never blocks on a full pipe.
	go func() {
		for range lines {
		}
	}()
	if s.opts.port == 0 {
		// Restarts come back on the same port.
		_, p, _ := net.SplitHostPort(s.hosts[0].Host)
		s.opts.port, _ = strconv.Atoi(p)
	}
}

// kill signals the process group.
func (s *sim) kill(sig syscall.Signal) {
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
}

// stop ends the process: SIGTERM, then SIGKILL if it lingers.
func (s *sim) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.kill(syscall.SIGTERM)
	// Stopping takes milliseconds; the bound is for a loaded machine.
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.t.Errorf("sim did not stop on SIGTERM within 20 s; killing it")
		s.kill(syscall.SIGKILL)
		<-s.exited
	}
	if s.password != "" && strings.Contains(s.stderr.String(), s.password) {
		s.t.Errorf("sim printed its password on stderr:\n%s", s.stderr)
	}
}

// crash kills the process without warning, as a power cut would.
func (s *sim) crash() {
	s.kill(syscall.SIGKILL)
	<-s.exited
}

// restart starts sim again with the same options, on the same port.
func (s *sim) restart() {
	s.t.Helper()
	s.start()
}

// host is the first simulated host.
func (s *sim) host() simRecord { return s.hosts[0] }

// conn returns the connection flags for host i.
func (s *sim) conn(i int) []string {
	h := s.hosts[i]
	args := []string{"-H", h.Host, "-u", h.User}
	if strings.EqualFold(s.opts.auth, "basic") {
		args = append(args, "--auth", "basic")
	}
	if s.opts.https {
		args = append(args, "--https", "--ca-file", h.CAFile)
	}
	return args
}

// run runs bitsremote against the first host with the password in the
// environment, checking that it never shows up in the output.
func (s *sim) run(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, runSpec{
		args:    append(args, s.conn(0)...),
		env:     []string{"BITSREMOTE_PASSWORD=" + s.password},
		secrets: s.secrets(),
	})
}

// withLedger returns a runner of bitsremote with the password in the
// environment and the job ledger at ledger, for tests whose commands
// (transfer, --resume, wait --run) share one ledger; the hosts are the
// caller's arguments.
func (s *sim) withLedger(t *testing.T, ledger string) func(args ...string) result {
	env := []string{"BITSREMOTE_PASSWORD=" + s.password, "BITSREMOTE_LEDGER=" + ledger}
	return func(args ...string) result {
		t.Helper()
		return run(t, runSpec{args: args, env: env, secrets: s.secrets()})
	}
}

// secrets are the forms of the password that must never be printed: in
// clear, and inside a Basic Authorization header.
func (s *sim) secrets() []string {
	return []string{s.password, basicToken("admin", s.password)}
}

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a
// reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
