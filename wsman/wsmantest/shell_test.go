package wsmantest_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// newShellServer serves a WinRS shell whose commands echo their line
// ("echo X" prints X), fail ("fail"), or block until stopped ("block").
func newShellServer(t *testing.T) (*wsmantest.Server, *wsmantest.Shell) {
	t.Helper()
	s := wsmantest.NewUnstartedServer(wsmantest.Config{Users: map[string]string{testUser: testPass}, Machine: "WIN1"})
	sh := wsmantest.NewShell(func(ctx context.Context, cmd *wsmantest.Command, stdout, stderr io.Writer) int {
		switch {
		case strings.HasPrefix(cmd.Line, "echo "):
			fmt.Fprintf(stdout, "%s\r\n", strings.TrimPrefix(cmd.Line, "echo "))
			return 0
		case cmd.Line == "fail":
			io.WriteString(stderr, "boom")
			return 5
		case cmd.Line == "block":
			<-ctx.Done()
			return 1
		}
		return 9009
	})
	s.Handle(wsmantest.ShellResourceURI, sh)
	s.Start()
	t.Cleanup(func() { s.Close(); sh.Close() })
	return s, sh
}

// shellEnvelope is a request in the style of pypsrp's real captures.
func shellEnvelope(action, selectors, timeout, body string) string {
	if selectors != "" {
		selectors = `<wsman:SelectorSet><wsman:Selector Name="ShellId">` + selectors + `</wsman:Selector></wsman:SelectorSet>`
	}
	return `<s:Envelope xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>` +
		`<wsa:Action s:mustUnderstand="true">` + action + `</wsa:Action><wsman:MaxEnvelopeSize s:mustUnderstand="true">153600</wsman:MaxEnvelopeSize>` +
		`<wsa:MessageID>uuid:` + newTestUUID() + `</wsa:MessageID><wsman:OperationTimeout>` + timeout + `</wsman:OperationTimeout>` +
		`<wsa:ReplyTo><wsa:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:Address></wsa:ReplyTo>` +
		`<wsman:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</wsman:ResourceURI>` +
		`<wsa:To>http://host:5985/wsman</wsa:To>` + selectors + `</s:Header><s:Body>` + body + `</s:Body></s:Envelope>`
}

var uuidCounter int

func newTestUUID() string {
	uuidCounter++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", uuidCounter)
}

// xpathText returns the text of the first element matching path.
func xpathText(t *testing.T, body, path string) string {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(body); err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	el := d.FindElement(path)
	if el == nil {
		t.Fatalf("no %s in %s", path, body)
	}
	return el.Text()
}

var shellIDPattern = regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)

