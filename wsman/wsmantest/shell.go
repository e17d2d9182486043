package wsmantest

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman"
)

// WinRS (MS-WSMV 3.1.4.x "Remote Shell") URIs.
const (
	// ShellResourceURI is the resource of cmd.exe shells.
	ShellResourceURI = wsman.NsShell + "/cmd"

	ActionShellCommand         = wsman.NsShell + "/Command"
	ActionShellCommandResponse = wsman.NsShell + "/CommandResponse"
	ActionShellReceive         = wsman.NsShell + "/Receive"
	ActionShellReceiveResponse = wsman.NsShell + "/ReceiveResponse"
	ActionShellSend            = wsman.NsShell + "/Send"
	ActionShellSendResponse    = wsman.NsShell + "/SendResponse"
	ActionShellSignal          = wsman.NsShell + "/Signal"
	ActionShellSignalResponse  = wsman.NsShell + "/SignalResponse"

	// CommandStateDone and CommandStateRunning are rsp:CommandState/@State.
	CommandStateDone    = wsman.NsShell + "/CommandState/Done"
	CommandStateRunning = wsman.NsShell + "/CommandState/Running"
	// SignalTerminate and SignalCtrlC are rsp:Signal/rsp:Code values.
	SignalTerminate = wsman.NsShell + "/signal/terminate"
	SignalCtrlC     = wsman.NsShell + "/signal/ctrl_c"
)

// maxReceiveChunk bounds the raw output one ReceiveResponse carries, so
// that its base64 stays well inside the default 150 KiB envelope; the rest
// waits for the next Receive, as WinRM splits large output.
const maxReceiveChunk = 64 << 10

// ActionHandler is an optional Provider interface for resources that are
// not WMI instances, such as the WinRS shell: the server hands it every
// request to its resource URI (Create, Delete and custom Actions alike)
// after header validation and authentication, under the request's
// OperationTimeout (a handler still blocked when it expires gets its
// context cancelled and the client gets w:TimedOut, which is how WinRM
// answers a Receive with no output).
type ActionHandler interface {
	Provider
	ServeAction(ctx context.Context, r *Request) (*Reply, error)
}

// Reply is an ActionHandler's answer: the reply Action and the children of
// s:Body. Body elements may use the prefixes s, a, x, w, p and rsp, which
// the reply envelope declares as Windows does. An empty a:Address in an
// x:ResourceCreated EPR is filled with the server's URL.
type Reply struct {
	Action string
	Body   []*etree.Element
}

// serveAction runs an ActionHandler and renders its reply.
func (s *Server) serveAction(ctx context.Context, p *parsed, h ActionHandler, req *Request) ([]byte, error) {
	rep, err := call(ctx, s, p.timeout, func(ctx context.Context) (*Reply, error) { return h.ServeAction(ctx, req) })
	if err != nil {
		return nil, err
	}
	if rep == nil {
		return nil, FaultInternalError("The provider returned no reply. ", 0x80004005)
	}
	// Prefix sets as in the captures: CreateResponse declares x and rsp,
	// DeleteResponse neither, shell replies rsp.
	prefixes := []string{"s", "a", "w", "rsp", "p"}
	switch rep.Action {
	case wsman.ActionCreateResponse:
		prefixes = []string{"s", "a", "x", "w", "rsp", "p"}
	case wsman.ActionDeleteResponse:
		prefixes = nsPlainWSMV
	}
	env := newEnvelope(rep.Action, p.messageID, prefixes)
	for _, el := range rep.Body {
		if el.Space == "x" && el.Tag == "ResourceCreated" {
			if a := el.SelectElement("a:Address"); a != nil && strings.TrimSpace(a.Text()) == "" {
				a.SetText(s.URL)
			}
		}
		env.body.AddChild(el)
	}
	if len(rep.Body) == 0 {
		env.body.CreateText("") // <s:Body></s:Body>, as wsman-delete-response.xml
	}
	return env.bytes(), nil
}

// Command is one command line a simulated shell runs.
type Command struct {
	ShellID string
	ID      string
	// Line is rsp:CommandLine/rsp:Command as sent, e.g.
	// "powershell.exe -EncodedCommand JAB...".
	Line      string
	Arguments []string
	// Options is the request's OptionSet (WINRS_CONSOLEMODE_STDIN, ...).
	Options []wsman.Option
	// User is the authenticated user who owns the shell.
	User string
}

