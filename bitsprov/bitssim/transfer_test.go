package bitssim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/internal/testnet"
	"github.com/bitsremote/bitsremote/wsman"
)

func TestDownloadTransferredThenComplete(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	data := randomBytes(t, 200<<10)
	writeFile(t, filepath.Join(src, "a.bin"), data)
	fs := fileServer(t, src)
	p := newTestProvider(t, Config{})
	local := filepath.Join(dst, "a.bin")
	id := create(t, p, "DisplayName", "dl", "RemoteUrl", fs.URL+"/a.bin", "LocalFile", local)

	in := get(t, p, id)
	if s := prop(t, in, "State"); s != "3" {
		t.Fatalf("new suspended job State %s, want 3", s)
	}
	if got := prop(t, in, "BytesTotal"); got != "18446744073709551615" {
		t.Fatalf("BytesTotal before transfer %s, want BG_SIZE_UNKNOWN", got)
	}
	if got := rv(t, p, id, "SetJobState", "JobState", "2"); got != 0 {
		t.Fatalf("resume ReturnValue 0x%08X", got)
	}
	waitState(t, p, id, bitsprov.StateTransferred)
	assertAbsent(t, local) // files appear only on Complete
	in = get(t, p, id)
	for name, want := range map[string]string{
		"BytesTotal": strconv.Itoa(len(data)), "BytesTransferred": strconv.Itoa(len(data)),
		"FilesTotal": "1", "FilesTransferred": "1", "TransientErrorCount": "0",
	} {
		if got := prop(t, in, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if prop(t, in, "JobCompletionTime") == "0" {
		t.Error("JobCompletionTime not set on Transferred")
	}
	if got := rv(t, p, id, "SetJobState", "JobState", "1"); got != 0 {
		t.Fatalf("complete ReturnValue 0x%08X", got)
	}
	assertFile(t, local, data)
	if m := tmpFiles(t, dst); len(m) != 0 {
		t.Fatalf("temp files left: %v", m)
	}
	_, err := p.Get(context.Background(), req(id, ""))
	fault(t, err, "DestinationUnreachable", wsman.CodeResourceNotFound)
}

func TestCreateJobTransfersImmediatelyByDefault(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	data := randomBytes(t, 1000)
	writeFile(t, filepath.Join(src, "x"), data)
	fs := fileServer(t, src)
	p := newTestProvider(t, Config{})
	out := invoke(t, p, "", "CreateJob", "DisplayName", "now", "RemoteUrl", fs.URL+"/x", "LocalFile", filepath.Join(dst, "x"))
	id := prop(t, out, "JobId")
	waitState(t, p, id, bitsprov.StateTransferred)
}

func TestUploadArrivesWhole(t *testing.T) {
	src, srv := t.TempDir(), t.TempDir()
	data := randomBytes(t, 5000)
	local := filepath.Join(src, "up.bin")
	writeFile(t, local, data)
	us := NewUploadServer(srv)
	t.Cleanup(us.Close)
	p := newTestProvider(t, Config{FragmentSize: 1000})
	id := create(t, p, "DisplayName", "up", "Type", "1", "RemoteUrl", us.URL+"/in/up.bin", "LocalFile", local)
	if got := rv(t, p, id, "AddFile", "RemoteUrl", us.URL+"/second", "LocalFile", local); got != bgETooManyFiles {
		t.Fatalf("second file on upload job: 0x%08X, want BG_E_TOO_MANY_FILES", got)
	}
	if got := rv(t, p, id, "SetJobState", "JobState", "1"); got != bgEInvalidState {
		t.Fatalf("Complete of a suspended upload: 0x%08X, want BG_E_INVALID_STATE", got)
	}
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransferred)
	dest := filepath.Join(srv, "in", "up.bin")
	assertAbsent(t, dest)
	if got := rv(t, p, id, "SetJobState", "JobState", "1"); got != 0 {
		t.Fatalf("complete upload: 0x%08X", got)
	}
	assertFile(t, dest, data)

	var types []string
	var ranges []string
	for _, pk := range us.Packets() {
		types = append(types, pk.Type)
		if pk.Type == "Fragment" {
			ranges = append(ranges, pk.ContentRange)
		}
	}
	wantTypes := []string{"Ping", "Create-Session", "Fragment", "Fragment", "Fragment", "Fragment", "Fragment", "Close-Session"}
	if !equalStrings(types, wantTypes) {
		t.Fatalf("packets %v, want %v", types, wantTypes)
	}
	wantRanges := []string{"bytes 0-999/5000", "bytes 1000-1999/5000", "bytes 2000-2999/5000", "bytes 3000-3999/5000", "bytes 4000-4999/5000"}
	if !equalStrings(ranges, wantRanges) {
		t.Fatalf("ranges %v, want %v", ranges, wantRanges)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPermanentHTTPErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   uint32
		desc   string
	}{
		{404, 0x80190194, "HTTP status 404: The requested URL does not exist on the server."},
		{403, 0x80190193, "HTTP status 403: The client does not have sufficient access rights to the requested server object."},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
			}))
			t.Cleanup(srv.Close)
			p := newTestProvider(t, Config{})
			id := create(t, p, "DisplayName", "e", "RemoteUrl", srv.URL+"/missing", "LocalFile", filepath.Join(t.TempDir(), "m"))
			rv(t, p, id, "SetJobState", "JobState", "2")
			waitState(t, p, id, bitsprov.StateError)
			out := invoke(t, p, id, "GetError", "LanguageId", "1033")
			want := map[string]string{
				"ReturnValue":        "0",
				"ErrorCode":          strconv.FormatUint(uint64(tc.code), 10),
				"ErrorContext":       "5",
				"ContextDescription": "The error occurred while the remote file was being processed.",
				"ErrorDescription":   tc.desc,
			}
			for k, v := range want {
				if got := prop(t, out, k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := out.Props[len(out.Props)-1].Name; got != "ReturnValue" {
				t.Errorf("last output property %s, want ReturnValue", got)
			}
			if got := prop(t, get(t, p, id), "TransientErrorCount"); got != "0" {
				t.Errorf("TransientErrorCount %s after a permanent error", got)
			}
		})
	}
}

