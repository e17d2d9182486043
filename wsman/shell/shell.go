// Package shell runs commands on a Windows host through the WinRS remote
// shell (MS-WSMV 3.1.4.x: Create, Command, Receive, Signal, Delete on
// …/windows/shell/cmd), with the messages and parsers of
// github.com/masterzen/winrm carried by our own wsman/transport.
//
// masterzen/winrm is the best-known Go implementation of WinRS, but its
// transports ignore the HTTP status (a SOAP fault comes back as success),
// have no context, and its message encryption fails on a reused
// connection (spec/go-deps.md §1.6-1.8). So this package keeps what it
// does well, the shell envelopes (NewOpenShellRequest, NewExecuteCommand-
// Request, ...) and their parsers, and sends them through a Transporter
// that wraps our transport.Transport: our NTLM sealing, TLS, timeouts and
// context apply, and every reply is classified by wsman (faults are
// errors). Run drives the Create/Command/Receive/Signal/Delete sequence
// itself rather than through winrm.Command, whose goroutine detects
// timeouts by matching error text, hides the shell and command ids and,
// on cancellation, stops only the remote command.
package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// ResourceURI is the WinRS resource of cmd.exe shells.
const ResourceURI = wsman.NsShell + "/cmd"

// Reply Actions of the shell messages.
const (
	actionCommandResponse = wsman.NsShell + "/CommandResponse"
	actionReceiveResponse = wsman.NsShell + "/ReceiveResponse"
	actionSignalResponse  = wsman.NsShell + "/SignalResponse"
)

// CleanupTimeout bounds the Signal and Delete that Run sends after its
// context ended, so that a cancelled Run still closes the remote shell
// (WinRM keeps an abandoned shell for IdleTimeout, 2 hours by default,
// and counts it against MaxShellsPerUser) without hanging on a dead host.
const CleanupTimeout = 10 * time.Second

// DefaultMaxOutput bounds the stdout and stderr that Run keeps (each);
// output beyond it is discarded and reported by ErrOutputTruncated.
const DefaultMaxOutput = 16 << 20

// ErrOutputTruncated is returned, with the output that fit, when a command
// wrote more than the limit on stdout or stderr.
var ErrOutputTruncated = errors.New("shell: command output exceeds the limit and was truncated")

// Transporter adapts a wsman.Client (its Transport, endpoint and host) to
// masterzen/winrm's Transporter interface, so that a winrm.Client built
// with it (Parameters.TransportDecorator) sends through our transport.
// Its Post checks what masterzen does not: a SOAP fault or a non-SOAP
// reply is an error (*wsman.Fault, *wsman.HTTPError), and a reply whose
// RelatesTo is not the request's MessageID is a protocol error.
//
// masterzen's Post has no context, so a Transporter carries the one its
// calls run under: Ctx, or context.Background when nil. Use one
// Transporter per logical operation.
//
// With masterzen's own Command API, note that it keeps polling after an
// error only when the error text contains "OperationTimeout", which the
// *wsman.Fault of a w:TimedOut does through Windows' reason text (in the
// en-US locale we send); Run does not depend on that.
type Transporter struct {
	Client *wsman.Client
	Ctx    context.Context
}

var _ winrm.Transporter = (*Transporter)(nil)

// Transport implements winrm.Transporter. The connection settings live in
// the wrapped transport, so the Endpoint is not used.
func (t *Transporter) Transport(*winrm.Endpoint) error { return nil }

// Post implements winrm.Transporter.
func (t *Transporter) Post(_ *winrm.Client, msg *soap.SoapMessage) (string, error) {
	ctx := t.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	return t.post(ctx, msg)
}

// operation names a shell message in errors after its Action.
func operation(action string) string {
	switch action {
	case wsman.ActionCreate:
		return "Create shell"
	case wsman.ActionDelete:
		return "Delete shell"
	}
	if i := strings.LastIndexByte(action, '/'); i >= 0 {
		return action[i+1:]
	}
	return action
}

func (t *Transporter) post(ctx context.Context, msg *soap.SoapMessage) (string, error) {
	c := t.Client
	if c == nil || c.Transport == nil {
		return "", errors.New("shell: no wsman client or transport configured")
	}
	body := msg.String()
	req := etree.NewDocument()
	if err := req.ReadFromString(body); err != nil {
		return "", fmt.Errorf("shell: request envelope: %w", err)
	}
	action := textAt(req.Root(), wsman.NsSOAP, "Header", wsman.NsAddressing, "Action")
	messageID := textAt(req.Root(), wsman.NsSOAP, "Header", wsman.NsAddressing, "MessageID")
	op := operation(action)
	resp, err := c.Transport.RoundTrip(ctx, &transport.Request{URL: c.Endpoint, Body: []byte(body)})
	if err != nil {
		return "", fmt.Errorf("%s on %s: %w", op, hostOf(c), err)
	}
	if err := c.CheckReply(op, resp); err != nil {
		return "", err
	}
	rep := etree.NewDocument()
	if err := rep.ReadFromBytes(resp.Body); err != nil {
		return "", fmt.Errorf("%s on %s: %w: %v", op, hostOf(c), wsman.ErrProtocol, err)
	}
	if got := textAt(rep.Root(), wsman.NsSOAP, "Header", wsman.NsAddressing, "RelatesTo"); got != messageID {
		return "", fmt.Errorf("%s on %s: %w: a:RelatesTo is %q, want our MessageID %q", op, hostOf(c), wsman.ErrProtocol, got, messageID)
	}
	return string(resp.Body), nil
}