// PowerShell returns the script of a "powershell[.exe] ... -EncodedCommand
// <base64 of UTF-16LE>" line (also -enc, -e, -ec, as powershell.exe takes
// any unique prefix), the form masterzen/winrm, pywinrm and Ansible send.
// ok is false for any other line or a payload that does not decode.
func (c *Command) PowerShell() (script string, ok bool) {
	f := strings.Fields(c.Line)
	if len(f) < 3 {
		return "", false
	}
	exe := strings.ToLower(f[0])
	exe = exe[strings.LastIndexAny(exe, `\/`)+1:]
	if exe != "powershell" && exe != "powershell.exe" {
		return "", false
	}
	for i := 1; i+1 < len(f); i++ {
		flag := strings.ToLower(f[i])
		if !strings.HasPrefix(flag, "-e") || !strings.HasPrefix("-encodedcommand", flag) {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(f[i+1])
		if err != nil || len(raw)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j]) | uint16(raw[2*j+1])<<8
		}
		return string(utf16.Decode(u)), true
	}
	return "", false
}

// Runner runs one command in a simulated shell: it writes the command's
// output to stdout and stderr (both safe for use from any goroutine and
// seen by the client on its next Receive) and returns the exit code. ctx
// is cancelled when the client signals terminate or ctrl_c, deletes the
// shell, or the Shell is closed; a Runner must then return promptly.
type Runner func(ctx context.Context, cmd *Command, stdout, stderr io.Writer) (exitCode int)

// CommandRecord is what a Shell remembers of one command, for tests.
type CommandRecord struct {
	ShellID, ID, Line string
	// Done says the Runner returned; ExitCode is then its result.
	Done     bool
	ExitCode int
	// Signal is the last rsp:Signal/rsp:Code received, if any.
	Signal string
	// Cancelled says the command's context was cancelled (signal or
	// shell deleted) while it still ran.
	Cancelled bool
}

// Shell is a simulated WinRS provider (the …/windows/shell/cmd resource):
// Create opens a shell, Command starts a Runner, Receive returns its
// output in base64 rsp:Stream elements and its exit code once Done, Signal
// stops it, Delete closes the shell. Register it with
// Server.Handle(ShellResourceURI, shell) and Close it after the server.
type Shell struct {
	run Runner

	mu      sync.Mutex
	shells  map[string]*shellState // key: upper-case ShellId
	history []*shellCmd
	wg      sync.WaitGroup
	closed  bool
}

type shellState struct {
	id, owner string
	cmds      map[string]*shellCmd // key: upper-case CommandId
}

type shellCmd struct {
	cmd     *Command
	cancel  context.CancelFunc
	stdout  bytes.Buffer // not yet received
	stderr  bytes.Buffer
	done    bool
	exit    int
	signal  string
	stopped bool          // ctx cancelled while running
	changed chan struct{} // closed and replaced on every change
	stdin   []byte        // what Send delivered
	ended   bool          // Send with End="true" seen
}

var _ ActionHandler = (*Shell)(nil)

// NewShell returns a shell provider whose commands run.
func NewShell(run Runner) *Shell {
	return &Shell{run: run, shells: map[string]*shellState{}}
}

// Close cancels every running command and waits for the Runners.
func (sh *Shell) Close() {
	sh.mu.Lock()
	sh.closed = true
	for _, st := range sh.shells {
		for _, c := range st.cmds {
			c.cancel()
		}
	}
	sh.mu.Unlock()
	sh.wg.Wait()
}

// Open returns the ids of the shells not yet deleted, in no order.
func (sh *Shell) Open() []string {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var ids []string
	for _, st := range sh.shells {
		ids = append(ids, st.id)
	}
	return ids
}

// History returns every command run so far, in order.
func (sh *Shell) History() []CommandRecord {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := make([]CommandRecord, len(sh.history))
	for i, c := range sh.history {
		out[i] = CommandRecord{
			ShellID: c.cmd.ShellID, ID: c.cmd.ID, Line: c.cmd.Line,
			Done: c.done, ExitCode: c.exit, Signal: c.signal, Cancelled: c.stopped,
		}
	}
	return out
}

// ServeAction implements ActionHandler.
func (sh *Shell) ServeAction(ctx context.Context, r *Request) (*Reply, error) {
	switch r.Action {
	case wsman.ActionCreate:
		return sh.create(r)
	case wsman.ActionDelete:
		return sh.delete(r)
	case ActionShellCommand:
		return sh.command(r)
	case ActionShellReceive:
		return sh.receive(ctx, r)
	case ActionShellSignal:
		return sh.signal(r)
	case ActionShellSend:
		return sh.send(r)
	}
	return nil, FaultActionNotSupported(r.Action)
}

