package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSimCommand checks sim itself: its table output says how to reach
// the host without printing a password from the environment, a generated
// password is printed once and works, SIGTERM stops it with exit 0, and
// bad flags are usage errors.
func TestSimCommand(t *testing.T) {
	t.Parallel()

	t.Run("table output", func(t *testing.T) {
		t.Parallel()
		const password = "Env-Password-For-Sim-1"
		cmd := exec.Command(binary, "sim", "--listen", "127.0.0.1:0", "--user", "ops")
		cmd.Env = append(baseEnv(), "BITSREMOTE_PASSWORD="+password)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr := &lockedBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var out []string
		timeout := time.After(15 * time.Second)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("sim exited early:\n%s\nstderr:\n%s", strings.Join(out, "\n"), stderr)
				}
				out = append(out, l)
				if l == "Serving until Ctrl-C." {
					break read
				}
			case <-timeout:
				t.Fatalf("sim printed no ready line in 15 s:\n%s", strings.Join(out, "\n"))
			}
		}
		text := strings.Join(out, "\n")
		if strings.Contains(text, password) {
			t.Errorf("sim printed the password from its environment:\n%s", text)
		}
		var host string
		for _, l := range out {
			if f := strings.Fields(l); len(f) > 2 && f[0] == "host" {
				host = f[1]
				if f[2] != "http://"+host+"/wsman" || !strings.Contains(l, "auth ntlm, encryption required") {
					t.Errorf("host line %q", l)
				}
			}
		}
		if host == "" || !hasLine(text, "user ops") || !hasLine(text, "bitsremote list -H "+host+" -u ops") {
			t.Fatalf("sim table output lacks the host, user or the command to try:\n%s", text)
		}
		res := run(t, runSpec{args: []string{"list", "-H", host, "-u", "ops"}, env: []string{"BITSREMOTE_PASSWORD=" + password}, secrets: []string{password}})
		wantCode(t, res, 0)

		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		for range lines {
		}
		err = cmd.Wait()
		if err != nil {
			t.Errorf("sim after SIGTERM: %v, want exit 0\nstderr:\n%s", err, stderr)
		}
		if !strings.Contains(stderr.String(), "stopping") {
			t.Errorf("sim did not say it was stopping:\n%s", stderr)
		}
	})

	t.Run("generated password", func(t *testing.T) {
		t.Parallel()
		s := &sim{t: t, opts: simOptions{}}
		// No password in the environment: sim makes one and prints it.
		s.password = ""
		s.start()
		t.Cleanup(s.stop)
		pw := s.host().Password
		if len(pw) < 12 {
			t.Fatalf("sim -o jsonl without BITSREMOTE_PASSWORD: password %q, want a generated one", pw)
		}
		s.password = pw
		wantCode(t, s.run(t, "list"), 0)
	})

	t.Run("state dir keeps jobs and server ports", func(t *testing.T) {
		t.Parallel()
		files := t.TempDir()
		content := []byte(strings.Repeat("served by sim --files\n", 1000))
		if err := os.WriteFile(filepath.Join(files, "f.txt"), content, 0o644); err != nil {
			t.Fatal(err)
		}
		state := t.TempDir()
		// On an address of its own: the ports must still be free when
		// it comes back (see ipRestartState).
		s := startSim(t, simOptions{ip: ipRestartState, uploadDir: t.TempDir(), extra: []string{"--state-dir", state, "--files", files}})
		before := s.host()
		if !strings.HasPrefix(before.Host, ipRestartState+":") || !strings.HasPrefix(before.FilesURL, "http://"+ipRestartState+":") ||
			!strings.HasPrefix(before.UploadURL, "http://"+ipRestartState+":") {
			t.Fatalf("sim --listen %s:0 --files --upload-dir: %+v; want the host and both servers on %s", ipRestartState, before, ipRestartState)
		}
		local := filepath.Join(t.TempDir(), "f.txt")
		res := s.run(t, "create", "--url", before.FilesURL+"/f.txt", "--local", local, "--suspended", "--name", "kept")
		wantCode(t, res, 0)
		id := strings.TrimSpace(res.Stdout)
		s.stop()
		s.restart()
		after := s.host()
		if after.Host != before.Host || after.FilesURL != before.FilesURL || after.UploadURL != before.UploadURL {
			t.Errorf("after a restart on the same --state-dir: %+v, before %+v", after, before)
		}
		res = s.run(t, "get", id, "-o", "json")
		wantCode(t, res, 0)
		var j jobJSON
		decode(t, res, &j)
		if j.DisplayName != "kept" || j.State != "Suspended" {
			t.Errorf("the job after the restart: %s, %s", j.DisplayName, j.State)
		}
		wantCode(t, s.run(t, "resume", id), 0)
		wantCode(t, s.run(t, "wait", id, "--complete", "--interval", "50ms"), 0)
		sameBytes(t, "f.txt", readFile(t, local), content)
	})

	t.Run("bad flags", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"sim", "--auth", "kerberos"}, "--auth kerberos needs --keytab FILE"},
			{[]string{"sim", "--auth", "kerberos", "--keytab", "/no/such.keytab", "--https"}, "/no/such.keytab"},
			{[]string{"sim", "--auth", "ntlm", "--keytab", "/x"}, "--keytab is for --auth kerberos"},
			{[]string{"sim", "--auth", "digest"}, `--auth "digest"`},
			{[]string{"sim", "--encryption", "sometimes"}, `--encryption "sometimes"`},
			{[]string{"sim", "--hosts", "0"}, "--hosts 0"},
			{[]string{"sim", "--listen", "localhost"}, `--listen "localhost"`},
			{[]string{"sim", "--hosts", "2", "--listen", "0.0.0.0:0"}, "127.x.y.z"},
			{[]string{"sim", "--files", "/no/such/dir"}, "--files"},
			{[]string{"sim", "--time-scale", "0"}, "--time-scale"},
			{[]string{"sim", "--state-dir", "/dev/null"}, `--state-dir "/dev/null": not a directory`},
		} {
			res := run(t, runSpec{args: tc.args, timeout: 10 * time.Second})
			wantCode(t, res, 2)
			if !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.want, res.Stderr)
			}
		}
	})
}
