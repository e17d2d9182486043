package bitsprov

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// Resource URIs of the provider's classes (MS-WSMV 3.1.4.1.1: the WMI
// prefix, the namespace root/microsoft/bits, the class). The class part is
// case-sensitive for Invoke and must match the _INPUT element's namespace.
const (
	ResourceURI         = wsman.ResourceWMI + "/root/microsoft/bits/BitsClientJob"
	FileResourceURI     = wsman.ResourceWMI + "/root/microsoft/bits/BitsClientFile"
	URLGroupResourceURI = wsman.ResourceWMI + "/root/microsoft/bits/BitsCompactServerUrlGroup"
)

// DefaultLanguageID is the LANGID the poller asks GetError for: 1033
// (en-US), so descriptions are in one language whatever the host's locale.
const DefaultLanguageID = 1033

// Client calls the BITS provider on one host.
type Client struct {
	// WSMan is the connection to the host.
	WSMan *wsman.Client
}

// NewClient returns a Client over w.
func NewClient(w *wsman.Client) *Client { return &Client{WSMan: w} }

func (c *Client) host() string { return c.Host() }

// Host is how errors name the host this client works on: the wsman
// client's Host, else the endpoint's host:port. Callers that report
// errors of their own about the host (the fleet's shared reads) use it
// too, so that every message names the host the same way.
func (c *Client) Host() string {
	if c.WSMan == nil {
		return "(no host)"
	}
	if c.WSMan.Host != "" {
		return c.WSMan.Host
	}
	if u, err := url.Parse(c.WSMan.Endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return c.WSMan.Endpoint
}

// param is one method input value; nil values are sent as xsi:nil and
// multi-valued ones as repeated elements.
type param struct {
	name   string
	values []string
	nil    bool
}

func p(name, v string) param { return param{name: name, values: []string{v}} }

func pu(name string, v uint64) param { return p(name, strconv.FormatUint(v, 10)) }

func pb(name string, v bool) param { return p(name, strconv.FormatBool(v)) }

func inputInstance(resourceURI, method string, params []param) *wsman.Instance {
	in := &wsman.Instance{ClassName: method + "_INPUT", ResourceURI: resourceURI}
	for _, pr := range params {
		prop := wsman.Property{Name: pr.name}
		if pr.nil {
			prop.Values = []wsman.Value{{Kind: wsman.KindNil}}
		}
		for _, v := range pr.values {
			prop.Values = append(prop.Values, wsman.Value{Kind: wsman.KindText, Text: v})
		}
		in.Props = append(in.Props, prop)
	}
	return in
}

// opName is "SetJobState on {GUID}" or "CreateJob".
func opName(method, key string) string {
	if key == "" {
		return method
	}
	return method + " on " + key
}

// wrap turns a wsman error into ours: a not-found fault becomes a
// *NotFoundError (errors.Is ErrNotFound), a missing namespace or class
// matches ErrProviderMissing; the fault stays reachable with errors.As.
// The message names the host and the provider's operation once ("host:
// SetJobState on {id}: WS-Management fault …"), followed by what the
// wsman error says beyond its own host and operation.
func (c *Client) wrap(method, key string, err error) error {
	if err == nil {
		return nil
	}
	var f *wsman.Fault
	if errors.As(err, &f) {
		if providerMissing(f) {
			return &opError{host: c.host(), op: opName(method, key), err: err, kind: ErrProviderMissing}
		}
		if key != "" && wsman.IsNotFound(err) {
			return &NotFoundError{Host: c.host(), Op: method, Key: key, Err: err}
		}
	}
	return &opError{host: c.host(), op: opName(method, key), err: err}
}

// opError is a wsman failure of one provider operation.
type opError struct {
	host, op string
	err      error
	// kind, if set, is a sentinel the error also matches, named in the
	// message before the cause (ErrProviderMissing).
	kind error
}

func (e *opError) Error() string {
	s := e.host + ": " + e.op + ": "
	if e.kind != nil {
		s += e.kind.Error() + ": "
	}
	return s + detail(e.err, e.host, e.op)
}

func (e *opError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.err, e.kind}
	}
	return []error{e.err}
}

// detail is what a wsman error says beyond the host and the operation op,
// which the caller names itself: a *wsman.Fault or *wsman.HTTPError
// without its "host: operation: " prefix, an error wsman wrapped as
// "operation resource on host: cause" as its cause, and an ambiguous
// outcome as the detail of its failure with the warning after it. A
// wsman operation other than op's (a Pull within an Enumerate listing)
// is kept, so the message says which request failed.
func detail(err error, host, op string) string {
	switch e := err.(type) {
	case *wsman.AmbiguousError:
		return detail(e.Err, host, op) + " (" + wsman.ErrAmbiguous.Error() + ")"
	case *wsman.Fault:
		return otherOp(e.Operation, op) + strings.TrimPrefix(e.Error(), e.Host+": "+e.Operation+": ")
	case *wsman.HTTPError:
		return otherOp(e.Operation, op) + strings.TrimPrefix(e.Error(), e.Host+": "+e.Operation+": ")
	case *NotFoundError:
		return strings.TrimPrefix(e.Error(), e.Host+": ")
	}
	msg := err.Error()
	if cause := errors.Unwrap(err); cause != nil {
		if prefix, ok := strings.CutSuffix(msg, ": "+cause.Error()); ok && strings.HasSuffix(prefix, " on "+host) {
			// "invoke SetJobState http://… on host": the operation is
			// what precedes the resource URI.
			wop := strings.TrimSuffix(prefix, " on "+host)
			if i := strings.LastIndexByte(wop, ' '); i >= 0 && strings.Contains(wop[i+1:], "/") {
				wop = wop[:i]
			}
			if wop != "" {
				wop = strings.ToUpper(wop[:1]) + wop[1:]
			}
			return otherOp(wop, op) + detail(cause, host, op)
		}
	}
	return msg
}

// otherOp is "Pull: " when wsman's operation wop (its last word: "Invoke
// SetJobState" is SetJobState) is not the one op starts with, else "".
func otherOp(wop, op string) string {
	if i := strings.LastIndexByte(wop, ' '); i >= 0 {
		wop = wop[i+1:]
	}
	first, _, _ := strings.Cut(op, " ")
	if wop == "" || strings.EqualFold(wop, first) {
		return ""
	}
	return wop + ": "
}

