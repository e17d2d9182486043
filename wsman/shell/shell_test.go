package shell_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/shell"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

const (
	user = `WIN1\admin`
	pass = "S3cret!pw"
)

// host is a simulated Windows host with NTLM and required encryption and
// a WinRS shell whose commands are answered by run.
type host struct {
	srv   *wsmantest.Server
	shell *wsmantest.Shell
	c     *wsman.Client
}

func newHost(t *testing.T, run wsmantest.Runner) *host { return newHostTB(t, run) }

func newHostTB(t testing.TB, run wsmantest.Runner) *host {
	t.Helper()
	srv := wsmantest.NewUnstartedServer(wsmantest.Config{
		Auth: wsmantest.AuthNTLM, Users: map[string]string{user: pass},
		RequireEncryption: true, Machine: "WIN1",
	})
	sh := wsmantest.NewShell(run)
	srv.Handle(wsmantest.ShellResourceURI, sh)
	srv.Start()
	t.Cleanup(func() { srv.Close(); sh.Close() })
	tr, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: user, Password: pass, Encryption: transport.EncryptionAlways})
	if err != nil {
		t.Fatal(err)
	}
	c := wsman.NewClient(srv.URL, tr)
	c.Host = "win1:5985"
	return &host{srv: srv, shell: sh, c: c}
}

// runner answers a few command lines the way cmd.exe would.
func runner(started chan<- string) wsmantest.Runner {
	return func(ctx context.Context, cmd *wsmantest.Command, stdout, stderr io.Writer) int {
		if ps, ok := cmd.PowerShell(); ok {
			fmt.Fprintf(stdout, "ps:%s", ps)
			return 0
		}
		switch cmd.Line {
		case "hostname & ver":
			io.WriteString(stdout, "WIN1\r\n")
			io.WriteString(stderr, "warning: old\r\n")
			io.WriteString(stdout, "Microsoft Windows [Version 10.0.20348.2227]\r\n")
			return 3
		case "big":
			io.WriteString(stdout, strings.Repeat("0123456789abcdef", 10<<10)) // 160 KiB: several Receives
			return 0
		case "ping -t localhost":
			started <- cmd.ID
			<-ctx.Done()
			return 1
		}
		fmt.Fprintf(stderr, "'%s' is not recognized as an internal or external command", cmd.Line)
		return 9009
	}
}

func actions(log []wsmantest.LogEntry) []string {
	var out []string
	for _, e := range log {
		if e.Action == "" {
			continue
		}
		a := e.Action[strings.LastIndexByte(e.Action, '/')+1:]
		if e.Fault != "" {
			a += "!" + e.Fault
		}
		if !e.Encrypted {
			a += "(plain)"
		}
		out = append(out, a)
	}
	return out
}

