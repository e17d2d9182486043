package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/internal/cli"
	"github.com/bitsremote/bitsremote/internal/testnet"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// The canaries: our password for the host, and a BITS job's server
// password. Neither may appear anywhere but in the environment we hand
// the process.
const (
	canaryUser        = "admin"
	canaryPassword    = "Canary-Pw-7f3a9c!e"
	canaryJobPassword = "Job-Canary-41d2#x"
)

// canaryForms are the ways a password could leak: as is, base64 (a Basic
// header, with or without the user), URL-escaped, hex, UTF-16LE (NTLM
// works on UTF-16 strings).
func canaryForms() []string {
	var forms []string
	for _, pw := range []string{canaryPassword, canaryJobPassword} {
		u := utf16.Encode([]rune(pw))
		le := make([]byte, 2*len(u))
		for i, r := range u {
			le[2*i], le[2*i+1] = byte(r), byte(r>>8)
		}
		forms = append(forms, pw,
			base64.StdEncoding.EncodeToString([]byte(pw)),
			base64.StdEncoding.EncodeToString([]byte(canaryUser+":"+pw)),
			url.QueryEscape(pw), hex.EncodeToString([]byte(pw)), string(le))
	}
	return forms
}

// leak reports the first canary form found in text, or "".
func leak(text string) string {
	for _, f := range canaryForms() {
		if strings.Contains(text, f) {
			return f
		}
	}
	return ""
}

// scan fails the test when a canary appears in what.
func scan(t *testing.T, where, text string) {
	t.Helper()
	if f := leak(text); f != "" {
		t.Errorf("a password (%q) appears in %s:\n%.3000s", f, where, text)
	}
}

