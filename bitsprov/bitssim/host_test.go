package bitssim

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/wsman"
)

// TestHostOverTheWire drives the provider through the real WS-Man client
// and server: CreateJob, Put of Priority, Resume, Get until Transferred,
// Complete, and the not-found fault after the job has left the queue.
func TestHostOverTheWire(t *testing.T) {
	files, dst, up := t.TempDir(), t.TempDir(), t.TempDir()
	data := randomBytes(t, 70000)
	writeFile(t, filepath.Join(files, "payload.bin"), data)
	h, c := newBasicHost(t, HostConfig{Provider: Config{TimeScale: 0.001}, FilesDir: files, UploadDir: up})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	in := wsman.NewInstance(ResourceURI)
	in.ClassName = "CreateJob_INPUT"
	local := filepath.Join(dst, "payload.bin")
	in.Set("DisplayName", "wire")
	in.Set("RemoteUrl", h.FilesURL+"/payload.bin")
	in.Set("LocalFile", local)
	in.Set("Suspend", "true")
	out, err := c.Invoke(ctx, ResourceURI, "CreateJob", wsman.Options{}, in)
	if err != nil {
		t.Fatal(err)
	}
	id, err := out.String("JobId")
	if err != nil {
		t.Fatal(err)
	}
	if rv, _ := out.Uint64("ReturnValue"); rv != 0 {
		t.Fatalf("CreateJob ReturnValue %d", rv)
	}
	sel := wsman.Options{Selectors: []wsman.Selector{{Name: "JobId", Value: id}}}

	job, err := c.Get(ctx, ResourceURI, sel)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := job.Objects("Files")
	if err != nil || len(objs) != 1 {
		t.Fatalf("Files: %v %v", objs, err)
	}
	if objs[0].ResourceURI != FileResourceURI || objs[0].TypeName != "BitsClientFile_Type" {
		t.Fatalf("embedded file %s / %s", objs[0].ResourceURI, objs[0].TypeName)
	}
	if got, _ := objs[0].String("RemoteUrl"); got != h.FilesURL+"/payload.bin" {
		t.Fatalf("file RemoteUrl %q", got)
	}
	job.Set("Priority", "1")
	job, err = c.Put(ctx, ResourceURI, sel, job)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := job.Uint64("Priority"); p != 1 {
		t.Fatalf("Priority after Put: %d", p)
	}

	state := wsman.NewInstance(ResourceURI)
	state.ClassName = "SetJobState_INPUT"
	state.Set("JobState", "2")
	if _, err := c.Invoke(ctx, ResourceURI, "SetJobState", sel, state); err != nil {
		t.Fatal(err)
	}
	for {
		job, err = c.Get(ctx, ResourceURI, sel)
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := job.Uint64("State"); s == 6 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("job did not reach Transferred")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if total, _ := job.Uint64("BytesTotal"); total != uint64(len(data)) {
		t.Fatalf("BytesTotal %d", total)
	}
	var n int
	for item, err := range c.Enumerate(ctx, ResourceURI, wsman.EnumerateOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := item.Instance.String("JobId"); got != id {
			t.Fatalf("enumerated %s", got)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("enumerated %d jobs", n)
	}
	state.Set("JobState", "1")
	if out, err = c.Invoke(ctx, ResourceURI, "SetJobState", sel, state); err != nil {
		t.Fatal(err)
	}
	if rv, _ := out.Uint64("ReturnValue"); rv != 0 {
		t.Fatalf("Complete ReturnValue %d", rv)
	}
	assertFile(t, local, data)
	_, err = c.Get(ctx, ResourceURI, sel)
	if !wsman.IsNotFound(err) {
		t.Fatalf("Get after Complete: %v, want not found", err)
	}
}
