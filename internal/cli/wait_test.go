package cli

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/internal/fleet"
	"github.com/bitsremote/bitsremote/internal/testnet"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

func TestWaitTimeoutLeavesJob(t *testing.T) {
	h := newSimHost(t)
	id := createSuspended(t, h, tempPath(t, "a.bin"))
	base := []string{"-H", h.hostArg(), "-u", testUser}
	r := run(t, withPassword(), append([]string{"wait", id, "--interval", "10ms", "--timeout", "150ms", "-o", "json"}, base...)...)
	if r.code != ExitConnection {
		t.Fatalf("wait past its timeout: exit %d, want 4; stderr %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if m["state"] != "Suspended" || m["outcome"].(map[string]any)["result"] != "TimedOut" {
		t.Errorf("state %v outcome %v", m["state"], m["outcome"])
	}
	if !strings.Contains(r.stderr, "is suspended; waiting until it is resumed") {
		t.Errorf("no warning about the suspended job: %s", r.stderr)
	}
	// The job is still there.
	if r := run(t, withPassword(), append([]string{"get", id}, base...)...); r.code != 0 {
		t.Errorf("job gone after a wait timeout: exit %d", r.code)
	}
	if r := run(t, withPassword(), append([]string{"wait", id, "--transient", "sometimes"}, base...)...); r.code != ExitUsage || !strings.Contains(r.stderr, `--transient "sometimes": want wait or cancel`) {
		t.Errorf("bad --transient: exit %d: %s", r.code, r.stderr)
	}
}

func TestWaitInterrupted(t *testing.T) {
	h := newSimHost(t)
	id := createSuspended(t, h, tempPath(t, "a.bin"))
	ios, _, out, errOut := Test()
	f := NewFactory()
	f.IO = ios
	f.Getenv = func(k string) string { return withPassword()[k] }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Interrupt once the wait has read the job: when the host has
	// answered a second Get, the first one's reply has been taken in. A
	// fixed delay could end before the first reply on a loaded machine.
	before := len(h.Server.Log())
	go func() {
		defer cancel()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			gets := 0
			for _, e := range h.Server.Log()[before:] {
				if e.Action == wsman.ActionGet && e.Status == 200 {
					gets++
				}
			}
			if gets >= 2 {
				return
			}
		}
	}()
	code := Execute(ctx, f, []string{"wait", id, "--interval", "10ms", "-H", h.hostArg(), "-u", testUser, "-o", "json"})
	if code != ExitJobFailed {
		t.Errorf("interrupted wait: exit %d, want 1", code)
	}
	want := "interrupted; job " + id + " is left on the host (Suspended): follow it with 'bitsremote wait " + id + " --complete'"
	if !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q lacks %q", errOut.String(), want)
	}
	m := decode(t, out.String())
	if m["state"] != "Suspended" {
		t.Errorf("the job as last seen: %v", m["state"])
	}
	// The wait ended without a verdict: no outcome (it once said
	// "Result(0)").
	if o, ok := m["outcome"]; ok {
		t.Errorf("interrupted wait's record has outcome %v, want none", o)
	}
}