func TestLocalFileError(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "x"), []byte("hello"))
	fs := fileServer(t, src)
	p := newTestProvider(t, Config{})
	id := create(t, p, "DisplayName", "l", "RemoteUrl", fs.URL+"/x", "LocalFile", filepath.Join(t.TempDir(), "no", "such", "dir", "x"))
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateError)
	out := invoke(t, p, id, "GetError")
	if got := prop(t, out, "ErrorContext"); got != "4" {
		t.Errorf("ErrorContext %s, want 4 (local file)", got)
	}
	if got := prop(t, out, "ErrorCode"); got != strconv.FormatUint(uint64(ePathNotFound), 10) {
		t.Errorf("ErrorCode %s, want ERROR_PATH_NOT_FOUND", got)
	}
}

func TestFlappingServerRetries(t *testing.T) {
	src := t.TempDir()
	data := randomBytes(t, 10000)
	writeFile(t, filepath.Join(src, "f"), data)
	files := http.FileServer(http.Dir(src))
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p := newTestProvider(t, Config{})
	local := filepath.Join(t.TempDir(), "f")
	id := create(t, p, "DisplayName", "flap", "RemoteUrl", srv.URL+"/f", "LocalFile", local)
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransientError)
	out := invoke(t, p, id, "GetError")
	if got := prop(t, out, "ErrorCode"); got != strconv.FormatUint(0x801901F7, 10) {
		t.Fatalf("ErrorCode %s, want BG_E_HTTP_ERROR_503", got)
	}
	waitState(t, p, id, bitsprov.StateTransferred)
	if got := prop(t, get(t, p, id), "TransientErrorCount"); got != "1" {
		t.Fatalf("TransientErrorCount %s, want 1", got)
	}
	if got := rv(t, p, id, "GetError"); got != bgEErrorInfoUnavailable {
		t.Fatalf("GetError when Transferred: 0x%08X, want 0x8020000F", got)
	}
	rv(t, p, id, "SetJobState", "JobState", "1")
	assertFile(t, local, data)
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	addr := testnet.RefusedAddr(t)
	p := newTestProvider(t, Config{})
	id := create(t, p, "DisplayName", "r", "RemoteUrl", "http://"+addr+"/x", "LocalFile", filepath.Join(t.TempDir(), "x"))
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransientError)
	out := invoke(t, p, id, "GetError")
	if got, want := prop(t, out, "ErrorCode"), strconv.FormatUint(uint64(winhttpCannotConnect), 10); got != want {
		t.Errorf("ErrorCode %s, want %s", got, want)
	}
	if got := prop(t, out, "ErrorContext"); got != "6" {
		t.Errorf("ErrorContext %s, want 6", got)
	}
	// Suspend stops the retry; Cancel ends the job.
	rv(t, p, id, "SetJobState", "JobState", "3")
	if s := state(t, p, id); s != bitsprov.StateSuspended {
		t.Fatalf("state %s after suspend", s)
	}
	if got := rv(t, p, id, "SetJobState", "JobState", "0"); got != 0 {
		t.Fatalf("cancel: 0x%08X", got)
	}
}

