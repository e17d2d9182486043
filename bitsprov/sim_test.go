package bitsprov_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// TestAgainstSimulator runs the client and the poller over real HTTP
// against the simulated host: create with the safe pattern, patch a
// property, wait for the transfer and complete it; then a 404 job that the
// poller cancels with the error details.
func TestAgainstSimulator(t *testing.T) {
	files, dst := t.TempDir(), t.TempDir()
	data := bytes.Repeat([]byte("abcdefgh"), 10000)
	for name, b := range map[string][]byte{"a.bin": data, "b.bin": data[:100]} {
		if err := os.WriteFile(filepath.Join(files, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := bitssim.NewHost(bitssim.HostConfig{
		// NTLM with message encryption, as a default Windows host: the job
		// password below may only travel sealed.
		Server:   wsmantest.Config{Auth: wsmantest.AuthNTLM, RequireEncryption: true, Users: map[string]string{"admin": "pw"}, Machine: "SIM01"},
		Provider: bitssim.Config{TimeScale: 0.001},
		FilesDir: files,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	tr, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: "admin", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	c := bitsprov.NewClient(wsman.NewClient(h.URL, tr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	pri := bitsprov.PriorityHigh
	id, err := c.CreateJob(ctx, bitsprov.CreateJobOptions{
		DisplayName: "e2e & <x>", RemoteURL: h.FilesURL + "/a.bin", LocalFile: filepath.Join(dst, "a.bin"),
		Priority: &pri, MinimumRetryDelay: 60 * time.Second, Description: "desc",
		ExtraFiles:  []bitsprov.FileSpec{{RemoteURL: h.FilesURL + "/b.bin", LocalFile: filepath.Join(dst, "b.bin")}},
		Credentials: []bitsprov.Credential{{Target: bitsprov.TargetServer, Scheme: bitsprov.SchemeNTLM, UserName: "u", Password: "p"}},
		Proxy:       &bitsprov.ProxySettings{Usage: bitsprov.ProxyNoProxy},
		Suspended:   true,
	})
	if err != nil {
		t.Fatal(id, err)
	}
	if err := c.SetDescription(ctx, id, "new <d>"); err != nil {
		t.Fatal(err)
	}
	j, err := c.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != bitsprov.StateSuspended || j.Priority != bitsprov.PriorityHigh || j.DisplayName != "e2e & <x>" ||
		j.Description != "new <d>" || j.MinimumRetryDelay != time.Minute || j.FilesTotal != 2 || len(j.Files) != 2 {
		t.Fatalf("job after setup: %+v", j)
	}
	if _, err := c.GetError(ctx, id, 1033); !errors.Is(err, bitsprov.ErrErrorInfoUnavailable) {
		t.Errorf("GetError on a suspended job: %v", err)
	}
	jobs, err := c.Jobs(ctx, bitsprov.JobFilter{States: []bitsprov.State{bitsprov.StateSuspended}})
	if err != nil || len(jobs) != 1 || jobs[0].JobID != id {
		t.Fatalf("Jobs = %v, %v", jobs, err)
	}
	if err := c.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	out, err := c.Wait(ctx, id, bitsprov.Policy{Interval: 10 * time.Millisecond, Timeout: 20 * time.Second})
	if err != nil || out.Action != bitsprov.ResultCompleted || out.Final != bitsprov.StateAcknowledged {
		t.Fatalf("Wait = %+v, %v", out, err)
	}
	for name, want := range map[string][]byte{"a.bin": data, "b.bin": data[:100]} {
		if got, err := os.ReadFile(filepath.Join(dst, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	if _, err := c.Job(ctx, id); !errors.Is(err, bitsprov.ErrNotFound) {
		t.Errorf("Get after Complete: %v", err)
	}

	id2, err := c.CreateJob(ctx, bitsprov.CreateJobOptions{DisplayName: "bad", RemoteURL: h.FilesURL + "/missing.bin", LocalFile: filepath.Join(dst, "m.bin")})
	if err != nil {
		t.Fatal(err)
	}
	out, err = c.Wait(ctx, id2, bitsprov.Policy{Interval: 10 * time.Millisecond, Timeout: 20 * time.Second})
	if err != nil || out.Action != bitsprov.ResultCancelled || out.Error == nil ||
		out.Error.Code != uint32(bitsprov.HTTPCode(404)) || out.Error.Context != bitsprov.ContextRemoteFile {
		t.Fatalf("Wait = %+v, %v", out, err)
	}
	if _, err := c.Job(ctx, id2); !errors.Is(err, bitsprov.ErrNotFound) {
		t.Errorf("Get after Cancel: %v", err)
	}
}
