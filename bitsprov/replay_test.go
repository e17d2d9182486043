package bitsprov_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// The replay tests drive bitsprov.Client against recorded exchanges with
// the simulated BITS provider (fixtures/soap/bitsprov/*): any change in a
// request envelope (Action, selectors, the _INPUT body and its escaping,
// the Put body) fails with the replayer's line diff, and the parsed
// answers are checked exactly. See replay_record_test.go for re-recording.

// guidRE is the provider's JobId form.
var guidRE = regexp.MustCompile(`^\{[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}\}$`)

// unknownJob is a JobId no host has.
const unknownJob = "{0D4C1B6A-0000-4000-8000-00000000DEAD}"

func u64(v uint64) *uint64 { return &v }

func mustID(t *testing.T, id string, err error) string {
	t.Helper()
	if err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	if !guidRE.MatchString(id) {
		t.Fatalf("JobId %q is not a braced upper-case GUID", id)
	}
	return id
}

// replayMarker is the n-th CreateJob marker of the running scenario,
// "bitsremote:replay-<scenario>-<n>". CreateJob would otherwise draw a
// random one, and the recorded CreateJob (its Description) could never
// match again.
func replayMarker(t *testing.T, n int) string {
	t.Helper()
	return fmt.Sprintf("%sreplay-%s-%d", bitsprov.MarkerPrefix, path.Base(t.Name()), n)
}

// createSuspended makes a download job with one file that stays suspended,
// marked with marker.
func createSuspended(t *testing.T, c *bitsprov.Client, marker, name, remote, local string) string {
	t.Helper()
	id, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{
		DisplayName: name, RemoteURL: remote, LocalFile: local, Suspended: true, Marker: marker,
	})
	return mustID(t, id, err)
}

// suspendedJob is what the simulator reports for a job created by
// createSuspended with marker and not changed since: the Description is
// the marker alone.
func suspendedJob(id, marker, name string, files ...bitsprov.File) *bitsprov.Job {
	return &bitsprov.Job{
		JobID: id, DisplayName: name, Description: "[" + marker + "]", Priority: bitsprov.PriorityNormal, State: bitsprov.StateSuspended,
		Owner: `NT AUTHORITY\NETWORK SERVICE`, Files: files, FilesTotal: uint32(len(files)),
		Created: simNow, Modified: simNow,
		MinimumRetryDelay: 600 * time.Second, NoProgressTimeout: 1209600 * time.Second,
	}
}

func pending(remote, local string) bitsprov.File {
	return bitsprov.File{RemoteURL: remote, LocalFile: local}
}

func job(t *testing.T, c *bitsprov.Client, id string) *bitsprov.Job {
	t.Helper()
	j, err := c.Job(context.Background(), id)
	if err != nil {
		t.Fatalf("Job %s: %v", id, err)
	}
	return j
}

// waitState polls until the job reaches want (or a state it cannot leave
// on its own). Recorded, the number of polls is whatever the recording
// saw; replayed, the answers end the loop at the same point.
func waitState(t *testing.T, c *bitsprov.Client, id string, want bitsprov.State) *bitsprov.Job {
	t.Helper()
	for range 2000 {
		j := job(t, c, id)
		switch j.State {
		case want:
			return j
		case bitsprov.StateError, bitsprov.StateTransferred, bitsprov.StateSuspended:
			t.Fatalf("job %s is %v, waiting for %v", id, j.State, want)
		}
		pause()
	}
	t.Fatalf("job %s never reached %v", id, want)
	return nil
}

// returnError asserts err is the method's failing ReturnValue.
func returnError(t *testing.T, err error, want *bitsprov.ReturnError, sentinel error) {
	t.Helper()
	var re *bitsprov.ReturnError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *bitsprov.ReturnError", err, err)
	}
	if diff := cmp.Diff(want, re); diff != "" {
		t.Errorf("ReturnError (-want +got):\n%s", diff)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, %v) = false", err, sentinel)
	}
}

// notFound asserts err says the job is not there, with the provider's
// fault underneath.
func notFound(t *testing.T, err error, op, id string) {
	t.Helper()
	if !errors.Is(err, bitsprov.ErrNotFound) {
		t.Fatalf("errors.Is(%v, ErrNotFound) = false", err)
	}
	var nf *bitsprov.NotFoundError
	if !errors.As(err, &nf) || nf.Host != replayHost || nf.Op != op || nf.Key != id {
		t.Errorf("NotFoundError = %+v", nf)
	}
	var f *wsman.Fault
	if !errors.As(err, &f) {
		t.Fatalf("no *wsman.Fault in %v", err)
	}
	if f.Subcode != "DestinationUnreachable" || f.WSManCode != wsman.CodeResourceNotFound || f.HTTPStatus != 500 || f.Machine != replayHost {
		t.Errorf("fault = %+v", f)
	}
}