// TestShellWireShapes replays the real pypsrp Create and Delete requests
// and compares our replies with Windows' replies to them, element by
// element; Command, Receive and Signal replies, for which no capture
// exists, are compared with the MS-WSMV 3.1.4.11-3.1.4.14 shapes.
func TestShellWireShapes(t *testing.T) {
	s, sh := newShellServer(t)
	create := string(readWire(t, "wsman-create-request_shell.xml"))
	r := post(t, "POST", s.URL, testUser, create, nil)
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if diff := cmp.Diff(shape(t, readWire(t, "wsman-create-response_resourcecreated.xml")), shape(t, []byte(r.body))); diff != "" {
		t.Errorf("CreateResponse (-windows +ours):\n%s\nours: %s", diff, r.body)
	}
	id := xpathText(t, r.body, "//rsp:ShellId")
	if !shellIDPattern.MatchString(id) || sh.Open()[0] != id {
		t.Fatalf("ShellId %q, open %v", id, sh.Open())
	}
	if got := xpathText(t, r.body, "//x:ResourceCreated/a:Address"); got != s.URL {
		t.Errorf("Address = %q, want %q", got, s.URL)
	}
	if got := xpathText(t, r.body, "//rsp:Shell/rsp:Owner"); got != testUser {
		t.Errorf("Owner = %q", got)
	}

	run := func(line string) string {
		body := `<rsp:CommandLine><rsp:Command>` + line + `</rsp:Command></rsp:CommandLine>`
		r := post(t, "POST", s.URL, testUser, shellEnvelope(wsmantest.ActionShellCommand, id, "PT20S", body), nil)
		if r.status != 200 {
			t.Fatalf("command: %d %s", r.status, r.body)
		}
		want := []string{
			"0/s:Envelope[xml:lang xmlns:s xmlns:a xmlns:w xmlns:rsp xmlns:p]", "1/s:Header[]", "2/a:Action[]", "2/a:MessageID[]", "2/a:To[]", "2/a:RelatesTo[]",
			"1/s:Body[]", "2/rsp:CommandResponse[]", "3/rsp:CommandId[]",
		}
		if diff := cmp.Diff(want, shape(t, []byte(r.body))); diff != "" {
			t.Errorf("CommandResponse (-want +ours):\n%s\nours: %s", diff, r.body)
		}
		return xpathText(t, r.body, "//rsp:CommandId")
	}
	receive := func(cmdID, timeout string) rawReply {
		body := `<rsp:Receive><rsp:DesiredStream CommandId="` + cmdID + `">stdout stderr</rsp:DesiredStream></rsp:Receive>`
		return post(t, "POST", s.URL, testUser, shellEnvelope(wsmantest.ActionShellReceive, id, timeout, body), nil)
	}

	t.Run("Receive done", func(t *testing.T) {
		cmdID := run("echo hello")
		// Receive once the command has ended, so that one reply holds
		// its output and its end.
		for deadline := time.Now().Add(10 * time.Second); !slices.ContainsFunc(sh.History(), func(c wsmantest.CommandRecord) bool { return c.ID == cmdID && c.Done }); {
			if time.Now().After(deadline) {
				t.Fatalf("command %s not done after 10 s: %+v", cmdID, sh.History())
			}
			time.Sleep(time.Millisecond)
		}
		r := receive(cmdID, "PT20S")
		want := []string{
			"0/s:Envelope[xml:lang xmlns:s xmlns:a xmlns:w xmlns:rsp xmlns:p]", "1/s:Header[]", "2/a:Action[]", "2/a:MessageID[]", "2/a:To[]", "2/a:RelatesTo[]",
			"1/s:Body[]", "2/rsp:ReceiveResponse[]",
			"3/rsp:Stream[Name CommandId]", "3/rsp:Stream[Name CommandId End]", "3/rsp:Stream[Name CommandId End]",
			"3/rsp:CommandState[CommandId State]", "4/rsp:ExitCode[]",
		}
		if diff := cmp.Diff(want, shape(t, []byte(r.body))); diff != "" {
			t.Errorf("ReceiveResponse (-want +ours):\n%s\nours: %s", diff, r.body)
		}
		if got := xpathText(t, r.body, "//rsp:Stream[@Name='stdout']"); got != base64.StdEncoding.EncodeToString([]byte("hello\r\n")) {
			t.Errorf("stdout = %q", got)
		}
		if got := xpathText(t, r.body, "//rsp:CommandState/rsp:ExitCode"); got != "0" {
			t.Errorf("ExitCode = %q", got)
		}
		if got := xpathText(t, r.body, "//a:Action"); got != wsmantest.ActionShellReceiveResponse {
			t.Errorf("Action = %q", got)
		}
		sig := `<rsp:Signal CommandId="` + cmdID + `"><rsp:Code>` + wsmantest.SignalTerminate + `</rsp:Code></rsp:Signal>`
		r = post(t, "POST", s.URL, testUser, shellEnvelope(wsmantest.ActionShellSignal, id, "PT20S", sig), nil)
		want = []string{
			"0/s:Envelope[xml:lang xmlns:s xmlns:a xmlns:w xmlns:rsp xmlns:p]", "1/s:Header[]", "2/a:Action[]", "2/a:MessageID[]", "2/a:To[]", "2/a:RelatesTo[]",
			"1/s:Body[]", "2/rsp:SignalResponse[]",
		}
		if diff := cmp.Diff(want, shape(t, []byte(r.body))); diff != "" {
			t.Errorf("SignalResponse (-want +ours):\n%s\nours: %s", diff, r.body)
		}
		// The terminated command is gone.
		r = receive(cmdID, "PT20S")
		if r.status != 500 || xpathText(t, r.body, "//s:Subcode/s:Value") != "w:InvalidParameter" {
			t.Errorf("receive after terminate: %d %s", r.status, r.body)
		}
	})
	t.Run("Receive TimedOut", func(t *testing.T) {
		cmdID := run("block")
		r := receive(cmdID, "PT0.200S")
		if r.status != 500 {
			t.Fatalf("status %d", r.status)
		}
		if diff := cmp.Diff(shape(t, readWire(t, "fault-w-TimedOut-receive.xml")), shape(t, []byte(r.body))); diff != "" {
			t.Errorf("TimedOut (-windows +ours):\n%s\nours: %s", diff, r.body)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		del := strings.Replace(string(readWire(t, "wsman-delete-request.xml")), "4283CBDC-3706-415B-88BD-B385F3E51A53", id, 1)
		r := post(t, "POST", s.URL, testUser, del, nil)
		if r.status != 200 {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		if diff := cmp.Diff(shape(t, readWire(t, "wsman-delete-response.xml")), shape(t, []byte(r.body))); diff != "" {
			t.Errorf("DeleteResponse (-windows +ours):\n%s\nours: %s", diff, r.body)
		}
		if len(sh.Open()) != 0 {
			t.Errorf("open after delete: %v", sh.Open())
		}
		hist := sh.History()
		if len(hist) != 2 || !hist[1].Cancelled || hist[1].Line != "block" {
			t.Errorf("history = %+v", hist)
		}
		// The deleted shell is unknown now: the shell provider's fault.
		r = post(t, "POST", s.URL, testUser, del, nil)
		want := []string{
			"0/s:Envelope[xml:lang xmlns:s xmlns:a xmlns:x xmlns:e xmlns:n xmlns:w xmlns:p]", "1/s:Header[]", "2/a:Action[]", "2/a:MessageID[]", "2/a:To[]", "2/a:RelatesTo[]",
			"1/s:Body[]", "2/s:Fault[]", "3/s:Code[]", "4/s:Value[]=s:Sender", "4/s:Subcode[]", "5/s:Value[]=w:InvalidSelectors",
			"3/s:Reason[]", "4/s:Text[xml:lang]", "3/s:Detail[]", "4/w:FaultDetail[]", "4/f:WSManFault[xmlns:f Code Machine]",
			"5/f:Message[]", "6/f:ProviderFault[provider path]", "7/f:WSManFault[xmlns:f Code Machine]", "8/f:Message[]",
		}
		if diff := cmp.Diff(want, shape(t, []byte(r.body))); diff != "" {
			t.Errorf("fault (-want +ours):\n%s\nours: %s", diff, r.body)
		}
		if !strings.Contains(r.body, "The request for the Windows Remote Shell with ShellId "+id+" failed because the shell was not found on the server.") {
			t.Errorf("fault text: %s", r.body)
		}
	})
}

func TestShellFaults(t *testing.T) {
	s, _ := newShellServer(t)
	tests := []struct {
		name, action, shellID, body string
		subcode                     string
	}{
		{"command without ShellId", wsmantest.ActionShellCommand, "", `<rsp:CommandLine><rsp:Command>x</rsp:Command></rsp:CommandLine>`, "w:InvalidSelectors"},
		{"command in unknown shell", wsmantest.ActionShellCommand, "11111111-2222-4333-8444-555555555555", `<rsp:CommandLine><rsp:Command>x</rsp:Command></rsp:CommandLine>`, "w:InvalidSelectors"},
		{"create with a bad body", wsman.ActionCreate, "", `<rsp:Bogus/>`, "x:InvalidRepresentation"},
		{"unknown shell action", wsman.NsShell + "/Frobnicate", "", ``, "a:ActionNotSupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, "POST", s.URL, testUser, shellEnvelope(tt.action, tt.shellID, "PT20S", tt.body), nil)
			if r.status != 500 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if got := xpathText(t, r.body, "//s:Subcode/s:Value"); got != tt.subcode {
				t.Errorf("subcode = %q, want %q", got, tt.subcode)
			}
		})
	}
}

func TestCommandPowerShell(t *testing.T) {
	enc := func(s string) string {
		u := utf16.Encode([]rune(s))
		b := make([]byte, 2*len(u))
		for i, c := range u {
			b[2*i], b[2*i+1] = byte(c), byte(c>>8)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	tests := []struct {
		line, script string
		ok           bool
	}{
		{"powershell.exe -EncodedCommand " + enc("Get-Date; 'é☃'"), "Get-Date; 'é☃'", true},
		{`C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe -NoProfile -NonInteractive -enc ` + enc("x"), "x", true},
		{"PowerShell -e " + enc("y"), "y", true},
		{"powershell.exe -Command Get-Date", "", false},
		{"cmd.exe /c dir", "", false},
		{"powershell.exe -EncodedCommand ***", "", false},
		{"powershell.exe -EncodedCommand " + base64.StdEncoding.EncodeToString([]byte("odd")), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			c := &wsmantest.Command{Line: tt.line}
			script, ok := c.PowerShell()
			if script != tt.script || ok != tt.ok {
				t.Errorf("got (%q, %v), want (%q, %v)", script, ok, tt.script, tt.ok)
			}
		})
	}
}

// FuzzCommandPowerShell: any command line decodes or is refused, never a
// panic.
func FuzzCommandPowerShell(f *testing.F) {
	f.Add("powershell.exe -EncodedCommand ZQBjAGgAbwA=")
	f.Add("powershell -e")
	f.Add("cmd /c")
	f.Fuzz(func(t *testing.T, line string) {
		c := &wsmantest.Command{Line: line}
		if s, ok := c.PowerShell(); !ok && s != "" {
			t.Fatalf("refused %q but returned %q", line, s)
		}
	})
}
