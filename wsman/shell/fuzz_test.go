package shell_test

import (
	"context"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/shell"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// fakeReplies answers Create and Command properly and every Receive with
// body, after putting the request's MessageID into its RelatesTo.
func fakeReplies(body string) transport.Transport {
	env := func(action, relates, inner string) []byte {
		return []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:Action>` +
			action + `</a:Action><a:RelatesTo>` + relates + `</a:RelatesTo></s:Header><s:Body>` + inner + `</s:Body></s:Envelope>`)
	}
	return transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
		d := etree.NewDocument()
		if err := d.ReadFromBytes(req.Body); err != nil {
			return nil, err
		}
		action := d.FindElement("//Header/Action").Text()
		id := d.FindElement("//Header/MessageID").Text()
		ok := func(b []byte) (*transport.Response, error) {
			return &transport.Response{StatusCode: 200, ContentType: "application/soap+xml", Body: b}, nil
		}
		switch {
		case strings.HasSuffix(action, "/Create"):
			return ok(env(wsman.ActionCreateResponse, id, `<rsp:Shell><rsp:ShellId>S1</rsp:ShellId></rsp:Shell>`))
		case strings.HasSuffix(action, "/Command"):
			return ok(env(wsman.NsShell+"/CommandResponse", id, `<rsp:CommandResponse><rsp:CommandId>C1</rsp:CommandId></rsp:CommandResponse>`))
		case strings.HasSuffix(action, "/Receive"):
			return ok([]byte(strings.ReplaceAll(body, "RELATES", id)))
		}
		return ok(env(action+"Response", id, ""))
	})
}

// FuzzReceiveReply feeds arbitrary Receive replies to Run: it must return
// (an error or a result), never panic or loop.
func FuzzReceiveReply(f *testing.F) {
	done := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse</a:Action><a:RelatesTo>RELATES</a:RelatesTo></s:Header><s:Body><rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="C1">aGk=</rsp:Stream><rsp:CommandState CommandId="C1" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>7</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse></s:Body></s:Envelope>`
	f.Add(done)
	f.Add(strings.Replace(done, "aGk=", "***", 1))
	f.Add(strings.Replace(done, "<rsp:ExitCode>7", "<rsp:ExitCode>-99999999999999999999", 1))
	f.Add(strings.Replace(done, "CommandState/Done", "CommandState/Running", 1))
	f.Add(`<s:Envelope/>`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, body string) {
		c := wsman.NewClient("http://win1:5985/wsman", fakeReplies(body))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// A reply that never says Done would be asked for forever;
		// stop after a few rounds.
		n := 0
		c.Transport = transport.Func(func(ctx2 context.Context, req *transport.Request) (*transport.Response, error) {
			if n++; n > 20 {
				cancel()
			}
			return fakeReplies(body).RoundTrip(ctx2, req)
		})
		_, _, _, _ = shell.Run(ctx, c, "x")
	})
}