// The plain WS-Transfer and enumeration operations are not those of a
// shell; WinRM answers them for shells, but nothing here needs them.

// Get implements Provider.
func (sh *Shell) Get(context.Context, *Request) (*wsman.Instance, error) {
	return nil, FaultActionNotSupported(wsman.ActionGet)
}

// Put implements Provider.
func (sh *Shell) Put(context.Context, *Request, *wsman.Instance) (*wsman.Instance, error) {
	return nil, FaultActionNotSupported(wsman.ActionPut)
}

// Invoke implements Provider.
func (sh *Shell) Invoke(_ context.Context, r *Request, _ string, _ *wsman.Instance) (*wsman.Instance, error) {
	return nil, FaultActionNotSupported(r.Action)
}

// Enumerate implements Provider; it lists no shells.
func (sh *Shell) Enumerate(context.Context, *EnumerateRequest) ([]*wsman.Instance, error) {
	return nil, nil
}

// Texts WinRM's shell plugin (WsmSvc.dll) sends.
const (
	shellProviderName = "Shell provider"
	textShellNotFound = "The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. Provide the correct ShellId or create a new shell and retry the operation. "
	textBadCommandID  = "The Windows Remote Shell received a request to perform an operation on a command identifier that does not exist. Either the command has completed execution or the client specified an invalid command identifier. Check the command identifier and retry the operation. "
)

// faultShellNotFound is the w:InvalidSelectors fault WinRM answers for an
// unknown or missing ShellId: code 0x8033805B with a nested Shell provider
// fault, the shape wsman-wire.md §2.2 quotes from a real capture.
func faultShellNotFound(id string) *wsman.Fault {
	text := strings.Replace(textShellNotFound, "%s", id, 1)
	f := newFault("Sender", wsman.NsWSMan, "InvalidSelectors", CodeUnexpectedSelectors, textUnexpectedSelectors, "")
	f.Detail = wsman.FaultDetailBase + "UnexpectedSelectors"
	f.ProviderFault = &wsman.ProviderFault{Provider: shellProviderName, Path: svcProviderPath, Text: text, WSManCode: CodeUnexpectedSelectors}
	return f
}

// faultBadCommandID answers a CommandId the shell does not know
// (ERROR_WSMAN_INVALID_COMMANDID 0x80338089, w:InvalidParameter).
func faultBadCommandID() *wsman.Fault {
	f := newFault("Sender", wsman.NsWSMan, "InvalidParameter", 0x80338089, textBadCommandID, "")
	f.Detail = wsman.FaultDetailBase + "InvalidValue"
	f.ProviderFault = &wsman.ProviderFault{Provider: shellProviderName, Path: svcProviderPath, Text: textBadCommandID, WSManCode: 0x80338089}
	return f
}

func faultShellSchema() *wsman.Fault {
	return newFault("Sender", wsman.NsWSMan, "SchemaValidationError", CodeSchemaValidation, textSchemaValidation, textSchemaValidation)
}

// lookupShell finds the shell of r's ShellId selector. Callers hold sh.mu.
func (sh *Shell) lookupShell(r *Request) (*shellState, error) {
	id, ok := r.Selector("ShellId")
	if !ok {
		return nil, FaultInsufficientSelectors()
	}
	st := sh.shells[strings.ToUpper(id)]
	if st == nil {
		return nil, faultShellNotFound(id)
	}
	return st, nil
}