type bitsScenario struct {
	name string
	opts hostOptions
	run  func(t *testing.T, c *bitsprov.Client)
	// flow is the expected exchanges (see flowSpy). Scenarios that poll
	// make as many exchanges as the recording needed; they give only the
	// exchanges after the polling, flowTail.
	flow, flowTail []string
}

var (
	localA = `C:\Users\Public\Downloads\a.bin`
	localB = `C:\Users\Public\Downloads\b & <c>.bin`
)

var bitsScenarios = []bitsScenario{
	{
		name: "create-safe",
		flow: []string{"CreateJob", "AddFile", "Get", "Put", "SetCredentials", "SetCredentials", "SetProxySettings", "Get"},
		run: func(t *testing.T, c *bitsprov.Client) {
			// The safe pattern with every option: CreateJob suspended, then
			// AddFile, one Get/Put for the properties, credentials, proxy.
			pri := bitsprov.PriorityHigh
			acct := bitsprov.AccountLocalSystem
			const name = `Nightly & <sync> "q" 'a'`
			id, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{
				DisplayName: name, RemoteURL: filesURL + "/a.bin?x=1&y=<2>", LocalFile: localA,
				ServiceAccount: &acct, Description: `first "job"`, Marker: replayMarker(t, 1), Suspended: true, Priority: &pri,
				MinimumRetryDelay: 120 * time.Second, NoProgressTimeout: time.Hour,
				ExtraFiles: []bitsprov.FileSpec{{RemoteURL: filesURL + "/b.bin", LocalFile: localB}},
				Credentials: []bitsprov.Credential{
					{Target: bitsprov.TargetServer, Scheme: bitsprov.SchemeBasic, UserName: `CORP\fetch`, Password: jobPassword},
					{Target: bitsprov.TargetProxy, Scheme: bitsprov.SchemeNTLM, UserName: "proxyuser", Password: proxyPassword},
				},
				Proxy: &bitsprov.ProxySettings{Usage: bitsprov.ProxyOverride, List: []string{"proxy1:8080", "proxy2:3128"}, Bypass: []string{"<local>", "*.corp"}},
			})
			id = mustID(t, id, err)
			want := suspendedJob(id, replayMarker(t, 1), name,
				pending(filesURL+"/a.bin?x=1&y=<2>", localA), pending(filesURL+"/b.bin", localB))
			want.Description = `first "job" [bitsremote:replay-create-safe-1]`
			want.Priority = bitsprov.PriorityHigh
			want.Owner = `NT AUTHORITY\SYSTEM`
			want.MinimumRetryDelay = 120 * time.Second
			want.NoProgressTimeout = time.Hour
			got := job(t, c, id)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("job (-want +got):\n%s", diff)
			}
			if text, marker := bitsprov.SplitMarker(got.Description); text != `first "job"` || marker != replayMarker(t, 1) {
				t.Errorf("SplitMarker(%q) = %q, %q", got.Description, text, marker)
			}
		},
	},
	{
		name: "properties",
		flow: []string{"CreateJob", "Get", "Put", "Get", "Put", "Get", "Put", "Get", "Put", "Get", "Put", "Get", "Put fault", "Get"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			id := createSuspended(t, c, replayMarker(t, 1), "props", filesURL+"/a.bin", localA)
			steps := []struct {
				what string
				err  error
			}{
				{"SetPriority", c.SetPriority(ctx, id, bitsprov.PriorityLow)},
				{"SetDisplayName", c.SetDisplayName(ctx, id, `renamed & <x> "y" 'z'`)},
				{"SetDescription", c.SetDescription(ctx, id, "line one\nline two")},
				// BITS raises a retry delay below 5 s to 5 s.
				{"SetMinimumRetryDelay", c.SetMinimumRetryDelay(ctx, id, 3*time.Second)},
				{"SetNoProgressTimeout", c.SetNoProgressTimeout(ctx, id, 0)},
			}
			for _, s := range steps {
				if s.err != nil {
					t.Errorf("%s: %v", s.what, s.err)
				}
			}
			// A display name over 256 characters: the provider refuses the
			// Put with BG_E_STRING_TOO_LONG.
			err := c.SetDisplayName(ctx, id, strings.Repeat("n", 257))
			var f *wsman.Fault
			if !errors.As(err, &f) || f.Subcode != "InternalError" || f.WSManCode != 0x80200021 {
				t.Errorf("long display name: %v", err)
			}
			// SetDescription replaces the marker too: it only guards the
			// creation.
			want := suspendedJob(id, replayMarker(t, 1), `renamed & <x> "y" 'z'`, pending(filesURL+"/a.bin", localA))
			want.Priority = bitsprov.PriorityLow
			want.Description = "line one\nline two"
			want.MinimumRetryDelay = 5 * time.Second
			want.NoProgressTimeout = 0
			if diff := cmp.Diff(want, job(t, c, id)); diff != "" {
				t.Errorf("job (-want +got):\n%s", diff)
			}
		},
	},
	{
		name: "methods",
		flow: []string{"CreateJob", "AddFile", "SetCredentials", "SetCredentials", "RemoveCredentials",
			"SetProxySettings", "SetProxySettings", "SetClientCertificateById", "SetClientCertificateByName",
			"RemoveClientCertificate", "GetError", "Get", "SetJobState", "SetJobState"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			id := createSuspended(t, c, replayMarker(t, 1), "methods", filesURL+"/a.bin", localA)
			hash := make([]byte, 20)
			for i := range hash {
				hash[i] = byte(i * 13)
			}
			steps := []struct {
				what string
				err  error
			}{
				{"AddFile", c.AddFile(ctx, id, filesURL+"/b.bin?a=1&b=2", localB)},
				{"SetCredentials server", c.SetCredentials(ctx, id, bitsprov.TargetServer, bitsprov.SchemeBasic, `CORP\fetch`, jobPassword)},
				{"SetCredentials proxy", c.SetCredentials(ctx, id, bitsprov.TargetProxy, bitsprov.SchemeNegotiate, "proxyuser", proxyPassword)},
				{"RemoveCredentials", c.RemoveCredentials(ctx, id, bitsprov.TargetProxy, bitsprov.SchemeNegotiate)},
				{"SetProxySettings override", c.SetProxySettings(ctx, id, bitsprov.ProxyOverride, []string{"proxy:8080"}, []string{"<local>"})},
				{"SetProxySettings autodetect", c.SetProxySettings(ctx, id, bitsprov.ProxyAutoDetect, nil, nil)},
				{"SetClientCertificateByID", c.SetClientCertificateByID(ctx, id, bitsprov.StoreLocalMachine, "MY", hash)},
				{"SetClientCertificateByName", c.SetClientCertificateByName(ctx, id, bitsprov.StoreCurrentUser, "MY", `CN=client & "co"`)},
				{"RemoveClientCertificate", c.RemoveClientCertificate(ctx, id)},
			}
			for _, s := range steps {
				if s.err != nil {
					t.Errorf("%s: %v", s.what, s.err)
				}
			}
			// GetError on a job that is not in error.
			_, err := c.GetError(ctx, id, bitsprov.DefaultLanguageID)
			returnError(t, err, &bitsprov.ReturnError{Host: replayHost, Method: "GetError", JobID: id, Code: uint32(bitsprov.CodeErrorInformationUnavail)},
				bitsprov.ErrErrorInfoUnavailable)
			want := suspendedJob(id, replayMarker(t, 1), "methods", pending(filesURL+"/a.bin", localA), pending(filesURL+"/b.bin?a=1&b=2", localB))
			if diff := cmp.Diff(want, job(t, c, id)); diff != "" {
				t.Errorf("job (-want +got):\n%s", diff)
			}
			// Suspend of a suspended job changes nothing; Complete of a
			// job with nothing transferred keeps no file.
			if err := c.Suspend(ctx, id); err != nil {
				t.Errorf("Suspend: %v", err)
			}
			code, err := c.Complete(ctx, id)
			if err != nil || code != bitsprov.CodePartialComplete {
				t.Errorf("Complete = %v, %v; want BG_S_PARTIAL_COMPLETE", code, err)
			}
		},
	},
	{
		name: "upload",
		flow: []string{"CreateJob", "Get", "AddFile", "SetJobState", "SetJobState"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			id, err := c.CreateJob(ctx, bitsprov.CreateJobOptions{
				DisplayName: "report upload", Type: bitsprov.TypeUpload, Suspended: true, Marker: replayMarker(t, 1),
				RemoteURL: filesURL + "/upload/report.csv", LocalFile: `C:\Reports\report.csv`,
			})
			id = mustID(t, id, err)
			want := suspendedJob(id, replayMarker(t, 1), "report upload", pending(filesURL+"/upload/report.csv", `C:\Reports\report.csv`))
			if diff := cmp.Diff(want, job(t, c, id)); diff != "" {
				t.Errorf("job (-want +got):\n%s", diff)
			}
			// An upload job holds exactly one file.
			err = c.AddFile(ctx, id, filesURL+"/upload/second.csv", `C:\Reports\second.csv`)
			returnError(t, err, &bitsprov.ReturnError{Host: replayHost, Method: "AddFile", JobID: id, Code: uint32(bitsprov.CodeTooManyFiles)}, bitsprov.CodeTooManyFiles)
			// Complete needs a transferred upload.
			_, err = c.Complete(ctx, id)
			returnError(t, err, &bitsprov.ReturnError{Host: replayHost, Method: "SetJobState", JobID: id, Code: uint32(bitsprov.CodeInvalidState)}, bitsprov.ErrInvalidState)
			if code, err := c.Cancel(ctx, id); err != nil || code != bitsprov.CodeOK {
				t.Errorf("Cancel = %v, %v", code, err)
			}
		},
	},
	{
		name:     "transfer",
		flowTail: []string{"Get", "SetJobState", "Get fault"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			local := `C:\Users\Public\Downloads\payload.bin`
			id, err := c.CreateJob(ctx, bitsprov.CreateJobOptions{DisplayName: "transfer", RemoteURL: filesURL + "/payload.bin", LocalFile: local, Marker: replayMarker(t, 1)})
			id = mustID(t, id, err)
			j := waitState(t, c, id, bitsprov.StateTransferred)
			n := uint64(len(payload))
			want := &bitsprov.Job{
				JobID: id, DisplayName: "transfer", Description: "[bitsremote:replay-transfer-1]", Priority: bitsprov.PriorityNormal, State: bitsprov.StateTransferred,
				Owner:      `NT AUTHORITY\NETWORK SERVICE`,
				Files:      []bitsprov.File{{RemoteURL: filesURL + "/payload.bin", LocalFile: local, BytesTotal: u64(n), BytesTransferred: n, Completed: true}},
				BytesTotal: u64(n), BytesTransferred: n, FilesTotal: 1, FilesTransferred: 1,
				Created: simNow, Modified: simNow, Completed: simNow,
				MinimumRetryDelay: 600 * time.Second, NoProgressTimeout: 1209600 * time.Second,
			}
			if diff := cmp.Diff(want, j); diff != "" {
				t.Errorf("transferred job (-want +got):\n%s", diff)
			}
			code, err := c.Complete(ctx, id)
			if err != nil || code != bitsprov.CodeOK {
				t.Fatalf("Complete = %v, %v", code, err)
			}
			if recording() {
				if b, err := os.ReadFile(filepath.Join(downloadsDir, "payload.bin")); err != nil || !bytes.Equal(b, payload) {
					t.Errorf("downloaded file: %d bytes, %v", len(b), err)
				}
			}
			_, err = c.Job(ctx, id)
			notFound(t, err, "Get", id)
		},
	},
	{
		name:     "error-404",
		flowTail: []string{"Get", "GetError", "SetJobState"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			id := createSuspended(t, c, replayMarker(t, 1), "missing", filesURL+"/missing.bin", localA)
			if err := c.Resume(ctx, id); err != nil {
				t.Fatal(err)
			}
			j := waitState(t, c, id, bitsprov.StateError)
			if j.BytesTotal != nil || j.BytesTransferred != 0 || j.TransientErrorCount != 0 {
				t.Errorf("job in error: %+v", j)
			}
			je, err := c.GetError(ctx, id, bitsprov.DefaultLanguageID)
			if err != nil {
				t.Fatal(err)
			}
			want := &bitsprov.JobError{
				Context: bitsprov.ContextRemoteFile, Code: uint32(bitsprov.HTTPCode(404)),
				ContextDescription: "The error occurred while the remote file was being processed.",
				Description:        "HTTP status 404: The requested URL does not exist on the server.",
			}
			if diff := cmp.Diff(want, je); diff != "" {
				t.Errorf("GetError (-want +got):\n%s", diff)
			}
			if !errors.Is(je, bitsprov.HTTPCode(404)) {
				t.Errorf("errors.Is(%v, HTTPCode(404)) = false", je)
			}
			code, err := c.Cancel(ctx, id)
			if err != nil || code != bitsprov.CodeOK {
				t.Errorf("Cancel = %v, %v", code, err)
			}
		},
	},
	{
		name: "return-values",
		flow: []string{"CreateJob", "SetJobState", "SetJobState", "CreateJob", "SetJobState", "SetJobState", "GetError", "Get fault"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			// An empty job (CreateJob without files, as the COM API allows)
			// cannot be resumed: BG_E_EMPTY.
			in := wsman.NewInstance(bitsprov.ResourceURI)
			in.Set("DisplayName", "empty")
			in.Set("Suspend", "true")
			out, err := c.WSMan.Invoke(ctx, bitsprov.ResourceURI, "CreateJob", wsman.Options{}, in)
			if err != nil {
				t.Fatal(err)
			}
			if rv, _ := out.String("ReturnValue"); rv != "0" {
				t.Fatalf("CreateJob of an empty job: ReturnValue %s", rv)
			}
			empty, _ := out.String("JobId")
			empty = mustID(t, empty, nil)
			err = c.Resume(ctx, empty)
			returnError(t, err, &bitsprov.ReturnError{Host: replayHost, Method: "SetJobState", JobID: empty, Code: uint32(bitsprov.CodeEmpty)}, bitsprov.ErrEmpty)
			if want := "SIMHOST: SetJobState on " + empty + ": BG_E_EMPTY (0x80200003): job has no files"; err.Error() != want {
				t.Errorf("error text:\n got %s\nwant %s", err, want)
			}
			if _, err := c.Cancel(ctx, empty); err != nil {
				t.Errorf("Cancel: %v", err)
			}
			// A cancelled job refuses every change: BG_E_INVALID_STATE.
			id := createSuspended(t, c, replayMarker(t, 1), "to cancel", filesURL+"/a.bin", localA)
			if code, err := c.Cancel(ctx, id); err != nil || code != bitsprov.CodeOK {
				t.Fatalf("Cancel = %v, %v", code, err)
			}
			err = c.Resume(ctx, id)
			returnError(t, err, &bitsprov.ReturnError{Host: replayHost, Method: "SetJobState", JobID: id, Code: uint32(bitsprov.CodeInvalidState)}, bitsprov.ErrInvalidState)
			_, err = c.GetError(ctx, id, 0)
			returnError(t, err, &bitsprov.ReturnError{Host: replayHost, Method: "GetError", JobID: id, Code: uint32(bitsprov.CodeErrorInformationUnavail)}, bitsprov.ErrErrorInfoUnavailable)
			_, err = c.Job(ctx, id)
			notFound(t, err, "Get", id)
		},
	},
	{
		name: "unknown-job",
		flow: []string{"Get fault", "SetJobState fault", "GetError fault", "Get fault"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			_, err := c.Job(ctx, unknownJob)
			notFound(t, err, "Get", unknownJob)
			var f *wsman.Fault
			errors.As(err, &f)
			wantWMI := &wsman.Instance{
				ClassName: "__ExtendedStatus", ResourceURI: wsman.ResourceWMI + "/root/microsoft/bits/__ExtendedStatus", TypeName: "__ExtendedStatus_Type",
				Props: []wsman.Property{
					{Name: "Description", Values: []wsman.Value{{Kind: wsman.KindNil}}},
					{Name: "Operation", Values: []wsman.Value{{Text: "GetObject"}}},
					{Name: "ParameterInfo", Values: []wsman.Value{{Text: `BitsClientJob.JobId="` + unknownJob + `"`}}},
					{Name: "ProviderName", Values: []wsman.Value{{Text: "BitsClientProv"}}},
					{Name: "StatusCode", Values: []wsman.Value{{Text: "2147749890"}}},
				},
			}
			if diff := cmp.Diff(wantWMI, f.WMIError); diff != "" {
				t.Errorf("WMI error (-want +got):\n%s", diff)
			}
			_, err = c.Cancel(ctx, unknownJob)
			notFound(t, err, "SetJobState", unknownJob)
			_, err = c.GetError(ctx, unknownJob, bitsprov.DefaultLanguageID)
			notFound(t, err, "GetError", unknownJob)
			// A JobId that is not even a GUID is just as unknown.
			_, err = c.Job(ctx, `x"&<y>`)
			notFound(t, err, "Get", `x"&<y>`)
		},
	},
	{
		name: "jobs",
		// Jobs asks for MaxElements 32000; like Server 2012 the simulator
		// puts one job in the optimized EnumerateResponse and the rest (up
		// to 50) in each Pull, so three jobs take two round trips.
		flowTail: []string{"Get", "Enumerate:1", "Pull:2", "Enumerate:1", "Pull:2"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			a := createSuspended(t, c, replayMarker(t, 1), "one", filesURL+"/a.bin", localA)
			b := createSuspended(t, c, replayMarker(t, 2), "two & <2>", filesURL+"/b.bin", localB)
			x := createSuspended(t, c, replayMarker(t, 3), "three", filesURL+"/missing.bin", localA)
			if err := c.Resume(ctx, x); err != nil {
				t.Fatal(err)
			}
			waitState(t, c, x, bitsprov.StateError)
			all, err := c.Jobs(ctx, bitsprov.JobFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, j := range all {
				_, marker := bitsprov.SplitMarker(j.Description)
				ids = append(ids, j.JobID+" "+j.State.String()+" "+marker)
			}
			want := []string{a + " Suspended " + replayMarker(t, 1), b + " Suspended " + replayMarker(t, 2), x + " Error " + replayMarker(t, 3)}
			if diff := cmp.Diff(want, ids); diff != "" {
				t.Errorf("Jobs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(suspendedJob(b, replayMarker(t, 2), "two & <2>", pending(filesURL+"/b.bin", localB)), all[1]); diff != "" {
				t.Errorf("second job (-want +got):\n%s", diff)
			}
			errored, err := c.Jobs(ctx, bitsprov.JobFilter{States: []bitsprov.State{bitsprov.StateError, bitsprov.StateTransientError}})
			if err != nil {
				t.Fatal(err)
			}
			if len(errored) != 1 || errored[0].JobID != x {
				t.Errorf("jobs in error: %+v", errored)
			}
		},
	},
	{
		// The at-most-once path: the reply to the second CreateJob is lost
		// after the host created the job (loseReply, recorded as the
		// exchange's error). CreateJob does not send it again; it lists the
		// queue (the fixture pins that Enumerate: optimized, MaxElements
		// 32000), finds its marker on the second job, adopts it and goes
		// on with the setup (the priority) on it.
		name: "at-most-once",
		opts: hostOptions{wrap: loseReply("CreateJob", 2)},
		flow: []string{"CreateJob", "CreateJob error", "Enumerate:1", "Pull:1", "Get", "Put", "Get", "Enumerate:1", "Pull:1"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			first := createSuspended(t, c, replayMarker(t, 1), "first", filesURL+"/a.bin", localA)
			pri := bitsprov.PriorityForeground
			id, err := c.CreateJob(ctx, bitsprov.CreateJobOptions{
				DisplayName: "lost reply", RemoteURL: filesURL + "/b.bin", LocalFile: localB,
				Suspended: true, Priority: &pri, Marker: replayMarker(t, 2),
			})
			id = mustID(t, id, err)
			if id == first {
				t.Fatalf("CreateJob adopted the first job %s", first)
			}
			want := suspendedJob(id, replayMarker(t, 2), "lost reply", pending(filesURL+"/b.bin", localB))
			want.Priority = bitsprov.PriorityForeground
			if diff := cmp.Diff(want, job(t, c, id)); diff != "" {
				t.Errorf("adopted job (-want +got):\n%s", diff)
			}
			// Exactly one job per marker: nothing was created twice.
			all, err := c.Jobs(ctx, bitsprov.JobFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range all {
				_, marker := bitsprov.SplitMarker(j.Description)
				got = append(got, j.JobID+" "+marker)
			}
			if diff := cmp.Diff([]string{first + " " + replayMarker(t, 1), id + " " + replayMarker(t, 2)}, got); diff != "" {
				t.Errorf("Jobs (-want +got):\n%s", diff)
			}
		},
	},
	{
		// Answered by the urlGroups stand-in (urlgroup_record_test.go):
		// the fixture pins the requests; the answers are not Windows'.
		name: "url-groups",
		opts: hostOptions{setup: serveURLGroups},
		flow: []string{"CreateUrlGroup", "CreateUrl", "CheckUrl", "CheckUrl", "SetProperty", "GetProperty",
			"SetSslCertificate", "GetSslCertificate", "RemoveSslCertificate", "SetUrlGroupAuthentication",
			"GetUrlGroupAuthentication", "Enumerate", "DeleteUrl", "DeleteUrlGroup", "CheckUrl fault"},
		run: func(t *testing.T, c *bitsprov.Client) {
			ctx := context.Background()
			const group = "https://server1:443/drop&go"
			hash := []byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255}
			for _, step := range []struct {
				what string
				err  error
			}{
				{"CreateURLGroup", c.CreateURLGroup(ctx, group)},
				{"CreateURL", c.CreateURL(ctx, group, "/files/a & b.txt", `C:\share\a & b.txt`, "D:(A;;GA;;;BA)")},
			} {
				if step.err != nil {
					t.Fatalf("%s: %v", step.what, step.err)
				}
			}
			if ok, err := c.CheckURL(ctx, group, "/files/a & b.txt"); err != nil || !ok {
				t.Errorf("CheckURL of a published URL = %v, %v", ok, err)
			}
			if ok, err := c.CheckURL(ctx, group, "/files/none.txt"); err != nil || ok {
				t.Errorf("CheckURL of an unknown URL = %v, %v", ok, err)
			}
			if err := c.SetURLGroupProperty(ctx, group, bitsprov.BandwidthLimit, 65536); err != nil {
				t.Error(err)
			}
			if v, err := c.GetURLGroupProperty(ctx, group, bitsprov.BandwidthLimit); err != nil || v != 65536 {
				t.Errorf("BandwidthLimit = %d, %v", v, err)
			}
			if err := c.SetSslCertificate(ctx, group, 443, "MY", hash); err != nil {
				t.Error(err)
			}
			store, got, err := c.GetSslCertificate(ctx, group, 443)
			if err != nil || store != "MY" || !cmp.Equal(got, hash) {
				t.Errorf("GetSslCertificate = %q, %x, %v", store, got, err)
			}
			if err := c.RemoveSslCertificate(ctx, group, 443); err != nil {
				t.Error(err)
			}
			if err := c.SetURLGroupAuthentication(ctx, group, bitsprov.URLGroupAuthNTLM, true); err != nil {
				t.Error(err)
			}
			auth, err := c.GetURLGroupAuthentication(ctx, group, bitsprov.URLGroupAuthNTLM)
			if diff := cmp.Diff(&bitsprov.URLGroupAuth{Enable: true}, auth); err != nil || diff != "" {
				t.Errorf("GetURLGroupAuthentication: %v (-want +got):\n%s", err, diff)
			}
			groups, err := c.URLGroups(ctx)
			if diff := cmp.Diff([]string{group}, groups); err != nil || diff != "" {
				t.Errorf("URLGroups: %v (-want +got):\n%s", err, diff)
			}
			if err := c.DeleteURL(ctx, group, "/files/a & b.txt"); err != nil {
				t.Error(err)
			}
			if err := c.DeleteURLGroup(ctx, group); err != nil {
				t.Error(err)
			}
			_, err = c.CheckURL(ctx, group, "/files/a & b.txt")
			notFound(t, err, "CheckUrl", group)
		},
	},
}

// TestReplay replays every BITS fixture (or records it, see
// replay_record_test.go).
func TestReplay(t *testing.T) {
	for _, sc := range bitsScenarios {
		t.Run(sc.name, func(t *testing.T) {
			c, spy, check := replayClient(t, "bitsprov/"+sc.name, sc.opts)
			sc.run(t, c)
			check()
			got := spy.Flow()
			want := sc.flow
			if sc.flowTail != nil {
				want = sc.flowTail
				got = got[max(len(got)-len(want), 0):]
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("exchanges (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReplayDetectsChangedRequest proves the fixtures pin the _INPUT
// bodies: a changed method argument fails with a diff naming both lines.
func TestReplayDetectsChangedRequest(t *testing.T) {
	if recording() {
		t.Skip("recording")
	}
	tests := []struct {
		name    string
		fixture string
		call    func(c *bitsprov.Client) error
		want    []string
	}{
		{
			name: "job id case", fixture: "bitsprov/unknown-job",
			call: func(c *bitsprov.Client) error {
				_, err := c.Job(context.Background(), strings.ToLower(unknownJob))
				return err
			},
			want: []string{
				`-\s*\d+ +<w:Selector Name="JobId">` + regexp.QuoteMeta(unknownJob) + `</w:Selector>`,
				`\+\s*\d+ +<w:Selector Name="JobId">` + regexp.QuoteMeta(strings.ToLower(unknownJob)) + `</w:Selector>`,
			},
		},
		{
			name: "cancel instead of get", fixture: "bitsprov/unknown-job",
			call: func(c *bitsprov.Client) error {
				_, err := c.Cancel(context.Background(), unknownJob)
				return err
			},
			want: []string{
				`-\s*\d+ +<a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action>`,
				`\+\s*\d+ +<a:Action s:mustUnderstand="true">` + regexp.QuoteMeta(bitsprov.ResourceURI) + `/SetJobState</a:Action>`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := replayClient(t, tt.fixture, hostOptions{})
			err := tt.call(c)
			if err == nil {
				t.Fatal("changed request was answered from the recording")
			}
			for _, re := range tt.want {
				if !regexp.MustCompile(`(?m)^` + re + `$`).MatchString(err.Error()) {
					t.Errorf("error does not match line %q:\n%v", re, err)
				}
			}
		})
	}
}

// TestFixturesHoldNoPassword scans every fixture for the passwords used
// while recording (WS-Man login and SetCredentials), raw, XML-escaped or
// in a Basic Authorization header, and checks SetCredentials was recorded
// with its password redacted.
func TestFixturesHoldNoPassword(t *testing.T) {
	var forbidden []string
	for _, s := range secrets {
		forbidden = append(forbidden, s, html.EscapeString(s),
			strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s),
			strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s))
	}
	forbidden = append(forbidden, base64.StdEncoding.EncodeToString([]byte(recordUser+":"+recordPassword)))
	files := 0
	redacted := 0
	err := filepath.WalkDir(fixtureDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, s := range forbidden {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds the secret %q", path, s)
			}
		}
		if strings.Contains(string(b), "<p:Password>REDACTED</p:Password>") {
			redacted++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("only %d fixture files under %s", files, fixtureDir)
	}
	// create-safe and methods each send two SetCredentials.
	if redacted < 4 {
		t.Errorf("%d request files with a redacted SetCredentials password, want at least 4", redacted)
	}
}

// TestListingsAskForBatches checks that every listing (Jobs, URLGroups and
// the marker search after an ambiguous CreateJob) asks for up to 32,000
// items per reply, Windows' default MaxBatchItems, on the Enumerate and
// on each Pull: without MaxElements a reply carries one item, one round
// trip per job.
func TestListingsAskForBatches(t *testing.T) {
	const (
		wantEnumerate = `<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements></n:Enumerate>`
		wantPull      = `<n:Pull><n:EnumerationContext>uuid:C0C0C0C0-0000-4000-8000-000000000001</n:EnumerationContext><n:MaxElements>32000</n:MaxElements></n:Pull>`
	)
	bodyRE := regexp.MustCompile(`(?s)<s:Body>(.*)</s:Body>`)
	idRE := regexp.MustCompile(`<a:MessageID>([^<]*)</a:MessageID>`)
	tests := []struct {
		name, resourceURI string
		list              func(ctx context.Context, c *bitsprov.Client) error
	}{
		{"Jobs", bitsprov.ResourceURI, func(ctx context.Context, c *bitsprov.Client) error {
			_, err := c.Jobs(ctx, bitsprov.JobFilter{States: []bitsprov.State{bitsprov.StateError}})
			return err
		}},
		{"URLGroups", bitsprov.URLGroupResourceURI, func(ctx context.Context, c *bitsprov.Client) error {
			_, err := c.URLGroups(ctx)
			return err
		}},
		{"FindJobsByMarker", bitsprov.ResourceURI, func(ctx context.Context, c *bitsprov.Client) error {
			_, err := c.FindJobsByMarker(ctx, "bitsremote:batch")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bodies []string
			tr := transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
				m, id := bodyRE.FindSubmatch(req.Body), idRE.FindSubmatch(req.Body)
				if m == nil || id == nil {
					return nil, errors.New("request without s:Body or a:MessageID")
				}
				bodies = append(bodies, string(m[1]))
				if !bytes.Contains(req.Body, []byte("<w:ResourceURI s:mustUnderstand=\"true\">"+tt.resourceURI+"</w:ResourceURI>")) {
					return nil, errors.New("request for another resource URI")
				}
				// An optimized EnumerateResponse with no items yet and a
				// context, then a PullResponse that ends the sequence.
				action, body := "EnumerateResponse", `<n:EnumerateResponse><n:EnumerationContext>uuid:C0C0C0C0-0000-4000-8000-000000000001</n:EnumerationContext><w:Items/></n:EnumerateResponse>`
				if len(bodies) > 1 {
					action, body = "PullResponse", `<n:PullResponse><n:Items/><n:EndOfSequence/></n:PullResponse>`
				}
				env := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">` +
					`<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/` + action + `</a:Action><a:RelatesTo>` + string(id[1]) + `</a:RelatesTo></s:Header>` +
					`<s:Body>` + body + `</s:Body></s:Envelope>`
				return &transport.Response{StatusCode: 200, ContentType: "application/soap+xml;charset=UTF-8", Body: []byte(env)}, nil
			})
			w := wsman.NewClient("http://srv1:5985/wsman", tr)
			w.Retry = wsman.NoRetry
			if err := tt.list(context.Background(), bitsprov.NewClient(w)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{wantEnumerate, wantPull}, bodies); diff != "" {
				t.Errorf("request bodies (-want +got):\n%s", diff)
			}
		})
	}
}