// cutServer serves data, but the first GET sends the full Content-Length
// and only half of the body before dropping the connection.
type cutServer struct {
	data   []byte
	mu     sync.Mutex
	ranges []string
	n      int
}

func (s *cutServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	first := s.n == 1
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.mu.Unlock()
	if first {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(s.data[:len(s.data)/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	http.ServeContent(w, r, "f", time.Time{}, bytesReader(s.data))
}

func TestRangeResumeAfterMidBodyFailure(t *testing.T) {
	data := randomBytes(t, 100000)
	cs := &cutServer{data: data}
	srv := httptest.NewServer(cs)
	t.Cleanup(srv.Close)
	p := newTestProvider(t, Config{})
	dir := t.TempDir()
	local := filepath.Join(dir, "f")
	id := create(t, p, "DisplayName", "cut", "RemoteUrl", srv.URL+"/f", "LocalFile", local)
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransientError)
	if got := prop(t, invoke(t, p, id, "GetError"), "ErrorCode"); got != strconv.FormatUint(uint64(winhttpConnectionError), 10) {
		t.Fatalf("ErrorCode %s after a dropped body", got)
	}
	waitState(t, p, id, bitsprov.StateTransferred)
	cs.mu.Lock()
	ranges := append([]string(nil), cs.ranges...)
	cs.mu.Unlock()
	want := []string{"", "bytes=" + strconv.Itoa(len(data)/2) + "-"}
	if !equalStrings(ranges, want) {
		t.Fatalf("Range headers %q, want %q", ranges, want)
	}
	rv(t, p, id, "SetJobState", "JobState", "1")
	assertFile(t, local, data)
}

// stallServer sends headers and part of the body, then waits until released.
type stallServer struct {
	release chan struct{}
	size    int
}

func (s *stallServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(s.size))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(make([]byte, s.size/2))
	w.(http.Flusher).Flush()
	select {
	case <-s.release:
	case <-r.Context().Done():
	}
}

func newStallServer(t *testing.T, size int) (*stallServer, *httptest.Server) {
	ss := &stallServer{release: make(chan struct{}), size: size}
	srv := httptest.NewServer(ss)
	t.Cleanup(func() {
		close(ss.release)
		srv.Close()
	})
	return ss, srv
}

func TestCancelRemovesPartialFiles(t *testing.T) {
	_, srv := newStallServer(t, 50000)
	p := newTestProvider(t, Config{})
	dir := t.TempDir()
	local := filepath.Join(dir, "f")
	id := create(t, p, "DisplayName", "c", "RemoteUrl", srv.URL+"/f", "LocalFile", local)
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitFor(t, "partial bytes", func() bool { return prop(t, get(t, p, id), "BytesTransferred") == "25000" })
	if s := state(t, p, id); s != bitsprov.StateTransferring {
		t.Fatalf("state %s, want Transferring", s)
	}
	if m := tmpFiles(t, dir); len(m) != 1 {
		t.Fatalf("temp files %v, want one partial file", m)
	}
	if got := rv(t, p, id, "SetJobState", "JobState", "0"); got != 0 {
		t.Fatalf("cancel: 0x%08X", got)
	}
	if m := tmpFiles(t, dir); len(m) != 0 {
		t.Fatalf("temp files after cancel: %v", m)
	}
	assertAbsent(t, local)
	if got := rv(t, p, id, "SetJobState", "JobState", "2"); got != bgEInvalidState {
		t.Fatalf("resume of a cancelled job: 0x%08X, want BG_E_INVALID_STATE", got)
	}
}

func TestNoProgressTimeoutGivesError(t *testing.T) {
	_, srv := newStallServer(t, 1000)
	p := newTestProvider(t, Config{})
	id := create(t, p, "DisplayName", "stall", "RemoteUrl", srv.URL+"/f", "LocalFile", filepath.Join(t.TempDir(), "f"))
	in := get(t, p, id)
	findProp(in, "NoProgressTimeout").Values[0].Text = "60" // 60 ms at this scale
	if _, err := p.Put(context.Background(), req(id, ""), in); err != nil {
		t.Fatal(err)
	}
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateError)
	if got := prop(t, invoke(t, p, id, "GetError"), "ErrorCode"); got != strconv.FormatUint(uint64(winhttpTimeout), 10) {
		t.Fatalf("ErrorCode %s, want ERROR_WINHTTP_TIMEOUT", got)
	}
}

