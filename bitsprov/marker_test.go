package bitsprov_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

func TestDescriptionWithMarker(t *testing.T) {
	tests := []struct {
		desc, marker, want, err string
	}{
		{"", "bitsremote:1", "[bitsremote:1]", ""},
		{"nightly sync", "bitsremote:1", "nightly sync [bitsremote:1]", ""},
		{"a [b]", "m", "a [b] [m]", ""},
		{"x", "", "", `bitsprov: CreateJob: marker "" must be non-empty, without brackets or white space`},
		{"x", "a b", "", `bitsprov: CreateJob: marker "a b" must be non-empty, without brackets or white space`},
		{"x", "a]", "", `bitsprov: CreateJob: marker "a]" must be non-empty, without brackets or white space`},
		{strings.Repeat("é", 1021), "m", "", "bitsprov: CreateJob: description with its marker is 1025 characters, more than the 1024 BITS accepts"},
		{strings.Repeat("😀", 511), "m", "", "bitsprov: CreateJob: description with its marker is 1026 characters, more than the 1024 BITS accepts"},
	}
	for _, tt := range tests {
		t.Run(tt.want+tt.err, func(t *testing.T) {
			got, err := bitsprov.DescriptionWithMarker(tt.desc, tt.marker)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
			text, m := bitsprov.SplitMarker(got)
			if text != tt.desc || m != tt.marker {
				t.Fatalf("SplitMarker(%q) = %q, %q", got, text, m)
			}
		})
	}
	if got, err := bitsprov.DescriptionWithMarker(strings.Repeat("é", 1020), "m"); err != nil || len([]rune(got)) != 1024 {
		t.Errorf("1024 characters refused: %v", err)
	}
	for _, d := range []string{"", "plain", "no [marker", "[]", "x [a b]"} {
		if text, m := bitsprov.SplitMarker(d); text != d || m != "" {
			t.Errorf("SplitMarker(%q) = %q, %q", d, text, m)
		}
	}
	if m := bitsprov.NewMarker(); !strings.HasPrefix(m, bitsprov.MarkerPrefix) || len(m) != len(bitsprov.MarkerPrefix)+36 || m == bitsprov.NewMarker() {
		t.Errorf("NewMarker() = %q", m)
	}
}

// markerHost is a simulated host with a quickly retrying client.
func markerHost(t *testing.T) (*bitssim.Host, *bitsprov.Client, string) {
	t.Helper()
	files := t.TempDir()
	h, err := bitssim.NewHost(bitssim.HostConfig{
		Server:   wsmantest.Config{Users: map[string]string{"admin": "pw"}, Machine: "SIM01"},
		Provider: bitssim.Config{TimeScale: 0.001},
		FilesDir: files,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	tr, err := transport.NewBasic(transport.Config{User: "admin", Password: "pw", Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	w := wsman.NewClient(h.URL, tr)
	w.Retry = wsman.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 10 * time.Millisecond}
	return h, bitsprov.NewClient(w), t.TempDir()
}

// hostOf is the host:port the client names in errors.
func hostOf(h *bitssim.Host) string {
	u, _ := url.Parse(h.URL)
	return u.Host
}

// methods lists the server's log as short names: "CreateJob", "Enumerate".
func methods(h *bitssim.Host) []string {
	var out []string
	for _, e := range h.Server.Log() {
		if e.Action != "" {
			out = append(out, e.Action[strings.LastIndex(e.Action, "/")+1:])
		}
	}
	return out
}

// TestCreateJobAtMostOnce: whatever happens to the CreateJob call, the
// host ends with exactly one job carrying the marker, and the id returned
// is that job.
func TestCreateJobAtMostOnce(t *testing.T) {
	createAction := bitsprov.ResourceURI + "/CreateJob"
	tests := []struct {
		name string
		inj  wsmantest.Injection
		// want is the exchange up to the Resume.
		want []string
	}{
		{"reply truncated: created, found by marker", wsmantest.Injection{Kind: wsmantest.InjectTruncate},
			[]string{"CreateJob", "Enumerate", "Pull", "SetJobState"}},
		{"reply garbled: created, found by marker", wsmantest.Injection{Kind: wsmantest.InjectGarble},
			[]string{"CreateJob", "Enumerate", "Pull", "SetJobState"}},
		{"dropped before the provider: absent, created again", wsmantest.Injection{Kind: wsmantest.InjectDrop},
			[]string{"CreateJob", "Enumerate", "CreateJob", "SetJobState"}},
		{"503: never reached WinRM, sent again without a search", wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503},
			[]string{"CreateJob", "CreateJob", "SetJobState"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, c, dst := markerHost(t)
			// Another job first, so the search has something to skip.
			other, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{DisplayName: "other", RemoteURL: h.FilesURL + "/x", LocalFile: filepath.Join(dst, "x"), Suspended: true})
			if err != nil {
				t.Fatal(err)
			}
			h.Server.ResetLog()
			tt.inj.Action = createAction
			h.Server.Inject(tt.inj, 1)
			id, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{
				DisplayName: "job", RemoteURL: h.FilesURL + "/a", LocalFile: filepath.Join(dst, "a"),
				Description: "mine", Marker: "bitsremote:m1",
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, methods(h)); diff != "" {
				t.Errorf("exchange (-want +got):\n%s", diff)
			}
			jobs, err := c.FindJobsByMarker(context.Background(), "bitsremote:m1")
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) != 1 || jobs[0].JobID != id || jobs[0].JobID == other || jobs[0].Description != "mine [bitsremote:m1]" {
				t.Fatalf("jobs with the marker: %+v; CreateJob returned %s", jobs, id)
			}
			if jobs[0].State == bitsprov.StateSuspended {
				t.Errorf("adopted job was not resumed: %v", jobs[0].State)
			}
		})
	}
}

