package bitsprov_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// progressOf is the job as EnumerateProgress should read it: the
// progress fields of full, every other field zero.
func progressOf(full *bitsprov.Job) bitsprov.Job {
	p := bitsprov.Job{JobID: full.JobID, State: full.State, BytesTransferred: full.BytesTransferred,
		FilesTotal: full.FilesTotal, FilesTransferred: full.FilesTransferred,
		TransientErrorCount: full.TransientErrorCount, Modified: full.Modified}
	if full.BytesTotal != nil {
		n := *full.BytesTotal
		p.BytesTotal = &n
	}
	return p
}

// TestEnumerateProgress lists a queue whole and by progress over NTLM
// with encryption: the progress listing is one WQL enumeration of the
// namespace URI, its jobs carry exactly the progress fields of the whole
// ones, laying them over the whole jobs gives the whole jobs back, and
// the replies are a fraction of the size.
func TestEnumerateProgress(t *testing.T) {
	e := newE2E(t)
	if err := os.WriteFile(filepath.Join(e.files, "a.bin"), randomData(t, 3000), 0o644); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, name := range []string{"one", "two", "three"} {
		id, err := e.c.CreateJob(e.ctx, bitsprov.CreateJobOptions{DisplayName: name, Description: "progress test",
			RemoteURL: e.h.FilesURL + "/a.bin", LocalFile: filepath.Join(e.dst, name), Suspended: i != 1})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	e.waitJob(t, ids[1], "transferred", func(j *bitsprov.Job) bool { return j.State == bitsprov.StateTransferred })

	var fullBytes, progressBytes int
	count := func(n *int) func(string, []byte) { return func(_ string, b []byte) { *n += len(b) } }
	full, err := e.c.Jobs(wsman.WithReplyHook(e.ctx, count(&fullBytes)), bitsprov.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	e.h.Server.ResetLog()
	partial, err := e.c.EnumerateProgress(wsman.WithReplyHook(e.ctx, count(&progressBytes)))
	if err != nil {
		t.Fatal(err)
	}

	var got, want []bitsprov.Job
	for _, p := range partial {
		got = append(got, p.Job)
	}
	for _, j := range full {
		want = append(want, progressOf(j))
	}
	if len(want) != 3 || want[1].State != bitsprov.StateTransferred || want[1].BytesTotal == nil || *want[1].BytesTotal != 3000 {
		t.Fatalf("whole listing: %+v", want)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("progress (-want +got):\n%s", d)
	}
	for i, p := range partial {
		if d := cmp.Diff(full[i], p.Apply(full[i])); d != "" {
			t.Errorf("%s laid over itself whole (-whole +applied):\n%s", p.Job.JobID, d)
		}
		// Apply sets every field the progress listing reads.
		if d := cmp.Diff(p.Job, *p.Apply(&bitsprov.Job{DisplayName: "x"}), cmp.FilterPath(func(ps cmp.Path) bool {
			return ps.Last().String() == ".DisplayName"
		}, cmp.Ignore())); d != "" {
			t.Errorf("Apply misses progress fields (-partial +applied):\n%s", d)
		}
	}

	var reqs []string
	for _, l := range e.h.Server.Log() {
		if l.Action != "" {
			reqs = append(reqs, l.Action[strings.LastIndex(l.Action, "/")+1:]+" "+l.ResourceURI)
		}
	}
	ns := wsman.ResourceWMI + "/root/microsoft/bits/*"
	if d := cmp.Diff([]string{"Enumerate " + ns, "Pull " + ns}, reqs); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
	// Two envelopes of some 700 bytes each carry the items either way.
	if progressBytes*2 > fullBytes {
		t.Errorf("progress replies %d bytes, whole replies %d: want less than half", progressBytes, fullBytes)
	}
}

// TestEnumerateProgressFilterRefused: a host whose WMI refuses the query
// is listed whole.
func TestEnumerateProgressFilterRefused(t *testing.T) {
	e := newE2E(t)
	id, err := e.c.CreateJob(e.ctx, bitsprov.CreateJobOptions{DisplayName: "one", RemoteURL: e.h.FilesURL + "/a.bin",
		LocalFile: filepath.Join(e.dst, "a.bin"), Suspended: true})
	if err != nil {
		t.Fatal(err)
	}
	e.h.Server.Inject(wsmantest.Injection{Kind: wsmantest.InjectFault, Action: wsman.ActionEnumerate, Fault: &wsman.Fault{
		HTTPStatus: 500, Code: "Sender", SubcodeNS: wsman.NsEnumeration, Subcode: "CannotProcessFilter",
		WSManCode: wsman.CodeCannotProcess, Reason: "The data source could not process the filter."}}, 1)
	e.h.Server.ResetLog()
	got, err := e.c.EnumerateProgress(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Job.JobID != id || got[0].Job.DisplayName != "one" {
		t.Fatalf("jobs %+v", got)
	}
	var uris []string
	for _, l := range e.h.Server.Log() {
		if strings.HasSuffix(l.Action, "/Enumerate") {
			uris = append(uris, l.ResourceURI)
		}
	}
	if d := cmp.Diff([]string{wsman.ResourceWMI + "/root/microsoft/bits/*", bitsprov.ResourceURI}, uris); d != "" {
		t.Errorf("enumerations (-want +got):\n%s", d)
	}
}

func TestPartialJobPending(t *testing.T) {
	pending := map[bitsprov.State]bool{bitsprov.StateQueued: true, bitsprov.StateConnecting: true,
		bitsprov.StateTransferring: true, bitsprov.StateSuspended: true}
	for s := bitsprov.StateQueued; s <= bitsprov.StateCancelled; s++ {
		t.Run(s.String(), func(t *testing.T) {
			p := &bitsprov.PartialJob{Job: bitsprov.Job{State: s}}
			if p.Pending() != pending[s] {
				t.Errorf("Pending() = %v", p.Pending())
			}
		})
	}
}

func TestProgressProperties(t *testing.T) {
	want := []string{"JobId", "State", "BytesTotal", "BytesTransferred", "FilesTotal", "FilesTransferred", "TransientErrorCount", "JobLastModificationTime"}
	got := bitsprov.ProgressProperties()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	got[0] = "x"
	if bitsprov.ProgressProperties()[0] != "JobId" {
		t.Error("ProgressProperties shares its slice")
	}
}