// textAt returns the text of root/ns1:l1/ns2:l2, matched by namespace URI.
func textAt(root *etree.Element, ns1, l1, ns2, l2 string) string {
	if root == nil {
		return ""
	}
	for _, h := range root.ChildElements() {
		if h.Tag != l1 || h.NamespaceURI() != ns1 {
			continue
		}
		for _, e := range h.ChildElements() {
			if e.Tag == l2 && e.NamespaceURI() == ns2 {
				return strings.TrimSpace(e.Text())
			}
		}
	}
	return ""
}

// hostOf names the client's host in errors, as wsman does.
func hostOf(c *wsman.Client) string {
	if c.Host != "" {
		return c.Host
	}
	if u, err := url.Parse(c.Endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return c.Endpoint
}

// NewClient returns a masterzen/winrm Client that sends through t, with
// its own Parameters (never winrm.DefaultParameters, a shared global) set
// from t.Client's OperationTimeout, Locale and MaxEnvelopeSize.
func NewClient(t *Transporter) (*winrm.Client, error) {
	c := t.Client
	if c == nil {
		return nil, errors.New("shell: no wsman client configured")
	}
	ep, err := endpoint(c.Endpoint)
	if err != nil {
		return nil, err
	}
	p := parameters(c)
	p.TransportDecorator = func() winrm.Transporter { return t }
	wc, err := winrm.NewClientWithParameters(ep, "", "", p)
	if err != nil {
		return nil, fmt.Errorf("shell: client for %s: %w", hostOf(c), err)
	}
	return wc, nil
}

func parameters(c *wsman.Client) *winrm.Parameters {
	timeout := c.OperationTimeout
	if timeout <= 0 {
		timeout = wsman.DefaultOperationTimeout
	}
	locale := c.Locale
	if locale == "" {
		locale = wsman.DefaultLocale
	}
	size := c.MaxEnvelopeSize
	if size <= 0 {
		size = wsman.DefaultMaxEnvelopeSize
	}
	return winrm.NewParameters(wsman.FormatDuration(timeout), locale, size)
}

// endpoint turns http(s)://host:port/wsman into masterzen's Endpoint, which
// only shapes the wsa:To header: the transport posts to the URL itself.
func endpoint(raw string) (*winrm.Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("shell: endpoint %q is not an http(s) URL", raw)
	}
	port := 5985
	if u.Scheme == "https" {
		port = 5986
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("shell: endpoint %q: bad port", raw)
		}
		port = n
	}
	return &winrm.Endpoint{Host: u.Hostname(), Port: port, HTTPS: u.Scheme == "https"}, nil
}

// Result is what a command left behind.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// Run runs command (a cmd.exe command line) in a new shell on the host of
// c and returns its output and exit code. A command that ran and failed is
// not an error: its exit code says so. err is a *wsman.Fault, a
// *wsman.HTTPError, a transport error or the context's error, each naming
// the host and the step.
//
// When ctx ends, the HTTP call in flight is abandoned at once, and the
// command is terminated and the shell deleted under a fresh context
// bounded by CleanupTimeout; Run then returns ctx's error.
func Run(ctx context.Context, c *wsman.Client, command string) (stdout, stderr string, exitCode int, err error) {
	r, err := run(ctx, c, command)
	return r.Stdout, r.Stderr, r.ExitCode, err
}

// RunPowerShell runs script with powershell.exe -EncodedCommand (UTF-16LE,
// base64, after $ProgressPreference = 'SilentlyContinue' so that progress
// records do not end up on stderr), as winrm.Powershell builds it.
func RunPowerShell(ctx context.Context, c *wsman.Client, script string) (stdout, stderr string, exitCode int, err error) {
	line := winrm.Powershell(script)
	if line == "" {
		return "", "", 0, errors.New("shell: cannot encode the PowerShell script as UTF-16")
	}
	return Run(ctx, c, line)
}