func TestCompletePartialDownloadKeepsFinishedFiles(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	data := randomBytes(t, 3000)
	writeFile(t, filepath.Join(src, "good"), data)
	fs := fileServer(t, src)
	p := newTestProvider(t, Config{})
	good, bad := filepath.Join(dst, "good"), filepath.Join(dst, "bad")
	id := create(t, p, "DisplayName", "part", "RemoteUrl", fs.URL+"/good", "LocalFile", good)
	if got := rv(t, p, id, "AddFile", "remoteUrl", fs.URL+"/bad", "localFile", bad); got != 0 {
		t.Fatalf("AddFile: 0x%08X", got)
	}
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateError)
	in := get(t, p, id)
	if got := prop(t, in, "FilesTransferred"); got != "1" {
		t.Fatalf("FilesTransferred %s, want 1", got)
	}
	if got := rv(t, p, id, "SetJobState", "JobState", "1"); got != bgSPartialComplete {
		t.Fatalf("complete: 0x%08X, want BG_S_PARTIAL_COMPLETE", got)
	}
	assertFile(t, good, data)
	assertAbsent(t, bad)
	if m := tmpFiles(t, dst); len(m) != 0 {
		t.Fatalf("temp files left: %v", m)
	}
}

func TestForegroundGoesFirst(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "small"), randomBytes(t, 2000))
	fs := fileServer(t, src)
	_, stall := newStallServer(t, 4000)
	p := newTestProvider(t, Config{Slots: 1})

	blocker := create(t, p, "DisplayName", "blocker", "RemoteUrl", stall.URL+"/b", "LocalFile", filepath.Join(dst, "b"))
	rv(t, p, blocker, "SetJobState", "JobState", "2")
	waitState(t, p, blocker, bitsprov.StateTransferring)

	normal := create(t, p, "DisplayName", "normal", "RemoteUrl", fs.URL+"/small", "LocalFile", filepath.Join(dst, "n"))
	fg := create(t, p, "DisplayName", "fg", "RemoteUrl", fs.URL+"/small", "LocalFile", filepath.Join(dst, "f"))
	in := get(t, p, fg)
	findProp(in, "Priority").Values[0].Text = "0"
	if _, err := p.Put(context.Background(), req(fg, ""), in); err != nil {
		t.Fatal(err)
	}
	rv(t, p, normal, "SetJobState", "JobState", "2")
	if s := state(t, p, normal); s != bitsprov.StateQueued {
		t.Fatalf("normal job %s while the only slot is busy, want Queued", s)
	}
	rv(t, p, fg, "SetJobState", "JobState", "2")
	waitState(t, p, fg, bitsprov.StateTransferred)
	// The foreground job took the slot from the blocker; the blocker, older
	// than the normal job, runs next and the normal job still waits.
	waitState(t, p, blocker, bitsprov.StateTransferring)
	if s := state(t, p, normal); s != bitsprov.StateQueued {
		t.Fatalf("normal job %s, want Queued behind the older blocker", s)
	}
	rv(t, p, blocker, "SetJobState", "JobState", "0")
	waitState(t, p, normal, bitsprov.StateTransferred)
}

