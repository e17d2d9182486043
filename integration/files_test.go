package integration

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileServer serves in-memory files over HTTP on loopback, with Range
// support, as the remote side of download jobs. A file can be made to
// stall after some bytes until the test releases it, which holds a job in
// Transferring for as long as a test needs.
type fileServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	// stalls[name] is how many bytes are sent before the reply blocks on
	// release[name].
	stalls  map[string]int
	release map[string]chan struct{}
	// status[name] makes replies for /name fail with that HTTP status.
	status map[string]int
	// basic[name] is the "user:password" a reply for /name requires.
	basic map[string]string
	// requests logs each GET: path and Range header.
	requests []fileRequest
}

// fileRequest is one request the file server saw.
type fileRequest struct {
	Path  string
	Range string
}

// newFileServer starts a file server that stops with the test; any
// stalled reply is released first, so Close never waits on it.
func newFileServer(t *testing.T) *fileServer {
	fs := &fileServer{files: map[string][]byte{}, basic: map[string]string{}, status: map[string]int{}, stalls: map[string]int{}, release: map[string]chan struct{}{}}
	fs.Server = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(func() {
		fs.mu.Lock()
		for name, ch := range fs.release {
			close(ch)
			delete(fs.release, name)
		}
		fs.mu.Unlock()
		fs.Close()
	})
	return fs
}

// add serves content at /name and returns its URL.
func (fs *fileServer) add(name string, content []byte) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files["/"+name] = content
	return fs.URL + "/" + name
}

// addRandom serves n random bytes at /name and returns the URL and bytes.
func (fs *fileServer) addRandom(name string, n int) (string, []byte) {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(len(name))})
	_, _ = r.Read(b)
	return fs.add(name, b), b
}

// requireBasic makes /name answer 401 unless the request carries Basic
// credentials user and password.
func (fs *fileServer) requireBasic(name, user, password string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.basic["/"+name] = user + ":" + password
}

// fail makes replies for /name fail with an HTTP status (0: stop failing).
func (fs *fileServer) fail(name string, status int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if status == 0 {
		delete(fs.status, "/"+name)
		return
	}
	fs.status["/"+name] = status
}

// stall makes replies for /name block at offset n of the file until
// unstall.
func (fs *fileServer) stall(name string, n int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.stalls["/"+name] = n
	fs.release["/"+name] = make(chan struct{})
}

// unstall lets stalled and future replies for /name finish.
func (fs *fileServer) unstall(name string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if ch, ok := fs.release["/"+name]; ok {
		close(ch)
		delete(fs.release, "/"+name)
	}
	delete(fs.stalls, "/"+name)
}

// log returns the requests seen so far for /name.
func (fs *fileServer) log(name string) []fileRequest {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []fileRequest
	for _, r := range fs.requests {
		if r.Path == "/"+name {
			out = append(out, r)
		}
	}
	return out
}

func (fs *fileServer) serve(w http.ResponseWriter, r *http.Request) {
	fs.mu.Lock()
	fs.requests = append(fs.requests, fileRequest{Path: r.URL.Path, Range: r.Header.Get("Range")})
	content, ok := fs.files[r.URL.Path]
	stallAt, stalled := fs.stalls[r.URL.Path]
	release := fs.release[r.URL.Path]
	cred, needAuth := fs.basic[r.URL.Path]
	status := fs.status[r.URL.Path]
	fs.mu.Unlock()
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	if needAuth {
		u, p, _ := r.BasicAuth()
		if u+":"+p != cred {
			w.Header().Set("WWW-Authenticate", `Basic realm="files"`)
			http.Error(w, "401 unauthorized", http.StatusUnauthorized)
			return
		}
	}
	var out http.ResponseWriter = w
	if stalled {
		// The stall is at an offset of the file, wherever the request
		// starts: a resumed download stops at the same place.
		var from int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &from); err != nil {
			from = 0
		}
		out = &stallWriter{ResponseWriter: w, left: max(stallAt-from, 0), release: release, done: r.Context().Done()}
	}
	http.ServeContent(out, r, r.URL.Path, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), bytes.NewReader(content))
}

// stallWriter passes the first left bytes, flushes them, then blocks
// until release is closed or the client goes away.
type stallWriter struct {
	http.ResponseWriter
	left    int
	release chan struct{}
	done    <-chan struct{}
}

func (s *stallWriter) Write(p []byte) (int, error) {
	if s.left <= 0 {
		return s.block(p)
	}
	n := min(len(p), s.left)
	m, err := s.ResponseWriter.Write(p[:n])
	s.left -= m
	if err != nil || m == len(p) {
		return m, err
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	k, err := s.block(p[m:])
	return m + k, err
}

func (s *stallWriter) block(p []byte) (int, error) {
	select {
	case <-s.release:
		return s.ResponseWriter.Write(p)
	case <-s.done:
		return 0, http.ErrAbortHandler
	}
}

// basicToken is the Authorization: Basic token of user and password, a
// form of the password that must not be printed either.
func basicToken(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// readFile returns a file's content, failing the test when it is missing.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the job's file: %v", err)
	}
	return b
}

// sameBytes fails the test unless got equals want, byte for byte.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s: %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
	}
}

// hasLine reports whether text has a line containing every one of parts.
func hasLine(text string, parts ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