func TestCreateJobUnknownOutcome(t *testing.T) {
	h, c, dst := markerHost(t)
	h.Server.Inject(wsmantest.Injection{Kind: wsmantest.InjectTruncate, Action: bitsprov.ResourceURI + "/CreateJob"}, 1)
	denied := wsmantest.FaultWMI("AccessDenied", 0x80070005, "Access is denied. ")
	h.Server.Inject(wsmantest.Injection{Kind: wsmantest.InjectFault, Action: wsman.ActionEnumerate, Fault: denied}, 1)
	_, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{
		DisplayName: "job", RemoteURL: h.FilesURL + "/a", LocalFile: filepath.Join(dst, "a"), Marker: "bitsremote:m2",
	})
	var ce *bitsprov.CreateUnknownError
	if !errors.As(err, &ce) || ce.Marker != "bitsremote:m2" || !wsman.IsAmbiguous(err) || ce.CheckErr == nil {
		t.Fatalf("err = %v, want *CreateUnknownError for the marker", err)
	}
	if !strings.HasPrefix(err.Error(), hostOf(h)+": CreateJob: the job may or may not exist; look for marker bitsremote:m2 (searching for it failed: ") {
		t.Errorf("Error() = %q", err)
	}
	// The job was created: a later search settles it.
	j, err := c.FindJobByMarker(context.Background(), "bitsremote:m2")
	if err != nil || j == nil || j.State != bitsprov.StateSuspended {
		t.Fatalf("FindJobByMarker = %+v, %v", j, err)
	}
}

// TestSetupStepsRepeatSafely: a lost reply to AddFile is checked before
// adding again; Put and Resume are simply repeated.
func TestSetupStepsRepeatSafely(t *testing.T) {
	h, c, dst := markerHost(t)
	h.Server.Inject(wsmantest.Injection{Kind: wsmantest.InjectTruncate, Action: bitsprov.ResourceURI + "/AddFile"}, 1)
	h.Server.Inject(wsmantest.Injection{Kind: wsmantest.InjectGarble, Action: wsman.ActionPut}, 1)
	h.Server.Inject(wsmantest.Injection{Kind: wsmantest.InjectDrop, Action: bitsprov.ResourceURI + "/SetJobState"}, 1)
	pri := bitsprov.PriorityLow
	id, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{
		DisplayName: "job", RemoteURL: h.FilesURL + "/a", LocalFile: filepath.Join(dst, "a"),
		ExtraFiles: []bitsprov.FileSpec{{RemoteURL: h.FilesURL + "/b", LocalFile: filepath.Join(dst, "b")}},
		Priority:   &pri,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateJob", "AddFile", "Get", "Get", "Put", "Get", "Put", "SetJobState", "SetJobState"}
	if diff := cmp.Diff(want, methods(h)); diff != "" {
		t.Errorf("exchange (-want +got):\n%s", diff)
	}
	j, err := c.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Files) != 2 || j.Priority != bitsprov.PriorityLow || j.State == bitsprov.StateSuspended {
		t.Fatalf("job: %d files, priority %v, state %v", len(j.Files), j.Priority, j.State)
	}
}