func TestAddFileToTransferredJob(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	a, b := randomBytes(t, 1000), randomBytes(t, 2000)
	writeFile(t, filepath.Join(src, "a"), a)
	writeFile(t, filepath.Join(src, "b"), b)
	fs := fileServer(t, src)
	p := newTestProvider(t, Config{})
	id := create(t, p, "DisplayName", "more", "RemoteUrl", fs.URL+"/a", "LocalFile", filepath.Join(dst, "a"))
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransferred)
	if got := rv(t, p, id, "AddFile", "RemoteUrl", fs.URL+"/b", "LocalFile", filepath.Join(dst, "b")); got != 0 {
		t.Fatalf("AddFile to a transferred job: 0x%08X", got)
	}
	waitState(t, p, id, bitsprov.StateTransferred)
	if got := prop(t, get(t, p, id), "FilesTransferred"); got != "2" {
		t.Fatalf("FilesTransferred %s", got)
	}
	rv(t, p, id, "SetJobState", "JobState", "1")
	assertFile(t, filepath.Join(dst, "a"), a)
	assertFile(t, filepath.Join(dst, "b"), b)
}

func TestUploadResumesSessionAfterTransientError(t *testing.T) {
	src, srvDir := t.TempDir(), t.TempDir()
	data := randomBytes(t, 5000)
	local := filepath.Join(src, "up")
	writeFile(t, local, data)
	us := &UploadServer{dir: srvDir, sessions: map[string]*uploadSession{}}
	var failed atomic.Bool
	us.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Range") == "bytes 2000-2999/5000" && failed.CompareAndSwap(false, true) {
			w.WriteHeader(http.StatusServiceUnavailable) // the third fragment fails once
			return
		}
		us.ServeHTTP(w, r)
	}))
	t.Cleanup(us.Close)
	p := newTestProvider(t, Config{FragmentSize: 1000})
	id := create(t, p, "DisplayName", "up", "Type", "1", "RemoteUrl", us.URL+"/up", "LocalFile", local)
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransientError)
	if got := prop(t, get(t, p, id), "BytesTransferred"); got != "2000" {
		t.Fatalf("BytesTransferred %s in TransientError, want 2000", got)
	}
	waitState(t, p, id, bitsprov.StateTransferred)
	if got := rv(t, p, id, "SetJobState", "JobState", "1"); got != 0 {
		t.Fatalf("complete: 0x%08X", got)
	}
	assertFile(t, filepath.Join(srvDir, "up"), data)
	var types, ranges []string
	for _, pk := range us.Packets() {
		types = append(types, pk.Type)
		if pk.Type == "Fragment" {
			ranges = append(ranges, pk.ContentRange)
		}
	}
	// One session for the whole job; after the retry a Ping, then the
	// fragments from where the server stopped.
	wantTypes := []string{"Ping", "Create-Session", "Fragment", "Fragment", "Ping", "Fragment", "Fragment", "Fragment", "Close-Session"}
	if !equalStrings(types, wantTypes) {
		t.Fatalf("packets %v, want %v", types, wantTypes)
	}
	wantRanges := []string{"bytes 0-999/5000", "bytes 1000-1999/5000", "bytes 2000-2999/5000", "bytes 3000-3999/5000", "bytes 4000-4999/5000"}
	if !equalStrings(ranges, wantRanges) {
		t.Fatalf("ranges %v, want %v", ranges, wantRanges)
	}
}

// rangeServer serves data and records each request's Range header; the
// first request stalls after half the body until released.
type rangeServer struct {
	data    []byte
	release chan struct{}
	mu      sync.Mutex
	ranges  []string
}

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	first := len(s.ranges) == 1
	s.mu.Unlock()
	if first {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(s.data[:len(s.data)/2])
		w.(http.Flusher).Flush()
		select {
		case <-s.release:
		case <-r.Context().Done():
		}
		return
	}
	http.ServeContent(w, r, "f", time.Time{}, bytesReader(s.data))
}

