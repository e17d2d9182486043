package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/internal/fleet"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

const (
	testUser     = "admin"
	testPassword = "S3cret-pa55"
)

// simHost is a simulated Windows host on loopback (bitssim.Host): a
// WS-Man endpoint with NTLM (and Basic) and encryption required, the
// simulated BITS provider, and a file server for the jobs to download from.
type simHost struct {
	*bitssim.Host
	// content is what the file server serves at /file.bin; /other.bin is
	// its first 100 bytes.
	content []byte
}

func newSimHost(t *testing.T) *simHost {
	t.Helper()
	return newSimHostPassword(t, testPassword)
}

// newSimHostPassword is newSimHost whose administrator has password (a
// LAPS fleet's hosts each have their own).
func newSimHostPassword(t *testing.T, password string) *simHost {
	t.Helper()
	content := bytes.Repeat([]byte("bitsremote test data\n"), 3000)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file.bin"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.bin"), content[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := bitssim.NewHost(bitssim.HostConfig{
		Server: wsmantest.Config{
			Auth:              wsmantest.AuthNTLM | wsmantest.AuthBasic,
			Users:             map[string]string{testUser: password},
			RequireEncryption: true,
			Machine:           "sim01",
		},
		Provider:  bitssim.Config{TimeScale: 0.001, Slots: 4},
		FilesDir:  dir,
		UploadDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &simHost{Host: h, content: content}
}

// hostArg is the -H value for the host: its host:port.
func (h *simHost) hostArg() string {
	return strings.TrimSuffix(strings.TrimPrefix(h.URL, "http://"), "/wsman")
}

// run executes the command line in-process and returns the exit code
// and the streams.
type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runIn(t, "", env, args...)
}

// testFactory is a Factory on ios whose environment is env, with the job
// ledger in the test's directory (never the user's) unless env names one.
func testFactory(t *testing.T, ios *IOStreams, env map[string]string) *Factory {
	t.Helper()
	f := NewFactory()
	f.IO = ios
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	f.Getenv = func(k string) string {
		if v, ok := env[k]; ok || k != fleet.EnvLedger {
			return v
		}
		return ledger
	}
	return f
}

func runIn(t *testing.T, stdin string, env map[string]string, args ...string) result {
	t.Helper()
	ios, in, out, errOut := Test()
	in.WriteString(stdin)
	f := testFactory(t, ios, env)
	code := Execute(context.Background(), f, args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// withPassword is the environment with the host password.
func withPassword() map[string]string {
	return map[string]string{EnvPassword: testPassword}
}

// decode parses one JSON object from s.
func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, s)
	}
	return m
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s)
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tempPath returns a path for a download in a fresh directory.
func tempPath(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name)
}
