// Package integration drives the real bitsremote binary, built once by
// TestMain, against "bitsremote sim" child processes and a loopback file
// server in the test process: every command, its JSON output field by
// field, every exit code, bad input, and a wait that survives the host
// restarting.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/internal/leakcheck"
)

// binary is the bitsremote executable TestMain built.
var binary string

// stateHome is XDG_STATE_HOME for every child, so that nothing the
// binary keeps (its job ledger) lands in the real home directory.
var stateHome string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds ./cmd/bitsremote into a temporary directory, runs the
// tests and removes the directory. A build failure fails the whole run:
// nothing here is worth skipping.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bitsremote-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	binary = filepath.Join(dir, "bitsremote")
	stateHome = filepath.Join(dir, "state")
	if err := os.Mkdir(stateHome, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	build := exec.Command("go", "build", "-o", binary, "./cmd/bitsremote")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: go build ./cmd/bitsremote:", err)
		return 1
	}
	code := m.Run()
	// A goroutine of ours (a sim's reader, a background run, a file
	// server's handler) must not outlive the tests; leakcheck.Main would
	// exit before the deferred removal of dir, so its check runs here.
	if code == 0 {
		if leaked := leakcheck.Leaked("github.com/bitsremote/bitsremote/"); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked after the tests:\n%s\n", leaked)
			return 1
		}
	}
	return code
}

// result is what one run of the binary produced.
type result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int
}

func (r result) String() string {
	return fmt.Sprintf("bitsremote %s\nexit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// runSpec describes one run: arguments, extra environment, stdin, and the
// secrets that must not appear in its output.
type runSpec struct {
	args    []string
	env     []string
	stdin   io.Reader
	secrets []string
	// timeout bounds the run (default 30 s) so a hang fails the test
	// instead of the whole package.
	timeout time.Duration
}

// baseEnv is the environment of every child: the parent's, minus any
// BITSREMOTE_ variable a developer may have set, so tests see only what
// they give, with the state directory in the test's temporary tree.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BITSREMOTE_") || strings.HasPrefix(kv, "XDG_STATE_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "XDG_STATE_HOME="+stateHome)
}

// ownLedger gives a run its own job ledger unless the test chose one:
// tests that run transfers at the same time must not wait on each
// other's ledger lock (TestConcurrentTransfers covers that case).
func ownLedger(t *testing.T, env []string) []string {
	t.Helper()
	for _, kv := range env {
		if strings.HasPrefix(kv, "BITSREMOTE_LEDGER=") {
			return env
		}
	}
	dir, err := os.MkdirTemp(stateHome, "ledger-")
	if err != nil {
		t.Fatal(err)
	}
	return append(env, "BITSREMOTE_LEDGER="+filepath.Join(dir, "ledger.db"))
}

// run executes the binary and checks that no secret appears in stdout or
// stderr, in clear or base64 form.
func run(t *testing.T, spec runSpec) result {
	t.Helper()
	spec.env = ownLedger(t, spec.env)
	res, err := execute(spec)
	if err != nil {
		t.Fatal(err)
	}
	checkNoSecrets(t, res, spec.secrets)
	return res
}

// runAsync is run in the background: the result arrives on the channel,
// and the caller checks it (wantCode and the secrets) on the test's
// goroutine.
func runAsync(t *testing.T, spec runSpec) <-chan result {
	t.Helper()
	spec.env = ownLedger(t, spec.env)
	ch := make(chan result, 1)
	go func() {
		res, err := execute(spec)
		if err != nil {
			res.Code, res.Stderr = -1, res.Stderr+"\n"+err.Error()
		}
		ch <- res
	}()
	return ch
}

// execute runs the binary once; it is safe off the test's goroutine.
func execute(spec runSpec) (result, error) {
	timeout := spec.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, spec.args...)
	cmd.Env = append(baseEnv(), spec.env...)
	if spec.stdin != nil {
		cmd.Stdin = spec.stdin
	}
	// Otherwise stdin is /dev/null: never a terminal, so no prompt.
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := cmd.Run()
	res := result{Args: spec.args, Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("bitsremote %s: still running after %v\n%s", strings.Join(spec.args, " "), timeout, res)
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		return res, fmt.Errorf("bitsremote %s: %w", strings.Join(spec.args, " "), err)
	}
	return res, nil
}

// checkNoSecrets fails the test when a secret leaks into the output.
func checkNoSecrets(t *testing.T, res result, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, where := range []struct{ name, text string }{{"stdout", res.Stdout}, {"stderr", res.Stderr}} {
			if strings.Contains(where.text, s) {
				t.Errorf("a password appears in %s of:\n%s", where.name, res)
			}
		}
	}
}

// wantCode fails the test unless the run ended with code.
func wantCode(t *testing.T, res result, code int) {
	t.Helper()
	if res.Code != code {
		t.Fatalf("exit code %d, want %d\n%s", res.Code, code, res)
	}
}

// decode parses JSON output into v, failing the test on anything else.
func decode(t *testing.T, res result, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(res.Stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not the expected JSON: %v\n%s", err, res)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value\n%s", res)
	}
}

// decodeLines parses jsonl output, one value per line.
func decodeLines[T any](t *testing.T, res result) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var v T
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %q is not the expected JSON: %v\n%s", sc.Text(), err, res)
		}
		out = append(out, v)
	}
	return out
}