func TestSuspendKeepsPartialAndResumeUsesRange(t *testing.T) {
	data := randomBytes(t, 40000)
	rs := &rangeServer{data: data, release: make(chan struct{})}
	srv := httptest.NewServer(rs)
	t.Cleanup(func() { close(rs.release); srv.Close() })
	p := newTestProvider(t, Config{})
	local := filepath.Join(t.TempDir(), "f")
	id := create(t, p, "DisplayName", "s", "RemoteUrl", srv.URL+"/f", "LocalFile", local)
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitFor(t, "half the bytes", func() bool { return prop(t, get(t, p, id), "BytesTransferred") == "20000" })
	if got := rv(t, p, id, "SetJobState", "JobState", "3"); got != 0 {
		t.Fatalf("suspend: 0x%08X", got)
	}
	if s := state(t, p, id); s != bitsprov.StateSuspended {
		t.Fatalf("state %s after suspend", s)
	}
	if got := prop(t, get(t, p, id), "BytesTransferred"); got != "20000" {
		t.Fatalf("BytesTransferred %s after suspend, want the partial 20000 kept", got)
	}
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransferred)
	rs.mu.Lock()
	ranges := append([]string(nil), rs.ranges...)
	rs.mu.Unlock()
	if want := []string{"", "bytes=20000-"}; !equalStrings(ranges, want) {
		t.Fatalf("Range headers %q, want %q", ranges, want)
	}
	rv(t, p, id, "SetJobState", "JobState", "1")
	assertFile(t, local, data)
}

func TestServerCredentials(t *testing.T) {
	src := t.TempDir()
	data := randomBytes(t, 3000)
	writeFile(t, filepath.Join(src, "f"), data)
	files := http.FileServer(http.Dir(src))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); !ok || u != "svc" || pw != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="files"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p := newTestProvider(t, Config{})
	local := filepath.Join(t.TempDir(), "f")
	id := create(t, p, "DisplayName", "auth", "RemoteUrl", srv.URL+"/f", "LocalFile", local)
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateError)
	if got := prop(t, invoke(t, p, id, "GetError"), "ErrorCode"); got != strconv.FormatUint(0x80190191, 10) {
		t.Fatalf("ErrorCode %s, want BG_E_HTTP_ERROR_401", got)
	}
	// Target 0 = server, Scheme 0 = Basic in the provider's numbering.
	if got := rv(t, p, id, "SetCredentials", "Target", "0", "Scheme", "0", "UserName", "svc", "Password", "s3cret"); got != 0 {
		t.Fatalf("SetCredentials: 0x%08X", got)
	}
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransferred)
	rv(t, p, id, "SetJobState", "JobState", "1")
	assertFile(t, local, data)
}

func TestResumeRestartsWhenRemoteFileChanged(t *testing.T) {
	old, changed := randomBytes(t, 30000), randomBytes(t, 12345)
	var mu sync.Mutex
	var n int
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if first { // half of the old file, then a dropped connection
			w.Header().Set("Content-Length", strconv.Itoa(len(old)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(old[:len(old)/2])
			w.(http.Flusher).Flush()
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "f", time.Time{}, bytesReader(changed))
	}))
	t.Cleanup(srv.Close)
	p := newTestProvider(t, Config{})
	local := filepath.Join(t.TempDir(), "f")
	id := create(t, p, "DisplayName", "changed", "RemoteUrl", srv.URL+"/f", "LocalFile", local)
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransferred)
	mu.Lock()
	got := append([]string(nil), ranges...)
	mu.Unlock()
	// The Range request finds a different size (12345, not 30000) and the
	// download starts over without one.
	if want := []string{"", "bytes=15000-", ""}; !equalStrings(got, want) {
		t.Fatalf("Range headers %q, want %q", got, want)
	}
	rv(t, p, id, "SetJobState", "JobState", "1")
	assertFile(t, local, changed)
}

