package bitsprov_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The end-to-end tests drive the real client over NTLM with message
// encryption (the Windows default over HTTP) against the simulated host,
// and check what a fleet admin would check on the Windows side: files on
// disk, what the upload server received, and the job's state afterwards.
// TestAgainstSimulator covers the same calls over Basic.

// ignoreTimes leaves out the job's clock readings, which the tests check
// for being set or not rather than for their value.
var ignoreTimes = cmpopts.IgnoreFields(bitsprov.Job{}, "Created", "Modified", "Completed")

// ignoreDesc leaves out the Description, which CreateJob may mark (see
// emptyDesc).
var ignoreDesc = cmpopts.IgnoreFields(bitsprov.Job{}, "Description")

// emptyDesc is the Description of a job created without one: empty, or
// only the at-most-once marker CreateJob appends.
var emptyDesc = regexp.MustCompile(`^(\[bitsremote:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\])?$`)

// pollFast is a poll interval short against the scaled simulator delays.
const pollFast = 5 * time.Millisecond

const (
	ctxRemoteFileText = "The error occurred while the remote file was being processed."
	http404Text       = "HTTP status 404: The requested URL does not exist on the server."
)

// TestE2EDownload: create (suspended) → priority → resume → wait →
// complete. The file appears, byte-identical, only on Complete.
func TestE2EDownload(t *testing.T) {
	e := newE2E(t)
	data := randomData(t, 300<<10+123)
	if err := os.WriteFile(filepath.Join(e.files, "payload.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	remote, local := e.h.FilesURL+"/payload.bin", filepath.Join(e.dst, "payload.bin")
	id, err := e.c.CreateJob(e.ctx, bitsprov.CreateJobOptions{DisplayName: "e2e download", RemoteURL: remote, LocalFile: local, Suspended: true})
	if err != nil {
		t.Fatal(err)
	}
	j, err := e.c.Job(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := &bitsprov.Job{
		JobID: id, DisplayName: "e2e download", Priority: bitsprov.PriorityNormal, State: bitsprov.StateSuspended,
		Owner: `NT AUTHORITY\NETWORK SERVICE`, Files: []bitsprov.File{{RemoteURL: remote, LocalFile: local}},
		FilesTotal: 1, MinimumRetryDelay: 600 * time.Second, NoProgressTimeout: 1209600 * time.Second,
	}
	if d := cmp.Diff(want, j, ignoreTimes, ignoreDesc); d != "" {
		t.Fatalf("job after CreateJob (-want +got):\n%s", d)
	}
	if !emptyDesc.MatchString(j.Description) {
		t.Errorf("Description %q, want empty or only the CreateJob marker", j.Description)
	}
	if j.Created.IsZero() || !j.Completed.IsZero() {
		t.Errorf("created %v, completed %v: want a creation time and no completion time", j.Created, j.Completed)
	}

	if err := e.c.SetPriority(e.ctx, id, bitsprov.PriorityForeground); err != nil {
		t.Fatal(err)
	}
	if j, err = e.c.Job(e.ctx, id); err != nil || j.Priority != bitsprov.PriorityForeground || j.State != bitsprov.StateSuspended {
		t.Fatalf("after SetPriority: %+v, %v; want Foreground and still Suspended", j, err)
	}
	assertMissing(t, local)
	if err := e.c.Resume(e.ctx, id); err != nil {
		t.Fatal(err)
	}

	out, err := e.c.Wait(e.ctx, id, bitsprov.Policy{Interval: pollFast, OnTransferred: bitsprov.TransferredLeave})
	if err != nil {
		t.Fatal(err)
	}
	size := uint64(len(data))
	want.Priority, want.State = bitsprov.PriorityForeground, bitsprov.StateTransferred
	want.BytesTotal, want.BytesTransferred, want.FilesTransferred = u64p(size), size, 1
	want.Files = []bitsprov.File{{RemoteURL: remote, LocalFile: local, BytesTotal: u64p(size), BytesTransferred: size, Completed: true}}
	if d := cmp.Diff(want, out.Job, ignoreTimes, ignoreDesc); d != "" {
		t.Fatalf("job when the wait ended (-want +got):\n%s", d)
	}
	if out.Action != bitsprov.ResultLeft || out.Final != bitsprov.StateTransferred || out.Error != nil || out.Code != 0 {
		t.Fatalf("outcome %+v, want Left in Transferred without error", out)
	}
	if out.Job.Completed.IsZero() {
		t.Error("transferred job has no completion time")
	}
	// Transferred is not done: BITS keeps the data in its temp file.
	assertMissing(t, local)
	if tmp := bitsTemps(t, e.dst); len(tmp) != 1 {
		t.Fatalf("temp files before Complete: %v, want one BIT*.tmp", tmp)
	}

	code, err := e.c.Complete(e.ctx, id)
	if err != nil || code != bitsprov.CodeOK {
		t.Fatalf("Complete = %v, %v", code, err)
	}
	assertContent(t, local, data)
	if got := dirNames(t, e.dst); !cmp.Equal(got, []string{"payload.bin"}) {
		t.Errorf("target directory after Complete holds %v, want only payload.bin", got)
	}
	e.assertFinal(t, id)
}

// TestE2EUpload: the file reaches the upload server whole, and is
// committed there only when the job is completed.
func TestE2EUpload(t *testing.T) {
	e := newE2E(t)
	// Not a multiple of the 64 KiB fragment, so the last fragment is short.
	data := randomData(t, 3*64<<10+777)
	src := filepath.Join(t.TempDir(), "report.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := e.c.CreateJob(e.ctx, bitsprov.CreateJobOptions{
		DisplayName: "e2e upload", Type: bitsprov.TypeUpload,
		RemoteURL: e.h.UploadURL + "/incoming/report.bin", LocalFile: src,
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.c.Wait(e.ctx, id, bitsprov.Policy{Interval: pollFast, OnTransferred: bitsprov.TransferredLeave})
	if err != nil || out.Action != bitsprov.ResultLeft || out.Final != bitsprov.StateTransferred {
		t.Fatalf("Wait = %+v, %v; want Left in Transferred", out, err)
	}
	if j := out.Job; j.Type != nil || j.BytesTotal == nil || *j.BytesTotal != uint64(len(data)) ||
		j.BytesTransferred != uint64(len(data)) || j.FilesTransferred != 1 {
		t.Errorf("transferred upload job: %+v", j)
	}
	dest := filepath.Join(e.uploads, "incoming", "report.bin")
	assertMissing(t, dest)

	code, err := e.c.Complete(e.ctx, id)
	if err != nil || code != bitsprov.CodeOK {
		t.Fatalf("Complete = %v, %v", code, err)
	}
	assertContent(t, dest, data)
	if got := dirNames(t, e.uploads); !cmp.Equal(got, []string{"incoming"}) {
		t.Errorf("upload directory holds %v, want only incoming/ (no session temp file left)", got)
	}
	var types []string
	var sent int64
	for _, p := range e.h.Uploads.Packets() {
		types = append(types, p.Type)
		if p.Type == "Fragment" {
			sent += p.Length
		}
		if p.Path != "/incoming/report.bin" {
			t.Errorf("%s packet to %s", p.Type, p.Path)
		}
	}
	wantTypes := []string{"Ping", "Create-Session", "Fragment", "Fragment", "Fragment", "Fragment", "Close-Session"}
	if d := cmp.Diff(wantTypes, types); d != "" {
		t.Errorf("upload packets (-want +got):\n%s", d)
	}
	if sent != int64(len(data)) {
		t.Errorf("fragments carried %d bytes, want %d", sent, len(data))
	}
	e.assertFinal(t, id)
}

// TestE2EHTTP404: a missing remote file puts the job in Error with
// BG_E_HTTP_ERROR_404 in the remote-file context, as GetError reports it.
func TestE2EHTTP404(t *testing.T) {
	e := newE2E(t)
	local := filepath.Join(e.dst, "missing.bin")
	id, err := e.c.CreateJob(e.ctx, bitsprov.CreateJobOptions{DisplayName: "e2e 404", RemoteURL: e.h.FilesURL + "/missing.bin", LocalFile: local})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.c.Wait(e.ctx, id, bitsprov.Policy{Interval: pollFast, OnError: bitsprov.ErrorLeave})
	if err != nil {
		t.Fatal(err)
	}
	wantErr := &bitsprov.JobError{
		Context:            bitsprov.ContextRemoteFile,
		Code:               0x80190194,
		ContextDescription: ctxRemoteFileText,
		Description:        http404Text,
	}
	if d := cmp.Diff(wantErr, out.Error); d != "" {
		t.Errorf("outcome error (-want +got):\n%s", d)
	}
	wantReason := "job failed: BG_E_HTTP_ERROR_404 (0x80190194) in RemoteFile: " + http404Text + "; left on the host for inspection"
	if out.Action != bitsprov.ResultLeft || out.Final != bitsprov.StateError || out.Reason != wantReason {
		t.Errorf("outcome %v in %v, reason %q; want Left in Error, reason %q", out.Action, out.Final, out.Reason, wantReason)
	}

	// The job stays in Error and GetError keeps answering the same.
	je, err := e.c.GetError(e.ctx, id, bitsprov.DefaultLanguageID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantErr, je); d != "" {
		t.Errorf("GetError (-want +got):\n%s", d)
	}
	if !errors.Is(je, bitsprov.HTTPCode(404)) || uint32(bitsprov.HTTPCode(404)) != 0x80190194 {
		t.Errorf("GetError %v does not match HTTPCode(404)", je)
	}
	if j, err := e.c.Job(e.ctx, id); err != nil || j.State != bitsprov.StateError || j.BytesTransferred != 0 || j.TransientErrorCount != 0 {
		t.Errorf("job after the 404: %+v, %v; want Error, nothing transferred, no transient error", j, err)
	}
	if got := dirNames(t, e.dst); len(got) != 0 {
		t.Errorf("target directory holds %v after a 404, want nothing", got)
	}
	if _, err := e.c.Cancel(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertFinal(t, id)
}

// flakyServer answers 503 until release is called, then serves data.
type flakyServer struct {
	data     []byte
	requests atomic.Int32
	failed   atomic.Int32
	once     sync.Once
	ok       chan struct{}
}

func (f *flakyServer) release() { f.once.Do(func() { close(f.ok) }) }

func (f *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	select {
	case <-f.ok:
		w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
		_, _ = w.Write(f.data)
	default:
		f.failed.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}
}

// TestE2EFlappingServer: a server that answers 503 and later 200 leaves
// the job in TransientError, BITS retries after MinimumRetryDelay, and the
// poller riding out transient errors ends with the job Transferred and the
// count of transient errors in the outcome.
func TestE2EFlappingServer(t *testing.T) {
	e := newE2E(t)
	data := randomData(t, 100<<10)
	fs := &flakyServer{data: data, ok: make(chan struct{})}
	srv := newHTTPServer(t, fs)
	local := filepath.Join(e.dst, "flaky.bin")
	id, err := e.c.CreateJob(e.ctx, bitsprov.CreateJobOptions{
		DisplayName: "e2e flapping", RemoteURL: srv + "/flaky.bin", LocalFile: local,
		// The minimum BITS accepts: 5 ms at the test time scale.
		MinimumRetryDelay: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var seen []bitsprov.State
	var transientErr *bitsprov.JobError
	policy := bitsprov.Policy{
		Interval: pollFast, OnTransient: bitsprov.TransientWait, OnTransferred: bitsprov.TransferredLeave,
		Progress: func(j *bitsprov.Job) {
			seen = append(seen, j.State)
			if j.State == bitsprov.StateTransientError {
				// The server recovers only once the poller has seen the
				// transient error, so the test does not depend on timing.
				if transientErr == nil {
					if je, err := e.c.GetError(e.ctx, j.JobID, bitsprov.DefaultLanguageID); err == nil {
						transientErr = je
					}
				}
				fs.release()
			}
		},
	}
	out, err := e.c.Wait(e.ctx, id, policy)
	if err != nil {
		t.Fatal(err)
	}
	if out.Action != bitsprov.ResultLeft || out.Final != bitsprov.StateTransferred {
		t.Fatalf("outcome %+v; want Left in Transferred", out)
	}
	// The poller clears Error when it sees the job working again, but keeps
	// it when its polls go straight from TransientError to Transferred;
	// either way it can only be the 503.
	if out.Error != nil && (out.Error.Code != uint32(bitsprov.HTTPCode(503)) || out.Error.Context != bitsprov.ContextRemoteFile) {
		t.Errorf("outcome error %v, want none or BG_E_HTTP_ERROR_503 in RemoteFile", out.Error)
	}
	if out.Job.TransientErrorCount < 1 || uint32(fs.failed.Load()) < out.Job.TransientErrorCount {
		t.Errorf("TransientErrorCount %d after %d answers of 503; want between 1 and that", out.Job.TransientErrorCount, fs.failed.Load())
	}
	if fs.requests.Load() != fs.failed.Load()+1 {
		t.Errorf("the server got %d requests, %d of them failed; want exactly one successful GET", fs.requests.Load(), fs.failed.Load())
	}
	first := -1
	for i, s := range seen {
		if s == bitsprov.StateTransientError && first < 0 {
			first = i
		}
	}
	if first < 0 || seen[len(seen)-1] != bitsprov.StateTransferred {
		t.Errorf("states seen %v: want TransientError before Transferred", seen)
	}
	// GetError may find the job already retrying; when it caught the
	// error, it is the 503.
	if transientErr != nil && (transientErr.Code != uint32(bitsprov.HTTPCode(503)) || transientErr.Context != bitsprov.ContextRemoteFile) {
		t.Errorf("GetError during TransientError: %v, want BG_E_HTTP_ERROR_503 in RemoteFile", transientErr)
	}
	assertMissing(t, local)
	if code, err := e.c.Complete(e.ctx, id); err != nil || code != bitsprov.CodeOK {
		t.Fatalf("Complete = %v, %v", code, err)
	}
	assertContent(t, local, data)
	e.assertFinal(t, id)
}

// slowServer sends the first part of a file and then stalls until the
// client goes away.
type slowServer struct {
	data    []byte
	first   int
	aborted chan struct{}
	once    sync.Once
	stop    chan struct{}
}

func (s *slowServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
	_, _ = w.Write(s.data[:s.first])
	w.(http.Flusher).Flush()
	select {
	case <-r.Context().Done():
		s.once.Do(func() { close(s.aborted) })
	case <-s.stop:
	}
}

// TestE2ECancelMidTransfer: cancelling a job while it transfers stops the
// transfer and deletes the partial file.
func TestE2ECancelMidTransfer(t *testing.T) {
	e := newE2E(t)
	const first = 64 << 10
	ss := &slowServer{data: randomData(t, 1<<20), first: first, aborted: make(chan struct{}), stop: make(chan struct{})}
	srv := newHTTPServer(t, ss)
	t.Cleanup(func() { close(ss.stop) }) // runs before the server closes
	local := filepath.Join(e.dst, "big.bin")
	id, err := e.c.CreateJob(e.ctx, bitsprov.CreateJobOptions{DisplayName: "e2e cancel", RemoteURL: srv + "/big.bin", LocalFile: local})
	if err != nil {
		t.Fatal(err)
	}
	j := e.waitJob(t, id, "the first 64 KiB", func(j *bitsprov.Job) bool { return j.BytesTransferred == first })
	if j.State != bitsprov.StateTransferring || j.BytesTotal == nil || *j.BytesTotal != 1<<20 {
		t.Fatalf("job mid-transfer: %+v; want Transferring with the size known", j)
	}
	tmp := bitsTemps(t, e.dst)
	if len(tmp) != 1 {
		t.Fatalf("temp files mid-transfer: %v, want one BIT*.tmp", tmp)
	}
	if st, err := os.Stat(tmp[0]); err != nil || st.Size() != first {
		t.Fatalf("partial file %s: %v, %v; want %d bytes", tmp[0], st, err, first)
	}

	code, err := e.c.Cancel(e.ctx, id)
	if err != nil || code != bitsprov.CodeOK {
		t.Fatalf("Cancel = %v, %v", code, err)
	}
	if got := dirNames(t, e.dst); len(got) != 0 {
		t.Errorf("target directory after Cancel holds %v, want nothing", got)
	}
	select {
	case <-ss.aborted:
	case <-time.After(10 * time.Second):
		t.Error("the remote server never saw the transfer stop")
	}
	e.assertFinal(t, id)
}

// TestE2EDefaultPolicy: the zero Policy does what Microsoft's PowerShell
// loop does once the state is 4, 5 or 6: cancel on Error and on
// TransientError, complete on Transferred. Each case is then checked on
// the host: the job left the queue, and its files were kept (completed)
// or deleted (cancelled).
func TestE2EDefaultPolicy(t *testing.T) {
	cases := []struct {
		name string
		// status is what the remote server answers (0: the file).
		status int
		// retryDelay keeps a transient error in place across polls.
		retryDelay time.Duration
		action     bitsprov.Result
		final      bitsprov.State
		code       bitsprov.Code
		reason     string
	}{
		{
			name: "Error/cancelled", status: http.StatusNotFound,
			action: bitsprov.ResultCancelled, final: bitsprov.StateCancelled, code: bitsprov.HTTPCode(404),
			reason: "job failed: BG_E_HTTP_ERROR_404 (0x80190194) in RemoteFile: " + http404Text + "; cancelled",
		},
		{
			name: "TransientError/cancelled", status: http.StatusServiceUnavailable, retryDelay: time.Hour,
			action: bitsprov.ResultCancelled, final: bitsprov.StateCancelled, code: bitsprov.HTTPCode(503),
			reason: "job hit a transient error: BG_E_HTTP_ERROR_503 (0x801901F7) in RemoteFile: HTTP status 503: The service is temporarily overloaded.; cancelled",
		},
		{
			name: "Transferred/completed", action: bitsprov.ResultCompleted, final: bitsprov.StateAcknowledged,
			reason: "job transferred and completed",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newE2E(t)
			data := randomData(t, 50<<10)
			srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.status != 0 {
					http.Error(w, http.StatusText(tc.status), tc.status)
					return
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(data)))
				_, _ = w.Write(data)
			}))
			local := filepath.Join(e.dst, "f.bin")
			id, err := e.c.CreateJob(e.ctx, bitsprov.CreateJobOptions{DisplayName: tc.name, RemoteURL: srv + "/f.bin", LocalFile: local, MinimumRetryDelay: tc.retryDelay})
			if err != nil {
				t.Fatal(err)
			}
			// The zero Policy: one poll a second, no deadline (the
			// context bounds the test).
			out, err := e.c.Wait(e.ctx, id, bitsprov.Policy{})
			if err != nil {
				t.Fatal(err)
			}
			if out.Action != tc.action || out.Final != tc.final || out.Code != bitsprov.CodeOK || out.Reason != tc.reason {
				t.Errorf("outcome %v, final %v, code %v, reason %q; want %v, %v, 0, %q", out.Action, out.Final, out.Code, out.Reason, tc.action, tc.final, tc.reason)
			}
			var gotCode bitsprov.Code
			if out.Error != nil {
				gotCode = bitsprov.Code(out.Error.Code)
			}
			if gotCode != tc.code {
				t.Errorf("outcome error %v, want code %v", out.Error, tc.code)
			}
			e.assertFinal(t, id)
			if tc.final == bitsprov.StateAcknowledged {
				assertContent(t, local, data)
				if got := dirNames(t, e.dst); !cmp.Equal(got, []string{"f.bin"}) {
					t.Errorf("target directory holds %v, want only f.bin", got)
				}
			} else if got := dirNames(t, e.dst); len(got) != 0 {
				t.Errorf("target directory holds %v after the cancel, want nothing", got)
			}
		})
	}
}

// newHTTPServer serves h on loopback as a remote server for jobs and
// returns its base URL.
func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}