func TestRun(t *testing.T) {
	h := newHost(t, runner(nil))
	tests := []struct {
		name, line     string
		stdout, stderr string
		code           int
		// receives is the least number of Receives: output may come in
		// more, as the command's writes and its end race with them.
		receives int
	}{
		{"output and exit code", "hostname & ver", "WIN1\r\nMicrosoft Windows [Version 10.0.20348.2227]\r\n", "warning: old\r\n", 3, 1},
		{"unknown command", "frob", "", "'frob' is not recognized as an internal or external command", 9009, 1},
		// 160 KiB in replies of at most 64 KiB.
		{"output over several receives", "big", strings.Repeat("0123456789abcdef", 10<<10), "", 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.srv.ResetLog()
			stdout, stderr, code, err := shell.Run(context.Background(), h.c, tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if stdout != tt.stdout || stderr != tt.stderr || code != tt.code {
				t.Errorf("got (%q, %q, %d), want (%q, %q, %d)", trunc(stdout), stderr, code, trunc(tt.stdout), tt.stderr, tt.code)
			}
			got := actions(h.srv.Log())
			n := 0
			for 2+n < len(got) && got[2+n] == "Receive" {
				n++
			}
			want := append([]string{"Create", "Command"}, append(slices.Repeat([]string{"Receive"}, max(n, tt.receives)), "Signal", "Delete")...)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if open := h.shell.Open(); len(open) != 0 {
				t.Errorf("shells left open: %v", open)
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func TestRunPowerShell(t *testing.T) {
	h := newHost(t, runner(nil))
	stdout, stderr, code, err := shell.RunPowerShell(context.Background(), h.c, "Get-Date | ConvertTo-Json -Compress; 'héllo ☃'")
	if err != nil {
		t.Fatal(err)
	}
	want := "ps:$ProgressPreference = 'SilentlyContinue';Get-Date | ConvertTo-Json -Compress; 'héllo ☃'"
	if stdout != want || stderr != "" || code != 0 {
		t.Errorf("got (%q, %q, %d), want (%q, \"\", 0)", stdout, stderr, code, want)
	}
}

// A Run whose context ends while Receive waits for output abandons the
// HTTP call, terminates the command and deletes the shell.
func TestRunCancelDeletesShell(t *testing.T) {
	started := make(chan string, 1)
	h := newHost(t, runner(started))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	go func() {
		defer wg.Done()
		_, _, _, err = shell.Run(ctx, h.c, "ping -t localhost")
	}()
	id := <-started
	// Let the Receive reach the server and block there.
	waitFor(t, func() bool {
		for _, e := range h.srv.Log() {
			if strings.HasSuffix(e.Action, "/Command") && e.Status == 200 {
				return true
			}
		}
		return false
	})
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "win1:5985") {
		t.Fatalf("err = %v, want context.Canceled naming the host", err)
	}
	if open := h.shell.Open(); len(open) != 0 {
		t.Errorf("shells left open: %v", open)
	}
	hist := h.shell.History()
	want := []wsmantest.CommandRecord{{ShellID: hist[0].ShellID, ID: id, Line: "ping -t localhost", Done: true, ExitCode: 1,
		Signal: wsmantest.SignalTerminate, Cancelled: true}}
	waitFor(t, func() bool { return h.shell.History()[0].Done })
	if diff := cmp.Diff(want, h.shell.History()); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	got := actions(h.srv.Log())
	if len(got) < 2 || got[len(got)-2] != "Signal" || got[len(got)-1] != "Delete" {
		t.Errorf("actions = %v, want ... Signal, Delete", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A Receive that finds no output within OperationTimeout gets w:TimedOut,
// which means "still running": Run asks again.
func TestRunRidesOutOperationTimeout(t *testing.T) {
	release := make(chan struct{})
	h := newHost(t, func(ctx context.Context, cmd *wsmantest.Command, stdout, stderr io.Writer) int {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return 4
	})
	h.c.OperationTimeout = 200 * time.Millisecond
	go func() {
		// The command ends only once a Receive has timed out.
		defer close(release)
		for {
			for _, e := range h.srv.Log() {
				if e.Fault == "TimedOut" {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	stdout, _, code, err := shell.Run(context.Background(), h.c, "slow")
	if err != nil || stdout != "" || code != 4 {
		t.Fatalf("got (%q, %d, %v)", stdout, code, err)
	}
	got := actions(h.srv.Log())
	// As many timed-out Receives as the machine's speed gives, then one
	// that sees the command done.
	n := 2
	for n < len(got) && got[n] == "Receive!TimedOut" {
		n++
	}
	want := append([]string{"Create", "Command"}, append(slices.Repeat([]string{"Receive!TimedOut"}, n-2), "Receive", "Signal", "Delete")...)
	if n == 2 {
		t.Fatalf("no Receive timed out: %v", got)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

// Faults are errors, never success (masterzen reports a 500 fault as a
// reply): here the shell is deleted under the command's feet, so Receive
// gets the shell provider's w:InvalidSelectors.
func TestRunFaultIsError(t *testing.T) {
	var h *host
	h = newHost(t, func(ctx context.Context, cmd *wsmantest.Command, stdout, stderr io.Writer) int {
		// Delete our own shell from the side, as an admin's
		// Remove-WSManInstance would.
		_ = h.c.Delete(ctx, wsmantest.ShellResourceURI, wsman.Options{Selectors: []wsman.Selector{{Name: "ShellId", Value: cmd.ShellID}}})
		<-ctx.Done()
		return 0
	})
	_, _, _, err := shell.Run(context.Background(), h.c, "anything")
	var f *wsman.Fault
	if !errors.As(err, &f) {
		t.Fatalf("err = %v, want a *wsman.Fault", err)
	}
	if f.Subcode != "InvalidSelectors" || f.WSManCode != 0x8033805B || f.Host != "win1:5985" || f.Operation != "Receive" || f.HTTPStatus != 500 {
		t.Errorf("fault = %+v", f)
	}
	if f.ProviderFault == nil || f.ProviderFault.Provider != "Shell provider" || !strings.Contains(f.ProviderFault.Text, "the shell was not found on the server") {
		t.Errorf("provider fault = %+v", f.ProviderFault)
	}
}

func TestRunAuthFailure(t *testing.T) {
	h := newHost(t, runner(nil))
	tr, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: user, Password: "wrong", Encryption: transport.EncryptionAlways})
	if err != nil {
		t.Fatal(err)
	}
	c := wsman.NewClient(h.srv.URL, tr)
	_, _, _, err = shell.Run(context.Background(), c, "hostname & ver")
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err = %v", err)
	}
	if len(h.shell.History()) != 0 {
		t.Errorf("a command ran: %v", h.shell.History())
	}
}

// The Transporter also serves masterzen's own Client: its shell API runs
// through our sealed transport.
func TestTransporterWithMasterzenClient(t *testing.T) {
	h := newHost(t, runner(nil))
	wc, err := shell.NewClient(&shell.Transporter{Client: h.c, Ctx: context.Background()})
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code, err := wc.RunCmdWithContext(context.Background(), "hostname & ver")
	if err != nil || code != 3 || stdout != "WIN1\r\nMicrosoft Windows [Version 10.0.20348.2227]\r\n" || stderr != "warning: old\r\n" {
		t.Fatalf("got (%q, %q, %d, %v)", stdout, stderr, code, err)
	}
	for _, a := range actions(h.srv.Log()) {
		if strings.HasSuffix(a, "(plain)") {
			t.Errorf("unsealed message: %s", a)
		}
	}
	// A fault through masterzen's API is an error too.
	_, err = wc.NewShell("00000000-0000-0000-0000-000000000000").ExecuteWithContext(context.Background(), "x")
	var f *wsman.Fault
	if !errors.As(err, &f) || f.Subcode != "InvalidSelectors" {
		t.Fatalf("err = %v, want the InvalidSelectors fault", err)
	}
}

func TestRunBadInput(t *testing.T) {
	tests := []struct {
		name string
		c    *wsman.Client
		want string
	}{
		{"nil client", nil, "shell: no wsman client configured"},
		{"bad endpoint", wsman.NewClient("ftp://x/wsman", transport.Func(func(context.Context, *transport.Request) (*transport.Response, error) {
			return nil, errors.New("not reached")
		})), `shell: endpoint "ftp://x/wsman" is not an http(s) URL`},
	}
	ok := wsman.NewClient("http://win1:5985/wsman", transport.Func(func(context.Context, *transport.Request) (*transport.Response, error) {
		return nil, errors.New("not reached")
	}))
	tests = append(tests, []struct {
		name string
		c    *wsman.Client
		want string
	}{
		{"empty command", ok, "shell: the command is empty"},
		{"CDATA end", ok, `shell: the command contains "]]>", which cannot be sent inside the CDATA section of rsp:Command; use RunPowerShell, whose script is base64-encoded`},
		{"control character", ok, "shell: the command contains the character U+0000, which XML cannot carry; use RunPowerShell"},
	}...)
	lines := map[string]string{"empty command": " ", "CDATA end": "echo ]]><x/>", "control character": "echo \x00"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, found := lines[tt.name]
			if !found {
				line = "x"
			}
			_, _, _, err := shell.Run(context.Background(), tt.c, line)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}
