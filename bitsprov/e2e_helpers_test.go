package bitsprov_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// The account the end-to-end hosts accept; the password must never reach
// an error or the request log.
const (
	e2eUser     = "admin"
	e2ePassword = "E2e-N7lm-S3cret"
	e2eMachine  = "SIM-E2E"
	// e2eTimeScale makes the default 600 s retry delay take 0.6 s.
	e2eTimeScale = 0.001
)

// e2eEnv is a simulated host that accepts only NTLM with message
// encryption (WinRM's defaults over HTTP: Negotiate, AllowUnencrypted
// false), a client built the way the CLI builds one for --auth ntlm, and
// the directories around it.
type e2eEnv struct {
	h   *bitssim.Host
	c   *bitsprov.Client
	ctx context.Context
	// files is served at h.FilesURL, uploads receives at h.UploadURL, dst
	// is where download jobs write.
	files, uploads, dst string
}

func newE2E(t *testing.T) *e2eEnv {
	t.Helper()
	e := &e2eEnv{files: t.TempDir(), uploads: t.TempDir(), dst: t.TempDir()}
	h, err := bitssim.NewHost(bitssim.HostConfig{
		Server: wsmantest.Config{
			Auth:              wsmantest.AuthNTLM,
			RequireEncryption: true,
			Users:             map[string]string{e2eUser: e2ePassword},
			Machine:           e2eMachine,
		},
		Provider:  bitssim.Config{TimeScale: e2eTimeScale},
		FilesDir:  e.files,
		UploadDir: e.uploads,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	e.h = h
	// Encryption is left at its default (auto: sealed over http://), as a
	// user who only says --auth ntlm gets it.
	tr, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: e2eMachine + `\` + e2eUser, Password: e2ePassword})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := tr.(interface{ CloseIdleConnections() }); ok {
		t.Cleanup(c.CloseIdleConnections)
	}
	e.c = bitsprov.NewClient(wsman.NewClient(h.URL, tr))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	e.ctx = ctx
	t.Cleanup(func() { e.assertSealed(t) })
	return e
}

// assertSealed checks that every SOAP request the host served arrived
// sealed from the NTLM user, so that the test really ran over encryption
// and not over a fallback.
func (e *e2eEnv) assertSealed(t *testing.T) {
	t.Helper()
	soap := 0
	for i, l := range e.h.Server.Log() {
		if l.Action == "" {
			continue // an NTLM handshake leg
		}
		soap++
		if !l.Encrypted {
			t.Errorf("request %d (%s): arrived unsealed (status %d)", i, l.Action, l.Status)
		}
		if l.User == "" {
			t.Errorf("request %d (%s): no authenticated user", i, l.Action)
		}
	}
	if soap == 0 {
		t.Error("the host served no SOAP request")
	}
}

// randomData returns n random bytes, so that a misplaced or repeated
// chunk cannot go unnoticed.
func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// bitsTemps lists the BIT*.tmp files BITS downloads into beside the
// destination.
func bitsTemps(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "BIT*.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func assertContent(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if len(got) != len(want) || string(got) != string(want) {
		t.Fatalf("%s: %d bytes that differ from the %d sent", path, len(got), len(want))
	}
}

func assertMissing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: stat error %v, want the file absent", path, err)
	}
}

// assertFinal checks from the host that a job has reached a final state:
// it is gone from Get and from the listing, and the host still knows the
// JobId (a Resume is refused with BG_E_INVALID_STATE, where an unknown
// JobId would be a not-found fault).
func (e *e2eEnv) assertFinal(t *testing.T, id string) {
	t.Helper()
	if _, err := e.c.Job(e.ctx, id); !errors.Is(err, bitsprov.ErrNotFound) {
		t.Errorf("Get %s after the wait: %v, want ErrNotFound", id, err)
	}
	jobs, err := e.c.Jobs(e.ctx, bitsprov.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.JobID == id {
			t.Errorf("job %s is still listed, state %v", id, j.State)
		}
	}
	_, err = e.c.SetJobState(e.ctx, id, bitsprov.ActionResume)
	var re *bitsprov.ReturnError
	if !errors.As(err, &re) || re.Code != uint32(bitsprov.CodeInvalidState) || re.JobID != id || re.Method != "SetJobState" {
		t.Errorf("Resume of final job %s: %v, want a BG_E_INVALID_STATE ReturnError", id, err)
	}
}

// waitJob polls the job until cond holds; it fails after 10 s, which no
// passing run comes near.
func (e *e2eEnv) waitJob(t *testing.T, id, what string, cond func(*bitsprov.Job) bool) *bitsprov.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := e.c.Job(e.ctx, id)
		if err != nil {
			t.Fatalf("Get %s while waiting for %s: %v", id, what, err)
		}
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: timed out waiting for %s; last %+v", id, what, j)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func u64p(v uint64) *uint64 { return &v }