func (sh *Shell) create(r *Request) (*Reply, error) {
	body := r.Body
	if !isNS(body, wsman.NsShell, "Shell") {
		return nil, newFault("Sender", wsman.NsTransfer, "InvalidRepresentation", CodeInvalidRepresentation, textInvalidRepresent, textInvalidRepresent)
	}
	in := textOf(child(body, wsman.NsShell, "InputStreams"))
	out := textOf(child(body, wsman.NsShell, "OutputStreams"))
	sh.mu.Lock()
	if sh.closed {
		sh.mu.Unlock()
		return nil, FaultInternalError("The shell provider is shutting down. ", 0x80004005)
	}
	id := newUUID()
	sh.shells[id] = &shellState{id: id, owner: r.User, cmds: map[string]*shellCmd{}}
	sh.mu.Unlock()

	rc := etree.NewElement("x:ResourceCreated")
	rc.CreateElement("a:Address")
	rp := rc.CreateElement("a:ReferenceParameters")
	rp.CreateElement("w:ResourceURI").SetText(ShellResourceURI)
	sel := rp.CreateElement("w:SelectorSet").CreateElement("w:Selector")
	sel.CreateAttr("Name", "ShellId")
	sel.SetText(id)
	shell := etree.NewElement("rsp:Shell")
	shell.CreateAttr("xmlns:rsp", wsman.NsShell)
	for _, kv := range [][2]string{
		{"ShellId", id}, {"ResourceUri", ShellResourceURI}, {"Owner", r.User}, {"ClientIP", "127.0.0.1"},
		{"IdleTimeOut", "PT7200.000S"}, {"InputStreams", in}, {"OutputStreams", out},
		{"ShellRunTime", "P0DT0H0M0S"}, {"ShellInactivity", "P0DT0H0M0S"},
	} {
		shell.CreateElement("rsp:" + kv[0]).SetText(kv[1])
	}
	return &Reply{Action: wsman.ActionCreateResponse, Body: []*etree.Element{rc, shell}}, nil
}

func (sh *Shell) delete(r *Request) (*Reply, error) {
	sh.mu.Lock()
	st, err := sh.lookupShell(r)
	if err == nil {
		for _, c := range st.cmds {
			sh.stopLocked(c)
		}
		delete(sh.shells, st.id)
	}
	sh.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &Reply{Action: wsman.ActionDeleteResponse}, nil
}

// stopLocked cancels a command that still runs. Callers hold sh.mu.
func (sh *Shell) stopLocked(c *shellCmd) {
	if !c.done {
		c.stopped = true
	}
	c.cancel()
}

