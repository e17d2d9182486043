package bitssim

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
)

// queueStallServer serves one file; a request without Range gets the first
// stallAt bytes and then hangs until the client goes away, so a job is
// caught mid-transfer. It records every Range header it sees.
type queueStallServer struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string
}

func newQueueStallServer(t *testing.T, content []byte, stallAt int) *queueStallServer {
	t.Helper()
	s := &queueStallServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		if r.Header.Get("Range") != "" {
			http.ServeContent(w, r, "f.bin", time.Time{}, bytes.NewReader(content))
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(content)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(content[:stallAt])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *queueStallServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func openProvider(t *testing.T, stateDir string) *Provider {
	t.Helper()
	p, err := Open(Config{TimeScale: 0.001, StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStateDirKeepsQueueAcrossRestart: a provider closed mid-transfer
// and opened again on the same StateDir has the same jobs with the same
// properties, credentials and progress; the transferring job resumes with
// a Range request from where its file stopped, and Complete delivers the
// whole file.
func TestStateDirKeepsQueueAcrossRestart(t *testing.T) {
	stateDir, dir := t.TempDir(), t.TempDir()
	content := randomBytes(t, 200_000)
	const stallAt = 80_000
	srv := newQueueStallServer(t, content, stallAt)
	local := filepath.Join(dir, "f.bin")

	p1 := openProvider(t, stateDir)
	id := create(t, p1, "DisplayName", "kept", "RemoteUrl", srv.URL+"/f.bin", "LocalFile", local, "Description", "survives restarts")
	if got := rv(t, p1, id, "SetCredentials", "Target", "0", "Scheme", "0", "UserName", "svc", "Password", "pw"); got != 0 {
		t.Fatalf("SetCredentials: %#x", got)
	}
	other := create(t, p1, "DisplayName", "left suspended", "RemoteUrl", srv.URL+"/g.bin", "LocalFile", filepath.Join(dir, "g.bin"))
	rv(t, p1, id, "SetJobState", "JobState", "2")
	waitFor(t, "progress to the stall", func() bool { return prop(t, get(t, p1, id), "BytesTransferred") == fmt.Sprint(stallAt) })
	before, beforeOther := get(t, p1, id), get(t, p1, other)
	if err := p1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(stateDir, stateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("queue file: %v, mode %v; want 0600 (it holds job credentials)", err, fi)
	}

	p2 := openProvider(t, stateDir)
	t.Cleanup(func() { _ = p2.Close() })
	// The job is queued again and picks up where it stopped.
	waitState(t, p2, id, bitsprov.StateTransferred)
	after := get(t, p2, id)
	for _, name := range []string{"JobId", "DisplayName", "Description", "Owner", "Priority", "JobCreationTime", "FilesTotal"} {
		if a, b := prop(t, before, name), prop(t, after, name); a != b {
			t.Errorf("%s: %q before the restart, %q after", name, a, b)
		}
	}
	if diff := cmp.Diff(beforeOther, get(t, p2, other), cmp.Comparer(func(a, b wsman.Instance) bool {
		return cmp.Equal(a.Props, b.Props)
	})); diff != "" {
		t.Errorf("the suspended job changed across the restart (-before +after):\n%s", diff)
	}
	want := []string{"", fmt.Sprintf("bytes=%d-", stallAt)}
	if diff := cmp.Diff(want, srv.seen()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if got := rv(t, p2, id, "SetJobState", "JobState", "1"); got != 0 {
		t.Fatalf("Complete: %#x", got)
	}
	assertFile(t, local, content)
}

// TestStateDirCredentialsAndErrors: credentials and a job's error
// survive a restart, and a job in TransientError retries after its delay
// without being told to.
func TestStateDirCredentialsAndErrors(t *testing.T) {
	stateDir, dir := t.TempDir(), t.TempDir()
	content := randomBytes(t, 5000)
	var fail sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, bad := fail.Load(r.URL.Path); bad {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if u, pw, _ := r.BasicAuth(); u != "svc" || pw != "secret" {
			http.Error(w, "who", http.StatusUnauthorized)
			return
		}
		http.ServeContent(w, r, "x", time.Time{}, bytes.NewReader(content))
	}))
	t.Cleanup(srv.Close)

	p1 := openProvider(t, stateDir)
	id := create(t, p1, "DisplayName", "flaky", "RemoteUrl", srv.URL+"/flaky.bin", "LocalFile", filepath.Join(dir, "flaky.bin"))
	rv(t, p1, id, "SetCredentials", "Target", "0", "Scheme", "0", "UserName", "svc", "Password", "secret")
	// The 600 s retry delay (0.6 s here) keeps it in TransientError until
	// the restart.
	in := get(t, p1, id)
	findProp(in, "MinimumRetryDelay").Values[0].Text = "600"
	if _, err := p1.Put(context.Background(), req(id, ""), in); err != nil {
		t.Fatal(err)
	}
	fail.Store("/flaky.bin", true)
	rv(t, p1, id, "SetJobState", "JobState", "2")
	waitState(t, p1, id, bitsprov.StateTransientError)
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	fail.Delete("/flaky.bin")

	p2 := openProvider(t, stateDir)
	t.Cleanup(func() { _ = p2.Close() })
	if got := state(t, p2, id); got != bitsprov.StateTransientError {
		t.Fatalf("after the restart: %s, want TransientError", got)
	}
	out := invoke(t, p2, id, "GetError", "LanguageId", "1033")
	if got := prop(t, out, "ErrorCode"); got != fmt.Sprint(bgEHTTPErrorBase|503) {
		t.Errorf("GetError after the restart: ErrorCode %s", got)
	}
	// The retry timer is armed again: after the delay the job transfers,
	// with the credentials it was given before the restart.
	waitState(t, p2, id, bitsprov.StateTransferred)
}

// TestStateDirRefusesDamage: a damaged or foreign queue file is an error
// that names it, not an empty queue.
func TestStateDirRefusesDamage(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":      "{",
		"other version": `{"version": 99, "jobs": []}`,
	} {
		t.Run(name, func(t *testing.T) {
			stateDir := t.TempDir()
			writeFile(t, filepath.Join(stateDir, stateFile), []byte(body))
			p, err := Open(Config{StateDir: stateDir})
			if err == nil {
				_ = p.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), stateFile) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestHostServerAddrs: the file and upload servers listen where
// HostConfig says, so a host restarted on its StateDir serves them at the
// URLs its jobs hold.
func TestHostServerAddrs(t *testing.T) {
	// A free port on a loopback address that no other test binds (see
	// package testnet), so that it is still free when NewHost takes it;
	// on 127.0.0.1 a parallel test's listener could take it in between.
	free := func(ip string) string {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	filesAddr, uploadAddr := free("127.0.0.21"), free("127.0.0.22")
	h, err := NewHost(HostConfig{FilesDir: t.TempDir(), UploadDir: t.TempDir(), FilesAddr: filesAddr, UploadAddr: uploadAddr})
	if err != nil {
		t.Fatal(err)
	}
	if h.FilesURL != "http://"+filesAddr || h.UploadURL != "http://"+uploadAddr {
		t.Errorf("FilesURL %s, UploadURL %s; want on %s and %s", h.FilesURL, h.UploadURL, filesAddr, uploadAddr)
	}
	// A second host cannot have the same addresses: a clear error.
	_, err = NewHost(HostConfig{FilesDir: t.TempDir(), FilesAddr: filesAddr})
	if err == nil || !strings.Contains(err.Error(), "file server") {
		t.Errorf("a file server on a taken address: %v", err)
	}
	h.Close()
}