func TestWindowsLocalFile(t *testing.T) {
	src, root := t.TempDir(), t.TempDir()
	data := randomBytes(t, 4000)
	writeFile(t, filepath.Join(src, "f"), data)
	fs := fileServer(t, src)
	t.Run("under LocalRoot", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(root, "C", "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		p := newTestProvider(t, Config{LocalRoot: root})
		id := create(t, p, "DisplayName", "w", "RemoteUrl", fs.URL+"/f", "LocalFile", `C:\data\f.bin`)
		rv(t, p, id, "SetJobState", "JobState", "2")
		waitState(t, p, id, bitsprov.StateTransferred)
		rv(t, p, id, "SetJobState", "JobState", "1")
		assertFile(t, filepath.Join(root, "C", "data", "f.bin"), data)
	})
	t.Run("without LocalRoot", func(t *testing.T) {
		p := newTestProvider(t, Config{})
		id := create(t, p, "DisplayName", "w", "RemoteUrl", fs.URL+"/f", "LocalFile", `C:\data\f.bin`)
		rv(t, p, id, "SetJobState", "JobState", "2")
		waitState(t, p, id, bitsprov.StateError)
		out := invoke(t, p, id, "GetError")
		if got := prop(t, out, "ErrorContext") + "/" + prop(t, out, "ErrorCode"); got != "4/"+strconv.FormatUint(uint64(ePathNotFound), 10) {
			t.Fatalf("context/code %s", got)
		}
	})
}

// proxyServer acts as a plain-HTTP forward proxy in front of target: it
// records each request's absolute URI and Proxy-Authorization.
type proxyServer struct {
	target http.Handler
	mu     sync.Mutex
	seen   []string
}

func (s *proxyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen = append(s.seen, r.RequestURI+" "+r.Header.Get("Proxy-Authorization"))
	s.mu.Unlock()
	s.target.ServeHTTP(w, r)
}

func TestProxyOverride(t *testing.T) {
	src := t.TempDir()
	data := randomBytes(t, 5000)
	writeFile(t, filepath.Join(src, "f"), data)
	origin := fileServer(t, src)
	ps := &proxyServer{target: http.FileServer(http.Dir(src))}
	proxy := httptest.NewServer(ps)
	t.Cleanup(proxy.Close)
	proxyHost := proxy.Listener.Addr().String()

	for _, tc := range []struct {
		name     string
		kv       []string
		creds    bool
		viaProxy bool
	}{
		{"override", []string{"ProxyUsage", "2", "ProxyList", proxyHost}, false, true},
		{"override with credentials", []string{"ProxyUsage", "2", "ProxyList", "http=" + proxyHost + " other:1"}, true, true},
		{"bypassed", []string{"ProxyUsage", "2", "ProxyList", proxyHost, "ProxyBypassList", "localhost 127.0.0.*"}, false, false},
		{"no proxy", []string{"ProxyUsage", "1"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps.mu.Lock()
			ps.seen = nil
			ps.mu.Unlock()
			p := newTestProvider(t, Config{})
			local := filepath.Join(t.TempDir(), "f")
			id := create(t, p, "DisplayName", "px", "RemoteUrl", origin.URL+"/f", "LocalFile", local)
			if got := rv(t, p, id, "SetProxySettings", tc.kv...); got != 0 {
				t.Fatalf("SetProxySettings: 0x%08X", got)
			}
			wantAuth := ""
			if tc.creds {
				rv(t, p, id, "SetCredentials", "Target", "1", "Scheme", "0", "UserName", "pu", "Password", "pp")
				wantAuth = "Basic cHU6cHA="
			}
			rv(t, p, id, "SetJobState", "JobState", "2")
			waitState(t, p, id, bitsprov.StateTransferred)
			rv(t, p, id, "SetJobState", "JobState", "1")
			assertFile(t, local, data)
			ps.mu.Lock()
			seen := append([]string(nil), ps.seen...)
			ps.mu.Unlock()
			var want []string
			if tc.viaProxy {
				want = []string{origin.URL + "/f " + wantAuth}
			}
			if !equalStrings(seen, want) {
				t.Fatalf("proxy saw %q, want %q", seen, want)
			}
		})
	}
}