func (sh *Shell) command(r *Request) (*Reply, error) {
	cl := r.Body
	if !isNS(cl, wsman.NsShell, "CommandLine") {
		return nil, faultShellSchema()
	}
	cmdEl := child(cl, wsman.NsShell, "Command")
	if cmdEl == nil {
		return nil, faultShellSchema()
	}
	cmd := &Command{Line: strings.TrimSpace(cmdEl.Text()), Options: r.OptionSet, User: r.User}
	for _, a := range cl.ChildElements() {
		if isNS(a, wsman.NsShell, "Arguments") {
			cmd.Arguments = append(cmd.Arguments, a.Text())
		}
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st, err := sh.lookupShell(r)
	if err != nil {
		return nil, err
	}
	if sh.closed {
		return nil, FaultInternalError("The shell provider is shutting down. ", 0x80004005)
	}
	cmd.ShellID, cmd.ID = st.id, newUUID()
	ctx, cancel := context.WithCancel(context.Background())
	c := &shellCmd{cmd: cmd, cancel: cancel, changed: make(chan struct{})}
	st.cmds[cmd.ID] = c
	sh.history = append(sh.history, c)
	sh.wg.Add(1)
	go func() {
		defer sh.wg.Done()
		code := sh.run(ctx, cmd, &streamWriter{sh, c, false}, &streamWriter{sh, c, true})
		sh.mu.Lock()
		c.done, c.exit = true, code
		c.notifyLocked()
		sh.mu.Unlock()
		cancel()
	}()
	resp := etree.NewElement("rsp:CommandResponse")
	resp.CreateElement("rsp:CommandId").SetText(cmd.ID)
	return &Reply{Action: ActionShellCommandResponse, Body: []*etree.Element{resp}}, nil
}

// notifyLocked wakes Receives waiting for c. Callers hold sh.mu.
func (c *shellCmd) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// streamWriter appends a Runner's output to its command's pending stream.
type streamWriter struct {
	sh     *Shell
	c      *shellCmd
	stderr bool
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.sh.mu.Lock()
	defer w.sh.mu.Unlock()
	if w.stderr {
		w.c.stderr.Write(p)
	} else {
		w.c.stdout.Write(p)
	}
	w.c.notifyLocked()
	return len(p), nil
}

// lookupCommand finds the command a Receive, Signal or Send names in its
// CommandId attribute. Callers hold sh.mu.
func (sh *Shell) lookupCommand(r *Request, el *etree.Element) (*shellCmd, error) {
	st, err := sh.lookupShell(r)
	if err != nil {
		return nil, err
	}
	id := el.SelectAttrValue("CommandId", "")
	c := st.cmds[strings.ToUpper(id)]
	if c == nil {
		return nil, faultBadCommandID()
	}
	return c, nil
}

func (sh *Shell) receive(ctx context.Context, r *Request) (*Reply, error) {
	if !isNS(r.Body, wsman.NsShell, "Receive") {
		return nil, faultShellSchema()
	}
	ds := child(r.Body, wsman.NsShell, "DesiredStream")
	if ds == nil {
		return nil, faultShellSchema()
	}
	for {
		sh.mu.Lock()
		c, err := sh.lookupCommand(r, ds)
		if err != nil {
			sh.mu.Unlock()
			return nil, err
		}
		if c.stdout.Len() > 0 || c.stderr.Len() > 0 || c.done {
			rep := c.receiveReplyLocked()
			sh.mu.Unlock()
			return rep, nil
		}
		wait := c.changed
		sh.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// receiveReplyLocked takes up to maxReceiveChunk of pending output into a
// ReceiveResponse; the state is Done (with End streams and the exit code)
// only once everything was taken. Callers hold sh.mu.
func (c *shellCmd) receiveReplyLocked() *Reply {
	id := c.cmd.ID
	resp := etree.NewElement("rsp:ReceiveResponse")
	budget := maxReceiveChunk
	for _, s := range []struct {
		name string
		buf  *bytes.Buffer
	}{{"stdout", &c.stdout}, {"stderr", &c.stderr}} {
		if s.buf.Len() == 0 || budget == 0 {
			continue
		}
		chunk := s.buf.Next(min(budget, s.buf.Len()))
		budget -= len(chunk)
		st := resp.CreateElement("rsp:Stream")
		st.CreateAttr("Name", s.name)
		st.CreateAttr("CommandId", id)
		st.SetText(base64.StdEncoding.EncodeToString(chunk))
	}
	done := c.done && c.stdout.Len() == 0 && c.stderr.Len() == 0
	if done {
		for _, name := range []string{"stdout", "stderr"} {
			st := resp.CreateElement("rsp:Stream")
			st.CreateAttr("Name", name)
			st.CreateAttr("CommandId", id)
			st.CreateAttr("End", "true")
		}
	}
	cs := resp.CreateElement("rsp:CommandState")
	cs.CreateAttr("CommandId", id)
	if done {
		cs.CreateAttr("State", CommandStateDone)
		cs.CreateElement("rsp:ExitCode").SetText(strconv.Itoa(c.exit))
	} else {
		cs.CreateAttr("State", CommandStateRunning)
	}
	return &Reply{Action: ActionShellReceiveResponse, Body: []*etree.Element{resp}}
}

func (sh *Shell) signal(r *Request) (*Reply, error) {
	if !isNS(r.Body, wsman.NsShell, "Signal") {
		return nil, faultShellSchema()
	}
	code := textOf(child(r.Body, wsman.NsShell, "Code"))
	if code != SignalTerminate && code != SignalCtrlC && code != wsman.NsShell+"/signal/ctrl_break" {
		return nil, FaultInvalidParameter("", 0)
	}
	sh.mu.Lock()
	c, err := sh.lookupCommand(r, r.Body)
	if err == nil {
		c.signal = code
		sh.stopLocked(c)
		if code == SignalTerminate {
			// A terminated command is gone; its id is no longer valid.
			delete(sh.shells[strings.ToUpper(c.cmd.ShellID)].cmds, c.cmd.ID)
		}
	}
	sh.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &Reply{Action: ActionShellSignalResponse, Body: []*etree.Element{etree.NewElement("rsp:SignalResponse")}}, nil
}

func (sh *Shell) send(r *Request) (*Reply, error) {
	if !isNS(r.Body, wsman.NsShell, "Send") {
		return nil, faultShellSchema()
	}
	st := child(r.Body, wsman.NsShell, "Stream")
	if st == nil {
		return nil, faultShellSchema()
	}
	data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(st.Text()))
	if err != nil {
		return nil, FaultInvalidParameter("", 0)
	}
	sh.mu.Lock()
	c, ferr := sh.lookupCommand(r, st)
	if ferr == nil {
		c.stdin = append(c.stdin, data...)
		if v := st.SelectAttrValue("End", ""); v == "true" || v == "1" {
			c.ended = true
		}
		c.notifyLocked()
	}
	sh.mu.Unlock()
	if ferr != nil {
		return nil, ferr
	}
	return &Reply{Action: ActionShellSendResponse, Body: []*etree.Element{etree.NewElement("rsp:SendResponse")}}, nil
}