func TestTransferUpload(t *testing.T) {
	h := newSimHost(t)
	src := filepath.Join(t.TempDir(), "report.bin")
	if err := os.WriteFile(src, h.content, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, withPassword(), "transfer", src, h.UploadURL+"/in/report.bin", "--type", "upload", "--interval", "20ms",
		"-H", h.hostArg(), "-u", testUser, "-o", "json")
	if r.code != 0 {
		t.Fatalf("upload: exit %d: %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	// The provider's BitsClientJob has no Type property: null, not a guess.
	if v, ok := m["type"]; !ok || v != nil {
		t.Errorf("type = %v (present %v), want null", v, ok)
	}
	if m["state"] != "Acknowledged" {
		t.Errorf("state = %v", m["state"])
	}
}

func TestHTTPSWithCAFile(t *testing.T) {
	h, err := bitssim.NewHost(bitssim.HostConfig{
		Server: wsmantest.Config{Auth: wsmantest.AuthBasic, Users: map[string]string{testUser: testPassword}},
		TLS:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ca, err := h.Server.CAFile()
	if err != nil {
		t.Fatal(err)
	}
	hostPort := strings.TrimSuffix(strings.TrimPrefix(h.URL, "https://"), "/wsman")
	base := []string{"list", "-H", hostPort, "--https", "--auth", "basic", "-u", testUser, "-o", "json"}

	r := run(t, withPassword(), append(base, "--ca-file", ca)...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("https with --ca-file: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, withPassword(), base...)
	if r.code != ExitConnection || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("https with an unknown CA: exit %d, want 4: %s", r.code, r.stderr)
	}
	r = run(t, withPassword(), append(base, "--insecure-skip-verify")...)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: --insecure-skip-verify") {
		t.Errorf("--insecure-skip-verify: exit %d stderr %q", r.code, r.stderr)
	}
	r = run(t, withPassword(), "list", "-H", "https://"+hostPort, "--auth", "basic", "-u", testUser, "--ca-file", ca, "-o", "json")
	if r.code != 0 {
		t.Errorf("https URL host: exit %d: %s", r.code, r.stderr)
	}
}

func TestProgressOnTerminalOnly(t *testing.T) {
	total := uint64(200)
	j := &bitsprov.Job{JobID: "{X}", State: bitsprov.StateTransferring, BytesTransferred: 50, BytesTotal: &total, FilesTotal: 1}

	ios, _, _, errOut := Test()
	newProgress(ios).update("h {X}", j)
	if errOut.Len() != 0 {
		t.Errorf("progress drawn on a non-terminal: %q", errOut.String())
	}

	ios.StderrTTY = true
	p := newProgress(ios)
	p.update("h {X}", j)
	j.BytesTransferred = 200
	p.update("h {X}", j)
	want := "\r\x1b[2Kh {X}  Transferring   [#####...............]  25% 50 B/200 B  files 0/1\n" +
		"\x1b[1A\r\x1b[2Kh {X}  Transferring   [####################] 100% 200 B/200 B  files 0/1\n"
	if got := errOut.String(); got != want {
		t.Errorf("progress output\n got %q\nwant %q", got, want)
	}
}

func TestDebugRedaction(t *testing.T) {
	in := []byte(`<p:SetCredentials_INPUT><p:UserName>u</p:UserName><p:Password>hunter2</p:Password><Password xsi:type="x">p&amp;w</Password></p:SetCredentials_INPUT>`)
	want := `<p:SetCredentials_INPUT><p:UserName>u</p:UserName><p:Password>REDACTED</p:Password><Password xsi:type="x">REDACTED</Password></p:SetCredentials_INPUT>`
	if got := string(redactBody(in)); got != want {
		t.Errorf("redactBody\n got %s\nwant %s", got, want)
	}
}

// TestWaitTransientCancel: --transient cancel alone cancels a job in
// TransientError, as the PowerShell loop does; --on-error (leave by
// default for wait) is about jobs in Error and does not hold it back.
func TestWaitTransientCancel(t *testing.T) {
	h := newSimHost(t)
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	base := []string{"-H", h.hostArg(), "-u", testUser}
	r := run(t, withPassword(), append([]string{"create", "--url", busy.URL + "/x.bin", "--local", tempPath(t, "x.bin")}, base...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	r = run(t, withPassword(), append([]string{"wait", id, "--transient", "cancel", "--interval", "10ms", "--timeout", "20s", "-o", "json"}, base...)...)
	if r.code != ExitJobFailed {
		t.Fatalf("wait --transient cancel: exit %d, want 1: %s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if got := m["outcome"].(map[string]any)["result"]; m["state"] != "Cancelled" || got != "Cancelled" {
		t.Errorf("wait --transient cancel: state %v, outcome %v; want the job cancelled", m["state"], got)
	}
	if r := run(t, withPassword(), append([]string{"get", id}, base...)...); r.code != ExitFault {
		t.Errorf("get after the cancel: exit %d, want 5 (not found): %s", r.code, r.stderr)
	}
	help := run(t, nil, "wait", "--help").stdout
	for _, want := range []string{
		"on TransientError: wait (BITS retries; give up at the job's NoProgressTimeout, then apply --on-error) or cancel (cancel the job at once, whatever --on-error says)",
		"on Error: leave the job for inspection, or cancel it",
	} {
		if !strings.Contains(strings.Join(strings.Fields(help), " "), want) {
			t.Errorf("wait --help lacks %q:\n%s", want, help)
		}
	}
}

// TestWaitUnreachableHost: wait without --timeout on a host that never
// answers says so on stderr (once here: the notes are 30 s apart) and,
// the job never having been seen, gives up at --unreachable-timeout with
// exit 4.
func TestWaitUnreachableHost(t *testing.T) {
	addr := testnet.RefusedAddr(t) // nothing listens: every poll is refused
	const id = "{0BADC0DE-0000-4000-8000-000000000002}"
	r := run(t, withPassword(), "wait", id, "--interval", "20ms", "--unreachable-timeout", "300ms", "-H", addr, "-u", testUser, "--retries", "0")
	if r.code != ExitConnection {
		t.Fatalf("exit %d, want 4: %s", r.code, r.stderr)
	}
	// The cause is the transport's ("post to …: connection refused"),
	// quoted the same way in the note and in the final error.
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	notePrefix := addr + ": host unreachable (Get on " + id + ": "
	noteSuffix := "); still waiting for job " + id + ", Ctrl-C to stop"
	if len(lines) != 2 || !strings.HasPrefix(lines[0], notePrefix) || !strings.HasSuffix(lines[0], noteSuffix) ||
		!strings.HasSuffix(lines[0], "connect: connection refused"+noteSuffix) {
		t.Fatalf("stderr:\n%s\nwant one note, then the error", r.stderr)
	}
	cause := strings.TrimSuffix(strings.TrimPrefix(lines[0], notePrefix), noteSuffix)
	if want := "bitsremote: " + addr + ": job " + id + ": job not seen in the 300ms since the wait began; host unreachable: Get on " + id + ": " + cause; lines[1] != want {
		t.Errorf("error line:\n%s\nwant:\n%s", lines[1], want)
	}
}

// TestTransferUnreachableNote: transfer, like wait, says on stderr when
// the host stops answering while it waits for the job (at the first
// failure; the next note would be 30s later), and goes on waiting.
func TestTransferUnreachableNote(t *testing.T) {
	h := newSimHost(t)
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	var resumed atomic.Bool
	var failures atomic.Int32
	ios, _, out, errOut := Test()
	f := NewFactory()
	f.IO = ios
	f.NewTransport = func(cfg transport.Config) (transport.Transport, error) {
		tr, err := transport.New(cfg)
		if err != nil {
			return nil, err
		}
		return transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
			body := string(req.Body)
			// After the Resume, the host "restarts": three polls are refused.
			if resumed.Load() && strings.Contains(body, wsman.ActionGet+"<") && failures.Add(1) <= 3 {
				return nil, refused
			}
			resp, err := tr.RoundTrip(ctx, req)
			if strings.Contains(body, "SetJobState_INPUT") {
				resumed.Store(true)
			}
			return resp, err
		}), nil
	}
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	f.Getenv = func(k string) string {
		if k == fleet.EnvLedger {
			return ledger
		}
		return withPassword()[k]
	}
	code := Execute(context.Background(), f, []string{"transfer", h.FilesURL + "/file.bin", tempPath(t, "a.bin"),
		"--interval", "10ms", "--timeout", "20s", "--retries", "0", "-H", h.hostArg(), "-u", testUser, "-o", "json"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if n := failures.Load(); n < 3 {
		t.Fatalf("%d polls refused, want 3", n)
	}
	m := decode(t, out.String())
	id, _ := m["jobId"].(string)
	if id == "" || m["state"] != "Acknowledged" {
		t.Errorf("transfer printed %v", m)
	}
	want := h.hostArg() + ": host unreachable (Get on " + id + ": " + refused.Error() + "); still waiting for job " + id + ", Ctrl-C to stop\n"
	if errOut.String() != want {
		t.Errorf("stderr:\n%q\nwant:\n%q", errOut.String(), want)
	}
}