// providerMissing reports a fault that says root\microsoft\bits or the
// class is not there (the Compact Server feature is not installed).
func providerMissing(f *wsman.Fault) bool {
	for _, code := range []uint32{f.WSManCode, providerFaultCode(f)} {
		if Code(code) == CodeWBEMInvalidNamespace || Code(code) == CodeWBEMInvalidClass {
			return true
		}
	}
	if f.WMIError != nil {
		// MSFT_WmiError carries error_Code, __ExtendedStatus StatusCode.
		p := props{f.WMIError}
		for _, name := range []string{"error_Code", "StatusCode"} {
			if n, ok, err := p.uint(name, 32); err == nil && ok {
				if Code(n) == CodeWBEMInvalidNamespace || Code(n) == CodeWBEMInvalidClass {
					return true
				}
			}
		}
	}
	return false
}

func providerFaultCode(f *wsman.Fault) uint32 {
	if f.ProviderFault != nil {
		return f.ProviderFault.WSManCode
	}
	return 0
}

// invoke calls a method and checks ReturnValue. A failing ReturnValue is a
// *ReturnError; a non-zero success (BG_S_*) is returned as the Code.
func (c *Client) invoke(ctx context.Context, resourceURI, method, selName, key string, params []param) (*wsman.Instance, Code, error) {
	return c.invokeOpts(ctx, resourceURI, method, selName, key, params, false)
}

// invokeOpts is invoke; idempotent declares a method that only reads
// (GetError), which wsman may then repeat like a Get.
func (c *Client) invokeOpts(ctx context.Context, resourceURI, method, selName, key string, params []param, idempotent bool) (*wsman.Instance, Code, error) {
	if c.WSMan == nil {
		return nil, 0, fmt.Errorf("bitsprov: %s: Client has no WSMan connection", opName(method, key))
	}
	opts := wsman.Options{Idempotent: idempotent}
	if selName != "" {
		opts.Selectors = []wsman.Selector{{Name: selName, Value: key}}
	}
	out, err := c.WSMan.Invoke(ctx, resourceURI, method, opts, inputInstance(resourceURI, method, params))
	if err != nil {
		return nil, 0, c.wrap(method, key, err)
	}
	if out == nil {
		return nil, 0, fmt.Errorf("%s: %s: empty %s_OUTPUT: %w", c.host(), opName(method, key), method, wsman.ErrProtocol)
	}
	rv, ok, err := props{out}.uint("ReturnValue", 32)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %s: %w", c.host(), opName(method, key), err)
	}
	if !ok {
		return nil, 0, fmt.Errorf("%s: %s: %s has no ReturnValue: %w", c.host(), opName(method, key), out.ClassName, wsman.ErrProtocol)
	}
	code := Code(rv)
	if code.Failed() || (code != 0 && !isSuccessCode(code)) {
		return out, code, &ReturnError{Host: c.host(), Method: method, JobID: key, Code: uint32(code)}
	}
	return out, code, nil
}

// isSuccessCode reports the non-zero ReturnValues that mean success: the
// HRESULT successes of Bitsmsg.h (facility 0x20, severity clear). Any
// other non-zero value is treated as a failure, because the provider's
// return values are undocumented (bits-provider.md §1.4).
func isSuccessCode(c Code) bool { return c&0xFFFF0000 == 0x00200000 || c == 1 }

func (c *Client) invokeJob(ctx context.Context, method, jobID string, params []param) (*wsman.Instance, Code, error) {
	if jobID == "" {
		return nil, 0, fmt.Errorf("bitsprov: %s: empty JobId", method)
	}
	return c.invoke(ctx, ResourceURI, method, "JobId", jobID, params)
}

// FileSpec is one remote URL and local path pair.
type FileSpec struct {
	RemoteURL string
	LocalFile string
}

// Credential is one SetCredentials call. The password is sent in the SOAP
// body in clear text: use HTTPS or message encryption.
type Credential struct {
	Target   CredentialTarget
	Scheme   CredentialScheme
	UserName string
	Password string
}

// ProxySettings is one SetProxySettings call.
type ProxySettings struct {
	Usage ProxyUsage
	// List and Bypass are used only with ProxyOverride; they are sent
	// space-delimited, so an entry must not contain spaces.
	List   []string
	Bypass []string
}

// CreateJobOptions describe a job to create. Only DisplayName, RemoteURL
// and LocalFile are required.
type CreateJobOptions struct {
	DisplayName string
	RemoteURL   string
	LocalFile   string
	// Type is Download (default) or Upload; the provider has no UploadReply.
	Type JobType
	// ServiceAccount owns the job; nil leaves the provider default
	// (NetworkService).
	ServiceAccount *ServiceAccount
	Description    string
	// Suspended leaves the job suspended after setup instead of resuming it.
	Suspended bool
	// Priority, when set, is applied with Get/Put after creation.
	Priority *Priority
	// MinimumRetryDelay and NoProgressTimeout, when non-zero, are applied
	// with Get/Put; they are whole seconds on the wire.
	MinimumRetryDelay time.Duration
	NoProgressTimeout time.Duration
	// ExtraFiles are added with AddFile (download jobs only).
	ExtraFiles  []FileSpec
	Credentials []Credential
	Proxy       *ProxySettings
	// CancelOnSetupFailure cancels the job when a step after CreateJob
	// fails. Without it the job is left (suspended) for the caller.
	CancelOnSetupFailure bool
	// Marker is a string unique to this job, appended to its Description
	// (see DescriptionWithMarker) so that the job can be found again after
	// a failure that leaves open whether it was created. Empty means a new
	// NewMarker(); a caller that records its intent before creating (a
	// ledger) passes its own.
	Marker string
}