func TestFindJobByMarkerDuplicates(t *testing.T) {
	h, c, dst := markerHost(t)
	var ids []string
	for range 2 {
		id, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{DisplayName: "dup", RemoteURL: h.FilesURL + "/a", LocalFile: filepath.Join(dst, "a"), Marker: "bitsremote:dup", Suspended: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	j, err := c.FindJobByMarker(context.Background(), "bitsremote:dup")
	if !errors.Is(err, bitsprov.ErrDuplicateMarker) || j == nil || j.JobID != ids[0] ||
		err.Error() != hostOf(h)+": more than one job carries the marker bitsremote:dup: "+ids[0]+", "+ids[1] {
		t.Fatalf("FindJobByMarker = %+v, %v", j, err)
	}
	if j, err := c.FindJobByMarker(context.Background(), "bitsremote:none"); j != nil || err != nil {
		t.Fatalf("absent marker: %+v, %v", j, err)
	}
}

// TestJobsStartsOverAfterALostPull: the listing is repeated whole when a
// Pull's reply is lost, and returns every job once.
func TestJobsStartsOverAfterALostPull(t *testing.T) {
	h, c, dst := markerHost(t)
	for i := range 3 {
		if _, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{DisplayName: "j", RemoteURL: h.FilesURL + "/a", LocalFile: filepath.Join(dst, "a"+string(rune('0'+i))), Suspended: true}); err != nil {
			t.Fatal(err)
		}
	}
	h.Server.ResetLog()
	h.Server.Inject(wsmantest.Injection{Kind: wsmantest.InjectTruncate, Action: wsman.ActionPull}, 1)
	jobs, err := c.Jobs(context.Background(), bitsprov.JobFilter{})
	if err != nil || len(jobs) != 3 {
		t.Fatalf("Jobs = %d, %v", len(jobs), err)
	}
	// One job in the optimized EnumerateResponse, the other two in one
	// Pull (MaxElements 32000): the lost Pull, wsman's Release of the
	// context it leaves behind, then the whole listing again.
	if diff := cmp.Diff([]string{"Enumerate", "Pull", "Release", "Enumerate", "Pull"}, methods(h)); diff != "" {
		t.Errorf("exchange (-want +got):\n%s", diff)
	}
}

// FuzzSplitMarker checks that any description and marker survive
// DescriptionWithMarker and SplitMarker, and that SplitMarker never
// panics on a description from the host.
func FuzzSplitMarker(f *testing.F) {
	f.Add("nightly", "bitsremote:1")
	f.Add("", "m")
	f.Add("a [b] [", "x]")
	f.Add("[[[]]]", "é")
	f.Fuzz(func(t *testing.T, desc, marker string) {
		text, m := bitsprov.SplitMarker(desc)
		if m != "" && !strings.HasSuffix(desc, "["+m+"]") {
			t.Fatalf("SplitMarker(%q) = %q, %q", desc, text, m)
		}
		full, err := bitsprov.DescriptionWithMarker(desc, marker)
		if err != nil {
			return
		}
		if text, m := bitsprov.SplitMarker(full); text != desc || m != marker {
			t.Fatalf("SplitMarker(%q) = %q, %q; want %q, %q", full, text, m, desc, marker)
		}
	})
}

// TestCredentialsNeverInClear: over http:// without message encryption a
// job password is refused before anything is sent.
func TestCredentialsNeverInClear(t *testing.T) {
	h, c, dst := markerHost(t) // Basic over http://
	cred := []bitsprov.Credential{{Target: bitsprov.TargetServer, Scheme: bitsprov.SchemeBasic, UserName: "svc", Password: "Canary-Pw-7f3a9c!e"}}
	_, err := c.CreateJob(context.Background(), bitsprov.CreateJobOptions{DisplayName: "j", RemoteURL: h.FilesURL + "/a", LocalFile: filepath.Join(dst, "a"), Credentials: cred})
	if !errors.Is(err, bitsprov.ErrCleartextCredentials) || err.Error() != hostOf(h)+": CreateJob: "+bitsprov.ErrCleartextCredentials.Error() {
		t.Fatalf("CreateJob = %v", err)
	}
	err = c.SetCredentials(context.Background(), "{00000000-0000-0000-0000-000000000001}", bitsprov.TargetServer, bitsprov.SchemeBasic, "svc", "Canary-Pw-7f3a9c!e")
	if !errors.Is(err, bitsprov.ErrCleartextCredentials) {
		t.Fatalf("SetCredentials = %v", err)
	}
	if log := h.Server.Log(); len(log) != 0 {
		t.Fatalf("the host saw %d requests: %+v", len(log), log)
	}
}