func run(ctx context.Context, c *wsman.Client, command string) (Result, error) {
	if c == nil {
		return Result{}, errors.New("shell: no wsman client configured")
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("run command on %s: %w", hostOf(c), err)
	}
	if _, err := endpoint(c.Endpoint); err != nil {
		return Result{}, err
	}
	if err := checkCommand(command); err != nil {
		return Result{}, err
	}
	t := &Transporter{Client: c, Ctx: ctx}
	p := parameters(c)
	to := c.Endpoint // wsa:To: the endpoint as configured

	open := winrm.NewOpenShellRequest(to, p)
	rep, err := t.post(ctx, open)
	if err != nil {
		return Result{}, err
	}
	shellID, err := winrm.ParseOpenShellResponse(rep)
	if err != nil || shellID == "" {
		return Result{}, fmt.Errorf("create shell on %s: %w: no rsp:ShellId in the reply (%v)", hostOf(c), wsman.ErrProtocol, err)
	}
	var commandID string
	defer func() {
		// Clean up under a context of our own: ctx may be why we stop.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
		defer cancel()
		if commandID != "" {
			_, _ = t.post(cctx, winrm.NewSignalRequest(to, shellID, commandID, p))
		}
		_, _ = t.post(cctx, winrm.NewDeleteShellRequest(to, shellID, p))
	}()

	rep, err = t.post(ctx, winrm.NewExecuteCommandRequest(to, shellID, command, nil, p))
	if err != nil {
		return Result{}, err
	}
	if err := checkAction(c, "Command", rep, actionCommandResponse); err != nil {
		return Result{}, err
	}
	commandID, err = winrm.ParseExecuteCommandResponse(rep)
	if err != nil || commandID == "" {
		return Result{}, fmt.Errorf("command on %s: %w: no rsp:CommandId in the reply (%v)", hostOf(c), wsman.ErrProtocol, err)
	}

	out := &capped{max: DefaultMaxOutput}
	errOut := &capped{max: DefaultMaxOutput}
	for {
		if ctx.Err() != nil {
			// Checked here too, not only on a failed Receive: a host
			// that answers at once with no output must not keep us.
			return out.result(errOut, 0), fmt.Errorf("run command on %s: %w", hostOf(c), ctx.Err())
		}
		rep, err := t.post(ctx, winrm.NewGetOutputRequest(to, shellID, commandID, "stdout stderr", p))
		if err != nil {
			if ctx.Err() != nil {
				return out.result(errOut, 0), fmt.Errorf("run command on %s: %w", hostOf(c), ctx.Err())
			}
			if wsman.IsTimedOut(err) {
				// No output within OperationTimeout: the command still runs.
				continue
			}
			return out.result(errOut, 0), err
		}
		if err := checkAction(c, "Receive", rep, actionReceiveResponse); err != nil {
			return out.result(errOut, 0), err
		}
		done, code, err := winrm.ParseSlurpOutputErrResponse(rep, out, errOut)
		if err != nil {
			return out.result(errOut, 0), fmt.Errorf("receive on %s: %w: %v", hostOf(c), wsman.ErrProtocol, err)
		}
		if done {
			res := out.result(errOut, code)
			if out.over || errOut.over {
				return res, fmt.Errorf("run command on %s: %w", hostOf(c), ErrOutputTruncated)
			}
			return res, nil
		}
	}
}

// checkCommand refuses what masterzen cannot carry: it writes the command
// line verbatim into a CDATA section, so "]]>" would end it early (and let
// the rest be read as XML), and XML 1.0 has no way to send most control
// characters at all. RunPowerShell's base64 never contains either.
func checkCommand(command string) error {
	if strings.TrimSpace(command) == "" {
		return errors.New("shell: the command is empty")
	}
	if strings.Contains(command, "]]>") {
		return errors.New(`shell: the command contains "]]>", which cannot be sent inside the CDATA section of rsp:Command; use RunPowerShell, whose script is base64-encoded`)
	}
	if !utf8.ValidString(command) {
		return errors.New("shell: the command is not valid UTF-8")
	}
	for _, r := range command {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0xFFFE || r == 0xFFFF {
			return fmt.Errorf("shell: the command contains the character %U, which XML cannot carry; use RunPowerShell", r)
		}
	}
	return nil
}

// checkAction verifies a reply's Action, which masterzen's output parser
// does not look at.
func checkAction(c *wsman.Client, op, reply, want string) error {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(reply); err != nil {
		return fmt.Errorf("%s on %s: %w: %v", op, hostOf(c), wsman.ErrProtocol, err)
	}
	if got := textAt(doc.Root(), wsman.NsSOAP, "Header", wsman.NsAddressing, "Action"); got != want {
		return fmt.Errorf("%s on %s: %w: a:Action is %q, want %q", op, hostOf(c), wsman.ErrProtocol, got, want)
	}
	return nil
}

// capped keeps at most max bytes and remembers that more came.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

// Write keeps what fits and reports the whole of p as written, so that
// the parser filling it goes on reading (and the exit code is seen).
func (w *capped) Write(p []byte) (int, error) {
	n := len(p)
	if room := w.max - w.buf.Len(); n > room {
		w.over = true
		p = p[:max(room, 0)]
	}
	w.buf.Write(p)
	return n, nil
}

func (w *capped) result(stderr *capped, code int) Result {
	return Result{Stdout: w.buf.String(), Stderr: stderr.buf.String(), ExitCode: code}
}