// SetupError is a step after CreateJob that failed: the job exists on the
// host (JobID) and is suspended unless Cancelled is true.
type SetupError struct {
	Host  string
	JobID string
	// Step is the method that failed ("AddFile", "Put", "SetCredentials",
	// "SetProxySettings", "SetJobState", or "Get" when SetupJob, resuming,
	// could not read the job's files).
	Step string
	Err  error
	// Cancelled reports that CancelOnSetupFailure cancelled the job;
	// CancelErr is set when that cancel failed too.
	Cancelled bool
	CancelErr error
}

func (e *SetupError) Error() string {
	s := fmt.Sprintf("%s: CreateJob: job %s was created but %s failed", e.Host, e.JobID, e.Step)
	switch {
	case e.Cancelled:
		s += " (job cancelled)"
	case e.CancelErr != nil:
		s += fmt.Sprintf(" (cancelling the job failed too: %v)", e.CancelErr)
	default:
		s += " (job left on the host)"
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the step's error.
func (e *SetupError) Unwrap() error { return e.Err }

func validDuration(what string, d time.Duration) error {
	if d < 0 || d%time.Second != 0 || d/time.Second > math.MaxUint32 {
		return fmt.Errorf("bitsprov: %s %v must be whole seconds between 0 and %d", what, d, uint32(math.MaxUint32))
	}
	return nil
}

func (o *CreateJobOptions) validate() error {
	switch {
	case o.DisplayName == "":
		return errors.New("bitsprov: CreateJob: DisplayName is required")
	case o.RemoteURL == "":
		return errors.New("bitsprov: CreateJob: RemoteURL is required")
	case o.LocalFile == "":
		return errors.New("bitsprov: CreateJob: LocalFile is required")
	case o.Type != TypeDownload && o.Type != TypeUpload:
		return fmt.Errorf("bitsprov: CreateJob: job type %v is not supported by the provider (Download or Upload)", o.Type)
	case o.ServiceAccount != nil && !o.ServiceAccount.Valid():
		return fmt.Errorf("bitsprov: CreateJob: invalid service account %v", *o.ServiceAccount)
	}
	return o.validateSetup("CreateJob")
}

// validateSetup checks the options the steps after CreateJob apply.
func (o *CreateJobOptions) validateSetup(op string) error {
	switch {
	case o.Priority != nil && !o.Priority.Valid():
		return fmt.Errorf("bitsprov: %s: invalid priority %v", op, *o.Priority)
	case o.Type == TypeUpload && len(o.ExtraFiles) > 0:
		return fmt.Errorf("bitsprov: %s: an upload job holds exactly one file (BG_E_TOO_MANY_FILES)", op)
	}
	for i, f := range o.ExtraFiles {
		if f.RemoteURL == "" || f.LocalFile == "" {
			return fmt.Errorf("bitsprov: %s: extra file %d needs both RemoteURL and LocalFile", op, i+1)
		}
	}
	if err := validDuration("MinimumRetryDelay", o.MinimumRetryDelay); err != nil {
		return err
	}
	if err := validDuration("NoProgressTimeout", o.NoProgressTimeout); err != nil {
		return err
	}
	for _, cr := range o.Credentials {
		if err := validateCredential(cr.Target, cr.Scheme); err != nil {
			return err
		}
	}
	if o.Proxy != nil {
		if err := validateProxy(o.Proxy.Usage, o.Proxy.List, o.Proxy.Bypass); err != nil {
			return err
		}
	}
	return nil
}

// CreateJob creates a job the safe way (bits-provider.md §1.4): CreateJob
// as a static method with Suspend=true, so nothing transfers before the
// job is configured; then AddFile for each extra file, one Get/Put for the
// properties, SetCredentials, SetProxySettings, and SetJobState Resume
// unless o.Suspended. If a step after creation fails, the JobId is
// returned together with a *SetupError, so a created job is never lost.
//
// The job is created at most once. Its Description carries o.Marker (a
// new one when empty); when the CreateJob call fails in a way that leaves
// open whether the host created the job (wsman.ErrAmbiguous), the queue
// is searched for the marker: a job found is adopted and set up, and only
// when none is found is CreateJob sent again. A call WinRM provably never
// saw (503, no connection) is sent again directly. The setup steps are
// repeated after such failures only where repeating is harmless (Put of
// absolute values, credentials, proxy, Resume) or checked first (AddFile).
// If the outcome stays unknown, the error is a *CreateUnknownError naming
// the marker, which FindJobByMarker resolves later.
func (c *Client) CreateJob(ctx context.Context, o CreateJobOptions) (string, error) {
	if err := o.validate(); err != nil {
		return "", err
	}
	if c.WSMan == nil {
		return "", errors.New("bitsprov: CreateJob: Client has no WSMan connection")
	}
	if len(o.Credentials) > 0 {
		// Checked before the job exists, so that nothing is left behind.
		if err := c.checkConfidential("CreateJob"); err != nil {
			return "", err
		}
	}
	marker := o.Marker
	if marker == "" {
		marker = NewMarker()
	}
	desc, err := DescriptionWithMarker(o.Description, marker)
	if err != nil {
		return "", err
	}
	params := []param{
		p("DisplayName", o.DisplayName),
		p("RemoteUrl", o.RemoteURL),
		p("LocalFile", o.LocalFile),
	}
	if o.ServiceAccount != nil {
		params = append(params, pu("ServiceAccount", uint64(*o.ServiceAccount)))
	}
	params = append(params, pu("Type", uint64(o.Type)), pb("Suspend", true), p("Description", desc))
	id, err := c.createOnce(ctx, marker, params)
	if err != nil {
		return "", err
	}
	if se := c.setup(ctx, id, &o, false); se != nil {
		if o.CancelOnSetupFailure {
			// The setup failure may be ctx itself; the cancel must still go out.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelGrace)
			_, se.CancelErr = c.SetJobState(cctx, id, ActionCancel)
			cancel()
			se.Cancelled = se.CancelErr == nil
		}
		return id, se
	}
	return id, nil
}

// createOnce sends CreateJob until the job exists, checking the queue for
// the marker after every failure that may have created it.
func (c *Client) createOnce(ctx context.Context, marker string, params []param) (string, error) {
	pol := c.WSMan.Retry.WithDefaults()
	for attempt := 1; ; attempt++ {
		out, _, err := c.invoke(ctx, ResourceURI, "CreateJob", "", "", params)
		if err == nil {
			id, _, err := props{out}.value("JobId")
			if err != nil || id == "" {
				return "", fmt.Errorf("%s: CreateJob: %s has no JobId: %w", c.host(), out.ClassName, wsman.ErrProtocol)
			}
			return id, nil
		}
		ambiguous := wsman.IsAmbiguous(err)
		if !ambiguous && !wsman.IsTransient(err) {
			return "", err
		}
		if ambiguous {
			j, ferr := c.FindJobByMarker(ctx, marker)
			switch {
			case ferr != nil:
				return "", &CreateUnknownError{Host: c.host(), Marker: marker, Err: err, CheckErr: ferr}
			case j != nil:
				return j.JobID, nil
			}
			// Not in the queue: the host never created it.
		}
		if attempt >= pol.Attempts || ctx.Err() != nil {
			if ambiguous {
				// Checked absent just now; still say so, and name the
				// marker, so the caller can look once more.
				return "", &CreateUnknownError{Host: c.host(), Marker: marker, Err: err}
			}
			return "", err
		}
		if serr := sleep(ctx, pol.Pause(attempt)); serr != nil {
			if ambiguous {
				return "", &CreateUnknownError{Host: c.host(), Marker: marker, Err: err}
			}
			return "", err
		}
	}
}

// cancelGrace bounds the clean-up cancel after a failed setup.
const cancelGrace = 30 * time.Second

// SetupJob takes the steps CreateJob takes after creating a job, on job
// id: AddFile for each of o.ExtraFiles, one Get/Put for Priority,
// MinimumRetryDelay and NoProgressTimeout, SetCredentials,
// SetProxySettings, and SetJobState Resume unless o.Suspended; the
// options that only CreateJob sends (DisplayName, RemoteURL, LocalFile,
// ServiceAccount, Description, Marker) are not used. It is for a caller
// that creates the job itself (suspended, with no more than those) and
// records the JobId before setting the job up, like a ledger; the steps
// are repeated after passing or ambiguous failures exactly as CreateJob
// repeats them.
//
// With resuming (a previous setup of this job may have been cut short,
// for example by a killed process), the job is read first and the extra
// files it already holds are not added again.
//
// A failed step returns a *SetupError. SetupJob does not cancel the job,
// whatever o.CancelOnSetupFailure says: a caller that cancels can record
// that in the SetupError's Cancelled and CancelErr.
func (c *Client) SetupJob(ctx context.Context, id string, o CreateJobOptions, resuming bool) error {
	if err := o.validateSetup("SetupJob"); err != nil {
		return err
	}
	if c.WSMan == nil {
		return errors.New("bitsprov: SetupJob: Client has no WSMan connection")
	}
	if id == "" {
		return errors.New("bitsprov: SetupJob: empty JobId")
	}
	if se := c.setup(ctx, id, &o, resuming); se != nil {
		return se
	}
	return nil
}

// setup runs the steps after CreateJob; its result is a *SetupError, not
// an error, so that CreateJob can fill in the cancel without asserting.
func (c *Client) setup(ctx context.Context, id string, o *CreateJobOptions, resuming bool) *SetupError {
	fail := func(step string, err error) *SetupError {
		return &SetupError{Host: c.host(), JobID: id, Step: step, Err: err}
	}
	extra := o.ExtraFiles
	if resuming && len(extra) > 0 {
		j, err := c.Job(ctx, id)
		if err != nil {
			return fail("Get", err)
		}
		extra = missingFiles(j, extra)
	}
	for _, f := range extra {
		err := c.again(ctx, func() error { return c.AddFile(ctx, id, f.RemoteURL, f.LocalFile) }, func() (bool, error) {
			return c.hasFile(ctx, id, f)
		})
		if err != nil {
			return fail("AddFile", err)
		}
	}
	set := map[string]string{}
	if o.Priority != nil {
		set["Priority"] = strconv.FormatUint(uint64(*o.Priority), 10)
	}
	if o.MinimumRetryDelay != 0 {
		set["MinimumRetryDelay"] = strconv.FormatInt(int64(o.MinimumRetryDelay/time.Second), 10)
	}
	if o.NoProgressTimeout != 0 {
		set["NoProgressTimeout"] = strconv.FormatInt(int64(o.NoProgressTimeout/time.Second), 10)
	}
	if len(set) > 0 {
		// Absolute values: a second Put leaves the same job.
		if err := c.again(ctx, func() error { _, err := c.SetProperties(ctx, id, set); return err }, nil); err != nil {
			return fail("Put", err)
		}
	}
	for _, cr := range o.Credentials {
		err := c.again(ctx, func() error {
			return c.SetCredentials(ctx, id, cr.Target, cr.Scheme, cr.UserName, cr.Password)
		}, nil)
		if err != nil {
			return fail("SetCredentials", err)
		}
	}
	if o.Proxy != nil {
		err := c.again(ctx, func() error {
			return c.SetProxySettings(ctx, id, o.Proxy.Usage, o.Proxy.List, o.Proxy.Bypass)
		}, nil)
		if err != nil {
			return fail("SetProxySettings", err)
		}
	}
	if !o.Suspended {
		// Resume of a job already queued or transferring changes nothing.
		if err := c.again(ctx, func() error { _, err := c.SetJobState(ctx, id, ActionResume); return err }, nil); err != nil {
			return fail("SetJobState", err)
		}
	}
	return nil
}

// again runs a setup step whose repetition is harmless, repeating it
// after passing or ambiguous failures as the wsman retry policy allows.
// done, if set, is asked after an ambiguous failure whether the step took
// effect anyway (for a step that must not run twice).
func (c *Client) again(ctx context.Context, step func() error, done func() (bool, error)) error {
	pol := c.WSMan.Retry.WithDefaults()
	for attempt := 1; ; attempt++ {
		err := step()
		if err == nil {
			return nil
		}
		if !wsman.IsAmbiguous(err) && !wsman.IsTransient(err) {
			return err
		}
		if done != nil && wsman.IsAmbiguous(err) {
			ok, cerr := done()
			if cerr != nil {
				return fmt.Errorf("%w (and checking whether it took effect failed: %v)", err, cerr)
			}
			if ok {
				return nil
			}
		}
		if attempt >= pol.Attempts || ctx.Err() != nil {
			return err
		}
		if serr := sleep(ctx, pol.Pause(attempt)); serr != nil {
			return err
		}
	}
}

// hasFile reports whether the job already holds f (an AddFile whose reply
// was lost).
func (c *Client) hasFile(ctx context.Context, id string, f FileSpec) (bool, error) {
	j, err := c.Job(ctx, id)
	if err != nil {
		return false, err
	}
	return holds(j, f), nil
}

// holds reports whether j has f; Windows paths compare without case.
func holds(j *Job, f FileSpec) bool {
	for _, jf := range j.Files {
		if jf.RemoteURL == f.RemoteURL && strings.EqualFold(jf.LocalFile, f.LocalFile) {
			return true
		}
	}
	return false
}

// missingFiles is files without those j already holds.
func missingFiles(j *Job, files []FileSpec) []FileSpec {
	var out []FileSpec
	for _, f := range files {
		if !holds(j, f) {
			out = append(out, f)
		}
	}
	return out
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SetJobState performs an action on the job (Cancel, Complete, Resume,
// Suspend). The returned Code is the ReturnValue: 0, or a BITS success
// such as BG_S_PARTIAL_COMPLETE (Complete kept only the finished files).
func (c *Client) SetJobState(ctx context.Context, jobID string, a JobAction) (Code, error) {
	if !a.Valid() {
		return 0, fmt.Errorf("bitsprov: SetJobState on %s: invalid action %d", jobID, uint16(a))
	}
	_, code, err := c.invokeJob(ctx, "SetJobState", jobID, []param{pu("JobState", uint64(a))})
	return code, err
}

// Resume starts or restarts the transfer (SetJobState 2).
func (c *Client) Resume(ctx context.Context, jobID string) error {
	_, err := c.SetJobState(ctx, jobID, ActionResume)
	return err
}

// Suspend pauses the job (SetJobState 3).
func (c *Client) Suspend(ctx context.Context, jobID string) error {
	_, err := c.SetJobState(ctx, jobID, ActionSuspend)
	return err
}

// Cancel cancels the job and deletes its files (SetJobState 0). The Code
// may be BG_S_UNABLE_TO_DELETE_FILES.
func (c *Client) Cancel(ctx context.Context, jobID string) (Code, error) {
	return c.SetJobState(ctx, jobID, ActionCancel)
}

// Complete makes the transferred files available (SetJobState 1). The
// Code may be BG_S_PARTIAL_COMPLETE.
func (c *Client) Complete(ctx context.Context, jobID string) (Code, error) {
	return c.SetJobState(ctx, jobID, ActionComplete)
}

// AddFile adds a file to a download job. The parameters are sent as
// remoteUrl and localFile, the provider documentation's lower-camel
// spelling; WMI matches names case-insensitively, so SOETools' RemoteUrl
// works as well (bits-provider.md §1.4).
func (c *Client) AddFile(ctx context.Context, jobID, remoteURL, localFile string) error {
	if remoteURL == "" || localFile == "" {
		return fmt.Errorf("bitsprov: AddFile on %s: remote URL and local file are both required", jobID)
	}
	_, _, err := c.invokeJob(ctx, "AddFile", jobID, []param{p("remoteUrl", remoteURL), p("localFile", localFile)})
	return err
}

// JobError is what GetError reports about a job in Error or
// TransientError.
type JobError struct {
	Context ErrorContext `json:"context"`
	// Code is the HRESULT that put the job in error.
	Code               uint32 `json:"code"`
	ContextDescription string `json:"contextDescription"`
	Description        string `json:"description"`
}

// Error reads "BG_E_HTTP_ERROR_404 (0x80190194) in RemoteFile: <description>".
func (e *JobError) Error() string {
	name, _, ok := LookupCode(e.Code)
	s := fmt.Sprintf("0x%08X", e.Code)
	if ok {
		s = fmt.Sprintf("%s (0x%08X)", name, e.Code)
	}
	s += " in " + e.Context.String()
	if d := strings.TrimSpace(e.Description); d != "" {
		s += ": " + d
	}
	return s
}

// Unwrap returns the Code, so errors.Is(jobErr, HTTPCode(404)) works.
func (e *JobError) Unwrap() error { return Code(e.Code) }

// GetError asks why the job is in Error or TransientError. languageID is a
// Windows LANGID for the descriptions (1033 en-US; 0 lets the host choose).
// On a job that is not in error the host answers
// BG_E_ERROR_INFORMATION_UNAVAILABLE (errors.Is ErrErrorInfoUnavailable).
func (c *Client) GetError(ctx context.Context, jobID string, languageID uint32) (*JobError, error) {
	if jobID == "" {
		return nil, errors.New("bitsprov: GetError: empty JobId")
	}
	out, _, err := c.invokeOpts(ctx, ResourceURI, "GetError", "JobId", jobID, []param{pu("LanguageId", uint64(languageID))}, true)
	if err != nil {
		return nil, err
	}
	pr := props{out}
	je := &JobError{}
	n, _, err := pr.uint("ErrorContext", 32)
	if err != nil {
		return nil, fmt.Errorf("%s: GetError on %s: %w", c.host(), jobID, err)
	}
	je.Context = ErrorContext(n)
	if n, _, err = pr.uint("ErrorCode", 32); err != nil {
		return nil, fmt.Errorf("%s: GetError on %s: %w", c.host(), jobID, err)
	}
	je.Code = uint32(n)
	if je.ContextDescription, err = pr.str("ContextDescription"); err != nil {
		return nil, fmt.Errorf("%s: GetError on %s: %w", c.host(), jobID, err)
	}
	if je.Description, err = pr.str("ErrorDescription"); err != nil {
		return nil, fmt.Errorf("%s: GetError on %s: %w", c.host(), jobID, err)
	}
	return je, nil
}

func validateCredential(t CredentialTarget, s CredentialScheme) error {
	if !t.Valid() {
		return fmt.Errorf("bitsprov: invalid credential target %d (0 Server, 1 Proxy)", uint16(t))
	}
	if !s.Valid() {
		return fmt.Errorf("bitsprov: invalid credential scheme %d (0 Basic … 4 Passport)", uint16(s))
	}
	return nil
}

// ErrCleartextCredentials means a job password would have crossed the
// network readable: the endpoint is http:// and the transport does not
// seal messages.
var ErrCleartextCredentials = errors.New("refusing to send a job password over http:// without message encryption (use https:// or NTLM with encryption)")

// checkConfidential refuses to send a password in a body the transport
// would leave readable. A transport that cannot tell (a wrapper from
// elsewhere) is trusted to have been checked by its builder.
func (c *Client) checkConfidential(op string) error {
	if c.WSMan == nil || c.WSMan.Transport == nil {
		return nil
	}
	if ok, known := transport.IsConfidential(c.WSMan.Transport, c.WSMan.Endpoint); known && !ok {
		return fmt.Errorf("%s: %s: %w", c.host(), op, ErrCleartextCredentials)
	}
	return nil
}

// SetCredentials sets the credentials BITS uses toward the server or the
// proxy, with the provider's 0-based Target and Scheme values. The
// password travels in the SOAP body, so it is refused
// (ErrCleartextCredentials) unless the transport uses TLS or message
// encryption; it never appears in errors.
func (c *Client) SetCredentials(ctx context.Context, jobID string, target CredentialTarget, scheme CredentialScheme, user, password string) error {
	if err := validateCredential(target, scheme); err != nil {
		return fmt.Errorf("SetCredentials on %s: %w", jobID, err)
	}
	if err := c.checkConfidential("SetCredentials on " + jobID); err != nil {
		return err
	}
	_, _, err := c.invokeJob(ctx, "SetCredentials", jobID, []param{
		pu("Target", uint64(target)), pu("Scheme", uint64(scheme)),
		p("UserName", user), p("Password", password),
	})
	return err
}

// RemoveCredentials removes the credentials of one target and scheme.
func (c *Client) RemoveCredentials(ctx context.Context, jobID string, target CredentialTarget, scheme CredentialScheme) error {
	if err := validateCredential(target, scheme); err != nil {
		return fmt.Errorf("RemoveCredentials on %s: %w", jobID, err)
	}
	_, _, err := c.invokeJob(ctx, "RemoveCredentials", jobID, []param{
		pu("Target", uint64(target)), pu("Scheme", uint64(scheme)),
	})
	return err
}

func validateProxy(usage ProxyUsage, list, bypass []string) error {
	if !usage.Valid() {
		return fmt.Errorf("bitsprov: invalid proxy usage %d (0 Preconfig, 1 NoProxy, 2 Override, 3 AutoDetect)", uint16(usage))
	}
	if usage != ProxyOverride {
		if list != nil || bypass != nil {
			return fmt.Errorf("bitsprov: proxy usage %v takes no proxy or bypass list (lists only with Override)", usage)
		}
		return nil
	}
	if len(list) == 0 {
		return errors.New("bitsprov: proxy usage Override needs a proxy list")
	}
	for _, l := range [][]string{list, bypass} {
		for _, e := range l {
			if e == "" || strings.ContainsAny(e, " \t\r\n") {
				return fmt.Errorf("bitsprov: proxy list entry %q is empty or contains white space (lists are space-delimited)", e)
			}
		}
	}
	return nil
}

// SetProxySettings sets how the job finds its proxy. list and bypass must
// be nil unless usage is ProxyOverride (the provider requires NULL lists
// for the other usages); with Override they are sent space-delimited, and
// an empty bypass list is omitted.
func (c *Client) SetProxySettings(ctx context.Context, jobID string, usage ProxyUsage, list, bypass []string) error {
	if err := validateProxy(usage, list, bypass); err != nil {
		return fmt.Errorf("SetProxySettings on %s: %w", jobID, err)
	}
	params := []param{pu("ProxyUsage", uint64(usage))}
	if len(list) > 0 {
		params = append(params, p("ProxyList", strings.Join(list, " ")))
	}
	if len(bypass) > 0 {
		params = append(params, p("ProxyBypassList", strings.Join(bypass, " ")))
	}
	_, _, err := c.invokeJob(ctx, "SetProxySettings", jobID, params)
	return err
}

// SetClientCertificateByID selects the client certificate by its SHA-1
// hash (20 bytes), sent as a uint8 array: one CertHash element per byte.
func (c *Client) SetClientCertificateByID(ctx context.Context, jobID string, loc CertStoreLocation, storeName string, hash []byte) error {
	if !loc.Valid() {
		return fmt.Errorf("bitsprov: SetClientCertificateById on %s: invalid certificate store location %d", jobID, uint16(loc))
	}
	if storeName == "" {
		return fmt.Errorf("bitsprov: SetClientCertificateById on %s: store name is required (e.g. MY)", jobID)
	}
	if len(hash) != 20 {
		return fmt.Errorf("bitsprov: SetClientCertificateById on %s: certificate hash is %d bytes, want 20 (SHA-1)", jobID, len(hash))
	}
	h := param{name: "CertHash", values: make([]string, len(hash))}
	for i, b := range hash {
		h.values[i] = strconv.Itoa(int(b))
	}
	_, _, err := c.invokeJob(ctx, "SetClientCertificateById", jobID, []param{
		pu("CertStoreLocation", uint64(loc)), p("StoreName", storeName), h,
	})
	return err
}

// SetClientCertificateByName selects the client certificate by subject name.
func (c *Client) SetClientCertificateByName(ctx context.Context, jobID string, loc CertStoreLocation, storeName, subject string) error {
	if !loc.Valid() {
		return fmt.Errorf("bitsprov: SetClientCertificateByName on %s: invalid certificate store location %d", jobID, uint16(loc))
	}
	if storeName == "" || subject == "" {
		return fmt.Errorf("bitsprov: SetClientCertificateByName on %s: store name and subject name are required", jobID)
	}
	_, _, err := c.invokeJob(ctx, "SetClientCertificateByName", jobID, []param{
		pu("CertStoreLocation", uint64(loc)), p("StoreName", storeName), p("SubjectName", subject),
	})
	return err
}

// RemoveClientCertificate removes the client certificate. The method has
// no parameters; an empty RemoveClientCertificate_INPUT is sent, as
// winrm.vbs and openwsman do.
func (c *Client) RemoveClientCertificate(ctx context.Context, jobID string) error {
	_, _, err := c.invokeJob(ctx, "RemoveClientCertificate", jobID, nil)
	return err
}

func jobSelector(jobID string) wsman.Options {
	return wsman.Options{Selectors: []wsman.Selector{{Name: "JobId", Value: jobID}}}
}

// Job reads one job (WS-Transfer Get with selector JobId). A job that is
// not there (never was, or completed/cancelled and so left the queue)
// gives an error matching ErrNotFound.
func (c *Client) Job(ctx context.Context, jobID string) (*Job, error) {
	if err := c.canGet(jobID); err != nil {
		return nil, err
	}
	// The job is decoded from a view of the reply (JobFromView), which
	// gives the same job as JobFromInstance without building an Instance:
	// pollers Get jobs over and over.
	var j *Job
	var derr error
	err := c.WSMan.GetView(ctx, ResourceURI, jobSelector(jobID), func(v wsman.ItemView) error {
		j, derr = JobFromItemView(v)
		return nil
	})
	if err != nil {
		return nil, c.wrap("Get", jobID, err)
	}
	if derr != nil {
		return nil, fmt.Errorf("%s: Get %s: %w", c.host(), jobID, derr)
	}
	return j, nil
}

// canGet checks what a Get of jobID needs before anything is sent.
func (c *Client) canGet(jobID string) error {
	if jobID == "" {
		return errors.New("bitsprov: Get: empty JobId")
	}
	if c.WSMan == nil {
		return fmt.Errorf("bitsprov: Get %s: Client has no WSMan connection", jobID)
	}
	return nil
}

func (c *Client) getJob(ctx context.Context, jobID string) (*wsman.Instance, error) {
	if err := c.canGet(jobID); err != nil {
		return nil, err
	}
	in, err := c.WSMan.Get(ctx, ResourceURI, jobSelector(jobID))
	if err != nil {
		return nil, c.wrap("Get", jobID, err)
	}
	if in == nil {
		return nil, fmt.Errorf("%s: Get %s: empty GetResponse: %w", c.host(), jobID, wsman.ErrProtocol)
	}
	return in, nil
}

// writable are the BitsClientJob properties a Put may change.
var writable = []string{"DisplayName", "Description", "Priority", "MinimumRetryDelay", "NoProgressTimeout"}

// SetProperties changes writable properties the way Set-WSManInstance
// does: Get the instance, replace the text of each named property (which
// must occur exactly once), and Put the whole instance back. Names match
// case-insensitively; only DisplayName, Description, Priority,
// MinimumRetryDelay and NoProgressTimeout are writable. It returns the
// job from the PutResponse (nil if the host sent none).
func (c *Client) SetProperties(ctx context.Context, jobID string, values map[string]string) (*Job, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("bitsprov: Put %s: no properties to set", jobID)
	}
	for name := range values {
		ok := false
		for _, w := range writable {
			ok = ok || strings.EqualFold(name, w)
		}
		if !ok {
			return nil, fmt.Errorf("bitsprov: Put %s: property %q is not writable (writable: %s)", jobID, name, strings.Join(writable, ", "))
		}
	}
	in, err := c.getJob(ctx, jobID)
	if err != nil {
		return nil, err
	}
	for name, v := range values {
		idx := -1
		for i := range in.Props {
			if strings.EqualFold(in.Props[i].Name, name) {
				if idx >= 0 {
					return nil, fmt.Errorf("%s: Put %s: property %s occurs more than once in the instance", c.host(), jobID, name)
				}
				idx = i
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("%s: Put %s: the instance has no property %s", c.host(), jobID, name)
		}
		in.Props[idx].Values = []wsman.Value{{Kind: wsman.KindText, Text: v}}
	}
	out, err := c.WSMan.Put(ctx, ResourceURI, jobSelector(jobID), in)
	if err != nil {
		return nil, c.wrap("Put", jobID, err)
	}
	if out == nil {
		return nil, nil
	}
	j, err := JobFromInstance(out)
	if err != nil {
		return nil, fmt.Errorf("%s: Put %s: %w", c.host(), jobID, err)
	}
	return j, nil
}

// SetPriority changes the job's priority.
func (c *Client) SetPriority(ctx context.Context, jobID string, pr Priority) error {
	if !pr.Valid() {
		return fmt.Errorf("bitsprov: Put %s: invalid priority %d (0-3)", jobID, uint32(pr))
	}
	_, err := c.SetProperties(ctx, jobID, map[string]string{"Priority": strconv.FormatUint(uint64(pr), 10)})
	return err
}

// SetDisplayName changes the job's display name.
func (c *Client) SetDisplayName(ctx context.Context, jobID, name string) error {
	if name == "" {
		return fmt.Errorf("bitsprov: Put %s: empty display name", jobID)
	}
	_, err := c.SetProperties(ctx, jobID, map[string]string{"DisplayName": name})
	return err
}

// SetDescription changes the job's description (at most 1,024 characters
// in BITS).
func (c *Client) SetDescription(ctx context.Context, jobID, desc string) error {
	_, err := c.SetProperties(ctx, jobID, map[string]string{"Description": desc})
	return err
}

// SetMinimumRetryDelay changes the wait before a retry after a transient
// error (whole seconds; BITS raises values below 5 s to 5 s).
func (c *Client) SetMinimumRetryDelay(ctx context.Context, jobID string, d time.Duration) error {
	if err := validDuration("MinimumRetryDelay", d); err != nil {
		return err
	}
	_, err := c.SetProperties(ctx, jobID, map[string]string{"MinimumRetryDelay": strconv.FormatInt(int64(d/time.Second), 10)})
	return err
}

// SetNoProgressTimeout changes how long BITS retries without progress
// before the job goes to Error (whole seconds; 0 means never retry).
func (c *Client) SetNoProgressTimeout(ctx context.Context, jobID string, d time.Duration) error {
	if err := validDuration("NoProgressTimeout", d); err != nil {
		return err
	}
	_, err := c.SetProperties(ctx, jobID, map[string]string{"NoProgressTimeout": strconv.FormatInt(int64(d/time.Second), 10)})
	return err
}

// JobFilter selects jobs client-side.
type JobFilter struct {
	// States, when not empty, keeps only jobs in these states.
	States []State
}

func (f JobFilter) match(j *Job) bool {
	if len(f.States) == 0 {
		return true
	}
	for _, s := range f.States {
		if j.State == s {
			return true
		}
	}
	return false
}

// Jobs lists the jobs on the host (WS-Enumeration of BitsClientJob, no
// filter) and filters them here. The state filter is applied client-side
// rather than as WQL because a WQL filter needs the …/bits/* resource URI
// and the provider's query support is undocumented (WMI would enumerate
// and filter anyway); the queue holds at most a few hundred jobs, and
// client-side filtering behaves the same on every host and the simulator.
// Final jobs never appear (they leave the queue). A job the provider
// cannot decode fails the whole listing, naming the job.
func (c *Client) Jobs(ctx context.Context, f JobFilter) ([]*Job, error) {
	if c.WSMan == nil {
		return nil, errors.New("bitsprov: Enumerate: Client has no WSMan connection")
	}
	var jobs []*Job
	keep := func(j *Job, err error) error {
		if err != nil {
			return fmt.Errorf("%s: Enumerate: %w", c.host(), err)
		}
		if f.match(j) {
			jobs = append(jobs, j)
		}
		return nil
	}
	// Jobs are decoded from views of the replies (JobFromView), which
	// gives the same jobs as JobFromInstance without building an
	// Instance for each.
	err := c.listWith(ctx, ResourceURI, "Enumerate", func(in *wsman.Instance) error {
		return keep(JobFromInstance(in))
	}, func(o wsman.ObjectView) error {
		return keep(JobFromView(o))
	}, func() { jobs = nil })
	if err != nil {
		return nil, err
	}
	return jobs, nil
}

// list enumerates resourceURI, calling each with every instance, and
// starts the listing over (after reset) when a Pull failed in a way that
// wsman does not repeat. The layers split the work so that attempts add
// up instead of multiplying: wsman repeats each Enumerate, and each Pull
// the host never saw, within its RetryPolicy; a Pull whose reply was lost
// or garbled moved the host's cursor, so wsman gives up on it, and only
// then does list enumerate again. Such restarts count against the same
// RetryPolicy.Attempts, and an Enumerate that failed is never restarted
// here (wsman has already spent the attempts on it).
func (c *Client) list(ctx context.Context, resourceURI, op string, each func(*wsman.Instance) error, reset func()) error {
	return c.listWith(ctx, resourceURI, op, each, nil, reset)
}

// listWith is list; when eachView is set the listing reads views
// (wsman.EnumerateViews): eachView gets the items the views cover and
// each the others.
func (c *Client) listWith(ctx context.Context, resourceURI, op string, each func(*wsman.Instance) error, eachView func(wsman.ObjectView) error, reset func()) error {
	return c.listOpts(ctx, resourceURI, op, listOptions, each, eachView, reset)
}

// listOpts is listWith with the enumeration's options (a WQL filter).
func (c *Client) listOpts(ctx context.Context, resourceURI, op string, opts wsman.EnumerateOptions, each func(*wsman.Instance) error, eachView func(wsman.ObjectView) error, reset func()) error {
	pol := c.WSMan.Retry.WithDefaults()
	for attempt := 1; ; attempt++ {
		pulled, err := c.listOnce(ctx, resourceURI, op, opts, each, eachView)
		if err == nil {
			return nil
		}
		if !pulled || !wsman.IsTransient(err) || attempt >= pol.Attempts || ctx.Err() != nil {
			return err
		}
		if sleep(ctx, pol.Pause(attempt)) != nil {
			return err
		}
		reset()
	}
}

// listOnce is one enumeration; pulled reports that it failed in a Pull
// (after the Enumerate succeeded) rather than in the Enumerate.
func (c *Client) listOnce(ctx context.Context, resourceURI, op string, opts wsman.EnumerateOptions, each func(*wsman.Instance) error, eachView func(wsman.ObjectView) error) (pulled bool, err error) {
	items := 0
	if eachView != nil {
		for v, err := range c.WSMan.EnumerateViews(ctx, resourceURI, opts) {
			if err != nil {
				return items > 0 || failedIn(err, "Pull"), c.wrap(op, "", err)
			}
			items++
			switch {
			case v.Object.Valid():
				err = eachView(v.Object)
			case v.Item != nil && v.Item.Instance != nil:
				err = each(v.Item.Instance)
			}
			if err != nil {
				return false, err
			}
		}
		return false, nil
	}
	for item, err := range c.WSMan.Enumerate(ctx, resourceURI, opts) {
		if err != nil {
			return items > 0 || failedIn(err, "Pull"), c.wrap(op, "", err)
		}
		items++
		if item == nil || item.Instance == nil {
			continue
		}
		if err := each(item.Instance); err != nil {
			return false, err
		}
	}
	return false, nil
}

// failedIn reports whether err is a fault or an HTTP error wsman got in
// answer to operation op. (Other errors do not say; the caller counts
// items instead: any item seen means the Enumerate had succeeded.)
func failedIn(err error, op string) bool {
	var f *wsman.Fault
	if errors.As(err, &f) {
		return f.Operation == op
	}
	var he *wsman.HTTPError
	return errors.As(err, &he) && he.Operation == op
}

// maxBatchItems is the MaxElements that Jobs, URLGroups and the marker
// search ask for in each Enumerate and Pull reply: Windows' default
// MaxBatchItems (winrm/config/MaxBatchItems), as txwinrm sends it. Without
// it WS-Enumeration's default is one item per reply, so listing 1,000
// jobs took 1,000 round trips. A host configured lower caps it, and
// MaxEnvelopeSize still bounds each reply.
const maxBatchItems = 32000

// listOptions are the enumeration options of every listing here:
// optimized (items in the EnumerateResponse itself) and batched.
var listOptions = wsman.EnumerateOptions{Optimize: true, MaxElements: maxBatchItems}