// canaryHost is a simulated host whose admin password is the canary.
func canaryHost(t *testing.T) *bitssim.Host {
	t.Helper()
	files := t.TempDir()
	if err := os.WriteFile(filepath.Join(files, "f.bin"), bytes.Repeat([]byte("x"), 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := bitssim.NewHost(bitssim.HostConfig{
		Server: wsmantest.Config{
			Auth:              wsmantest.AuthNTLM | wsmantest.AuthBasic,
			Users:             map[string]string{canaryUser: canaryPassword},
			RequireEncryption: true,
			Machine:           "CANARY",
		},
		Provider: bitssim.Config{TimeScale: 0.001, Slots: 2},
		FilesDir: files,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func hostPort(h *bitssim.Host) string {
	return strings.TrimSuffix(strings.TrimPrefix(h.URL, "http://"), "/wsman")
}

// inProcess runs the command line in this process with a recorder under
// every transport (no secrets given to it: its own rules must keep the
// passwords out) and returns the exit code and both streams.
func inProcess(t *testing.T, recordings string, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ios, _, out, errOut := cli.Test()
	f := cli.NewFactory()
	f.IO = ios
	f.Getenv = func(k string) string { return env[k] }
	n := 0
	f.NewTransport = func(cfg transport.Config) (transport.Transport, error) {
		next, err := transport.New(cfg)
		if err != nil {
			return nil, err
		}
		n++
		return transport.NewRecorder(next, recordings, fmt.Sprintf("%s-%d", strings.ReplaceAll(args[0], "/", "_"), n))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := cli.Execute(ctx, f, args)
	return code, out.String(), errOut.String()
}

// TestCanaryPassword runs commands in-process and as the real binary with
// canary passwords, --debug and recording on, against a good host, a
// host that refuses the password and a host that is not there, and scans
// every output, log, recording, error string and child command line.
func TestCanaryPassword(t *testing.T) {
	h := canaryHost(t)
	recordings := t.TempDir()
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(canaryPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{cli.EnvPassword: canaryPassword, cli.EnvJobPassword: canaryJobPassword}
	conn := []string{"-H", hostPort(h), "-u", canaryUser, "--debug"}
	dst := t.TempDir()

	// The good path, in-process: create, set the job's credentials, read,
	// list, transfer; every call dumped by --debug and recorded.
	code, stdout, stderr := inProcess(t, recordings, env, append([]string{"create", "--url", h.FilesURL + "/f.bin", "--local", filepath.Join(dst, "a.bin"), "--suspended", "-o", "json"}, conn...)...)
	scan(t, "create stdout", stdout)
	scan(t, "create stderr", stderr)
	if code != 0 || !strings.Contains(stderr, "level=DEBUG") {
		t.Fatalf("create: exit %d, or no --debug output\n%s\n%s", code, stdout, stderr)
	}
	id := jobIDFrom(t, stdout)
	steps := [][]string{
		{"set-credentials", id, "--job-user", "svc", "--scheme", "basic"},
		{"get", id, "-o", "json"},
		{"list"},
		{"resume", id},
		{"wait", id, "--complete", "--interval", "20ms"},
		{"transfer", h.FilesURL + "/f.bin", filepath.Join(dst, "b.bin")},
		{"wsman", "enumerate", "wmi/root/microsoft/bits/BitsClientJob"},
	}
	for _, s := range steps {
		code, stdout, stderr := inProcess(t, recordings, env, append(s, conn...)...)
		scan(t, s[0]+" stdout", stdout)
		scan(t, s[0]+" stderr", stderr)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s", s, code, stderr)
		}
	}
	// The password file instead of the environment.
	code, stdout, stderr = inProcess(t, recordings, map[string]string{}, "list", "--password-file", pwFile, "-H", hostPort(h), "-u", canaryUser, "--debug")
	scan(t, "list --password-file", stdout+stderr)
	if code != 0 {
		t.Errorf("list --password-file: exit %d\n%s", code, stderr)
	}

	// Failures: a host that refuses the password, one that is not there
	// (a port held without listening: a closed server's port could be
	// taken by a parallel test's listener meanwhile).
	down := testnet.RefusedAddr(t)
	wrong := map[string]string{cli.EnvPassword: canaryPassword + "-wrong", cli.EnvJobPassword: canaryJobPassword}
	for _, tc := range []struct {
		name string
		env  map[string]string
		host string
		code int
	}{
		{"wrong password", wrong, hostPort(h), cli.ExitAuth},
		{"wrong password basic", wrong, hostPort(h), cli.ExitAuth},
		{"host down", env, down, cli.ExitConnection},
	} {
		// The timeout only bounds a run gone wrong: the refusals come at
		// once, however loaded the machine.
		args := []string{"list", "-H", tc.host, "-u", canaryUser, "--debug", "--retries", "0", "--timeout", "10s"}
		if strings.HasSuffix(tc.name, "basic") {
			args = append(args, "--auth", "basic", "--encryption", "never")
		}
		code, stdout, stderr := inProcess(t, recordings, tc.env, args...)
		// The wrong password is the canary with a suffix: it must not
		// leak either.
		scan(t, tc.name, stdout+stderr)
		if tc.code == cli.ExitAuth && strings.Contains(stdout+stderr, "-wrong") {
			t.Errorf("%s: the wrong password shows:\n%s", tc.name, stderr)
		}
		if code != tc.code && !(tc.name == "wrong password basic" && code == cli.ExitUsage) {
			t.Errorf("%s: exit %d, want %d\n%s", tc.name, code, tc.code, stderr)
		}
	}

	// No password flag exists: the command line refuses one, and does not
	// repeat its value.
	for _, args := range [][]string{
		{"list", "--password", canaryPassword, "-H", hostPort(h), "-u", canaryUser},
		{"list", "--password=" + canaryPassword, "-H", hostPort(h), "-u", canaryUser},
		{"list", "-p", canaryPassword, "-H", hostPort(h), "-u", canaryUser},
	} {
		code, stdout, stderr := inProcess(t, recordings, map[string]string{}, args...)
		if code != cli.ExitUsage || !strings.Contains(stderr, "unknown") {
			t.Errorf("%v: exit %d, want %d (unknown flag)\n%s", args[1], code, cli.ExitUsage, stderr)
		}
		scan(t, args[1]+" refusal", stdout+stderr)
	}

	// Every recording file.
	files := 0
	err := filepath.WalkDir(recordings, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		scan(t, "recording "+p, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Errorf("only %d recording files: the scan saw too little", files)
	}
	// The job password went to the host (sealed), so the scan above had
	// something to miss.
	if !recordingMentions(t, recordings, "SetCredentials") {
		t.Error("no SetCredentials exchange was recorded")
	}

	// Error strings of the library, for the same failures.
	for _, tc := range []struct {
		name string
		cfg  transport.Config
		url  string
	}{
		{"ntlm wrong password", transport.Config{Auth: transport.AuthNTLM, User: canaryUser, Password: canaryPassword + "x"}, h.URL},
		{"basic wrong password", transport.Config{Auth: transport.AuthBasic, User: canaryUser, Password: canaryPassword + "x", Encryption: transport.EncryptionNever}, h.URL},
		{"host down", transport.Config{Auth: transport.AuthNTLM, User: canaryUser, Password: canaryPassword}, "http://" + down + "/wsman"},
	} {
		tr, err := transport.New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		w := wsman.NewClient(tc.url, tr)
		w.Retry = wsman.NoRetry
		c := bitsprov.NewClient(w)
		_, err = c.Jobs(context.Background(), bitsprov.JobFilter{})
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		scan(t, tc.name+" error", fmt.Sprintf("%v | %+v | %#v", err, err, err))
		scan(t, tc.name+" config", fmt.Sprintf("%v | %+v | %#v", tc.cfg, tc.cfg, tc.cfg))
		err = c.SetCredentials(context.Background(), "{00000000-0000-0000-0000-000000000001}", bitsprov.TargetServer, bitsprov.SchemeBasic, "svc", canaryJobPassword)
		if err == nil {
			t.Fatalf("%s: SetCredentials: no error", tc.name)
		}
		scan(t, tc.name+" SetCredentials error", fmt.Sprintf("%v | %+v", err, err))
	}

	// The real binary: output, and its command line as other users of the
	// machine see it (/proc/PID/cmdline) while it runs.
	res := run(t, runSpec{
		args:    append([]string{"list", "-o", "json"}, conn...),
		env:     []string{cli.EnvPassword + "=" + canaryPassword},
		secrets: canaryForms(),
	})
	scan(t, "binary list", res.Stdout+res.Stderr)
	wantCode(t, res, 0)
	res = run(t, runSpec{args: []string{"list", "--password", canaryPassword, "-H", hostPort(h), "-u", canaryUser}, secrets: canaryForms()})
	wantCode(t, res, cli.ExitUsage)
	checkChildArgv(t, h, conn)
}

// checkChildArgv starts a long wait and reads the child's argv and
// environment from /proc while it runs: the password is in the
// environment we gave it (which proves the scan finds it) and not in argv.
func checkChildArgv(t *testing.T, h *bitssim.Host, conn []string) {
	t.Helper()
	c := bitsprov.NewClient(wsman.NewClient(h.URL, mustTransport(t)))
	id, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{DisplayName: "held", RemoteURL: h.FilesURL + "/f.bin", LocalFile: filepath.Join(t.TempDir(), "h.bin"), Suspended: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"wait", id, "--interval", "50ms"}, conn...)...)
	cmd.Env = append(baseEnv(), cli.EnvPassword+"="+canaryPassword)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		scan(t, "wait output", out.String())
	}()
	// Let it get going (it polls the suspended job).
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !strings.Contains(out.String(), "GetResponse"); {
		time.Sleep(20 * time.Millisecond)
	}
	argv, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no /proc on this system")
	}
	if err != nil {
		t.Fatal(err)
	}
	scan(t, "child argv", string(argv))
	if !strings.Contains(string(argv), "wait\x00"+id) {
		t.Errorf("read the wrong argv: %q", argv)
	}
	if environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid)); err == nil && leak(string(environ)) == "" {
		t.Error("the scan does not find the password in the environment it was given: the scan is broken")
	}
}

func mustTransport(t *testing.T) transport.Transport {
	t.Helper()
	tr, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: canaryUser, Password: canaryPassword})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// jobIDFrom takes the jobId out of create's JSON.
func jobIDFrom(t *testing.T, stdout string) string {
	t.Helper()
	var v struct {
		JobID string `json:"jobId"`
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || v.JobID == "" {
		t.Fatalf("no jobId in %q: %v", stdout, err)
	}
	return v.JobID
}

func recordingMentions(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
				found = true
			}
		}
		return nil
	})
	return found
}
