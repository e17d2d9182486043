package wsman

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// Defaults sent in every request unless the Client says otherwise.
const (
	// DefaultMaxEnvelopeSize is what pypsrp and PowerShell send (150 KiB);
	// Windows clamps it to MaxEnvelopeSizekb anyway.
	DefaultMaxEnvelopeSize = 153600
	// DefaultOperationTimeout is the server-side time limit of one call.
	DefaultOperationTimeout = 60 * time.Second
	DefaultLocale           = "en-US"
)

// Client talks to one WS-Management endpoint (one host). It is safe for
// concurrent use; the transport decides whether calls to the host are
// serialised (NTLM binds authentication to a connection).
type Client struct {
	// Endpoint is the URL, e.g. http://host:5985/wsman.
	Endpoint string
	// Host names the host in errors ("host:port"); derived from Endpoint when empty.
	Host string
	// Transport sends the envelopes.
	Transport transport.Transport
	// MaxEnvelopeSize is sent as wsman:MaxEnvelopeSize; 0 means DefaultMaxEnvelopeSize.
	MaxEnvelopeSize int
	// OperationTimeout is sent as wsman:OperationTimeout; 0 means DefaultOperationTimeout.
	OperationTimeout time.Duration
	// Locale is sent as wsman:Locale and wsmv:DataLocale; "" means DefaultLocale.
	Locale string
	// SessionID, when set, is sent as wsmv:SessionId ("uuid:…").
	SessionID string
	// Retry says how calls that fail on a passing condition are repeated
	// (see RetryPolicy); the zero value is DefaultRetry.
	Retry RetryPolicy

	// newID makes MessageIDs; tests fix it to get stable envelopes.
	newID func() string
}

// NewClient returns a Client for endpoint over t with default settings.
func NewClient(endpoint string, t transport.Transport) *Client {
	return &Client{Endpoint: endpoint, Transport: t}
}

// Options are the per-call header parts that address a resource.
type Options struct {
	// Selectors address one instance (wsman:SelectorSet).
	Selectors []Selector
	// OptionSet entries (wsman:OptionSet); none carry mustComply.
	OptionSet []Option
	// Idempotent declares that an Invoke only reads (GetError, say), so
	// it may be repeated like a Get. It is ignored by the other calls,
	// which know whether they are safe to repeat.
	Idempotent bool
}

// Option is one wsman:Option.
type Option struct {
	Name  string
	Value string
	// Type is the xs type, e.g. "xs:boolean"; empty for none.
	Type string
}

// IdentifyResponse is what wsmid:IdentifyResponse carries.
type IdentifyResponse struct {
	ProtocolVersion  string
	ProductVendor    string
	ProductVersion   string
	SecurityProfiles []string
}

// maxBodyStart bounds how much of a non-SOAP body an HTTPError shows.
const maxBodyStart = 512

// host names the host in errors.
func (c *Client) host() string {
	if c.Host != "" {
		return c.Host
	}
	if u, err := url.Parse(c.Endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return c.Endpoint
}

func (c *Client) messageID() string {
	if c.newID != nil {
		return c.newID()
	}
	return newMessageID()
}

// opError wraps err with the operation, the resource and the host.
func (c *Client) opError(op, resourceURI string, err error) error {
	if resourceURI == "" {
		return fmt.Errorf("%s on %s: %w", lowerFirst(op), c.host(), err)
	}
	return fmt.Errorf("%s %s on %s: %w", lowerFirst(op), resourceURI, c.host(), err)
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}

// call sends one envelope and returns the checked reply: a *Fault for a
// SOAP fault (whatever the status), an *HTTPError for 401, 413 and
// non-SOAP bodies, and ErrProtocol when RelatesTo or Action are wrong.
// Failures are retried as mode and c.Retry allow, each attempt with a new
// MessageID.
func (c *Client) call(ctx context.Context, op string, r *request, mode retryMode, wantAction string, extraNS ...string) (*reply, error) {
	if c.Transport == nil {
		return nil, c.opError(op, r.resourceURI, errors.New("no transport configured"))
	}
	var rep *reply
	first := true
	err := c.withRetry(ctx, mode, func() error {
		if !first {
			r.messageID = c.messageID()
		}
		first = false
		var err error
		rep, err = c.callOnce(ctx, op, r, mode == retryIdempotent, wantAction, extraNS...)
		return err
	})
	if err != nil {
		return nil, err
	}
	if op != "Release" {
		traceReply(ctx, op, rep.raw)
	}
	return rep, nil
}

// callOnce is one attempt of call.
func (c *Client) callOnce(ctx context.Context, op string, r *request, idempotent bool, wantAction string, extraNS ...string) (*reply, error) {
	body := c.appendEnvelope(make([]byte, 0, 2048), r, r.bodyXML, extraNS...)
	resp, err := c.Transport.RoundTrip(ctx, &transportRequest{URL: c.Endpoint, Body: body, Idempotent: idempotent})
	if err != nil {
		return nil, c.opError(op, r.resourceURI, err)
	}
	rep, err := c.classify(op, r.resourceURI, resp)
	if err != nil {
		return nil, err
	}
	if got := rep.headerText(NsAddressing, "RelatesTo"); got != r.messageID {
		rep.release()
		return nil, c.opError(op, r.resourceURI, fmt.Errorf("%w: a:RelatesTo is %q, want our MessageID %q", ErrProtocol, got, r.messageID))
	}
	if got := rep.headerText(NsAddressing, "Action"); got != wantAction {
		rep.release()
		return nil, c.opError(op, r.resourceURI, fmt.Errorf("%w: a:Action is %q, want %q", ErrProtocol, got, wantAction))
	}
	return rep, nil
}

// classify turns a transport response into a reply or the right error.
func (c *Client) classify(op, resourceURI string, resp *transportResponse) (*reply, error) {
	httpErr := func(kind error) error {
		start := resp.Body
		if len(start) > maxBodyStart {
			start = start[:maxBodyStart]
		}
		return &HTTPError{
			Host:       c.host(),
			Operation:  op,
			StatusCode: resp.StatusCode,
			Status:     http.StatusText(resp.StatusCode),
			BodyStart:  strings.TrimSpace(strings.ToValidUTF8(string(start), "\uFFFD")),
			Kind:       kind,
		}
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil, httpErr(ErrAuth)
	case http.StatusRequestEntityTooLarge:
		return nil, httpErr(ErrEnvelopeTooLarge)
	case http.StatusServiceUnavailable:
		he := httpErr(nil).(*HTTPError)
		he.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return nil, he
	}
	// The size limit is the MaxEnvelopeSize we sent, which binds SOAP
	// replies only: a proxy's large 502 page is shown for what it is (and
	// retried as such), never parsed.
	if err := c.checkReplySize(resp.Body); err != nil {
		if (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusInternalServerError) && isSOAPType(resp.ContentType) {
			return nil, c.opError(op, resourceURI, err)
		}
		if resp.StatusCode == http.StatusOK {
			return nil, httpErr(fmt.Errorf("%w: %d-byte reply with Content-Type %q is not SOAP", ErrProtocol, len(resp.Body), resp.ContentType))
		}
		return nil, httpErr(nil)
	}
	// The fast reader takes every ordinary reply; faults and anything it
	// does not handle exactly like etree go to etree (fastread.go).
	if fr, err := parseFastReply(resp.Body); err == nil {
		if resp.StatusCode != http.StatusOK {
			fr.d.release()
			return nil, httpErr(nil)
		}
		return &reply{fast: fr, raw: resp.Body}, nil
	}
	rep, err := parseEnvelope(resp.Body)
	if err != nil {
		if resp.StatusCode == http.StatusOK {
			return nil, httpErr(fmt.Errorf("%w: %v", ErrProtocol, err))
		}
		return nil, httpErr(nil)
	}
	if fe := rep.fault(); fe != nil {
		f := parseFault(fe)
		f.Host = c.host()
		f.Operation = op
		f.HTTPStatus = resp.StatusCode
		f.Action = rep.headerText(NsAddressing, "Action")
		return nil, f
	}
	if resp.StatusCode != http.StatusOK {
		return nil, httpErr(nil)
	}
	rep.raw = resp.Body
	return rep, nil
}

// isSOAPType reports whether a Content-Type names a SOAP 1.2 body.
func isSOAPType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/soap+xml"
}

// Identify sends an unauthenticated Identify (WSMANIDENTIFY: unauthenticated).
func (c *Client) Identify(ctx context.Context) (*IdentifyResponse, error) {
	const op = "Identify"
	if c.Transport == nil {
		return nil, c.opError(op, "", errors.New("no transport configured"))
	}
	var rep *reply
	err := c.withRetry(ctx, retryIdempotent, func() error {
		req := &transportRequest{
			URL:        c.Endpoint,
			Body:       []byte(identifyXML),
			Header:     http.Header{"Wsmanidentify": []string{"unauthenticated"}},
			Anonymous:  true,
			Idempotent: true,
		}
		resp, err := c.Transport.RoundTrip(ctx, req)
		if err != nil {
			return c.opError(op, "", err)
		}
		rep, err = c.classify(op, "", resp)
		return err
	})
	if err != nil {
		return nil, err
	}
	traceReply(ctx, op, rep.raw)
	out, ok := rep.identify()
	rep.release()
	if !ok {
		return nil, c.opError(op, "", fmt.Errorf("%w: no wsmid:IdentifyResponse in the body", ErrProtocol))
	}
	return out, nil
}

// Get reads one instance (WS-Transfer Get).
func (c *Client) Get(ctx context.Context, resourceURI string, opts Options) (*Instance, error) {
	rep, uri, err := c.get(ctx, resourceURI, &opts)
	if err != nil {
		return nil, err
	}
	defer rep.release()
	return c.bodyInstance("Get", uri, rep, true)
}

// GetView is Get for a caller that decodes the instance into a type of
// its own and keeps nothing of the Instance, as EnumerateViews is for
// Enumerate: decode gets a view of the GetResponse's object (ItemView.Object),
// valid until decode returns, or, for a reply the views do not cover (see
// EnumerateViews), the Instance Get would return (ItemView.Item). The
// request, retries and errors are exactly Get's; decode's error is
// returned as it is. A job poller Gets the same small instance over and
// over, and the Instance it built each time to read once was a tenth of
// the client's CPU per Get.
func (c *Client) GetView(ctx context.Context, resourceURI string, opts Options, decode func(ItemView) error) error {
	rep, uri, err := c.get(ctx, resourceURI, &opts)
	if err != nil {
		return err
	}
	defer rep.release()
	if f := rep.fast; f != nil {
		if n := f.bodyChild(); n >= 0 && f.d.viewable([]int32{f.body}) {
			return decode(ItemView{Object: ObjectView{d: f.d, n: n}})
		}
	}
	in, err := c.bodyInstance("Get", uri, rep, true)
	if err != nil {
		return err
	}
	return decode(ItemView{Item: &Item{Instance: in}})
}

// get sends a Get and returns its checked reply (to be released) and the
// resolved resource URI.
func (c *Client) get(ctx context.Context, resourceURI string, opts *Options) (*reply, string, error) {
	const op = "Get"
	uri, err := ResolveResourceURI(resourceURI)
	if err != nil {
		return nil, "", c.opError(op, resourceURI, err)
	}
	if err := checkNames(opts, nil); err != nil {
		return nil, "", c.opError(op, uri, err)
	}
	r := &request{action: ActionGet, resourceURI: uri, messageID: c.messageID(), opts: opts}
	rep, err := c.call(ctx, op, r, retryIdempotent, ActionGetResponse)
	if err != nil {
		return nil, "", err
	}
	return rep, uri, nil
}

// bodyInstance parses the body's element as an instance.
func (c *Client) bodyInstance(op, uri string, rep *reply, required bool) (*Instance, error) {
	if _, ok := rep.bodyTag(); !ok {
		if !required {
			return nil, nil
		}
		return nil, c.opError(op, uri, fmt.Errorf("%w: empty s:Body where an instance was expected", ErrProtocol))
	}
	in, err := rep.bodyInstance()
	if err != nil {
		return nil, c.opError(op, uri, err)
	}
	return in, nil
}

// Put writes an instance (WS-Transfer Put with the whole instance as body)
// and returns the updated instance from the PutResponse (nil when the host
// answers with an empty body).
func (c *Client) Put(ctx context.Context, resourceURI string, opts Options, in *Instance) (*Instance, error) {
	const op = "Put"
	uri, err := ResolveResourceURI(resourceURI)
	if err != nil {
		return nil, c.opError(op, resourceURI, err)
	}
	if in == nil {
		return nil, c.opError(op, uri, errors.New("no instance to put"))
	}
	if err := checkNames(&opts, in); err != nil {
		return nil, c.opError(op, uri, err)
	}
	r := &request{action: ActionPut, resourceURI: uri, messageID: c.messageID(), opts: &opts, bodyXML: appendInstance(nil, in)}
	rep, err := c.call(ctx, op, r, retryUnsafe, ActionPutResponse)
	if err != nil {
		return nil, err
	}
	defer rep.release()
	return c.bodyInstance(op, uri, rep, false)
}

// Create creates a resource and returns the EPR from x:ResourceCreated.
func (c *Client) Create(ctx context.Context, resourceURI string, opts Options, in *Instance) (*EndpointReference, error) {
	const op = "Create"
	uri, err := ResolveResourceURI(resourceURI)
	if err != nil {
		return nil, c.opError(op, resourceURI, err)
	}
	if in == nil {
		return nil, c.opError(op, uri, errors.New("no instance to create"))
	}
	if err := checkNames(&opts, in); err != nil {
		return nil, c.opError(op, uri, err)
	}
	r := &request{action: ActionCreate, resourceURI: uri, messageID: c.messageID(), opts: &opts, bodyXML: appendInstance(nil, in)}
	rep, err := c.call(ctx, op, r, retryUnsafe, ActionCreateResponse)
	if err != nil {
		return nil, err
	}
	defer rep.release()
	epr, ok, err := rep.resourceCreated()
	if !ok {
		return nil, c.opError(op, uri, fmt.Errorf("%w: no x:ResourceCreated in the CreateResponse", ErrProtocol))
	}
	if err != nil {
		return nil, c.opError(op, uri, err)
	}
	return epr, nil
}

// Delete deletes one instance.
func (c *Client) Delete(ctx context.Context, resourceURI string, opts Options) error {
	const op = "Delete"
	uri, err := ResolveResourceURI(resourceURI)
	if err != nil {
		return c.opError(op, resourceURI, err)
	}
	if err := checkNames(&opts, nil); err != nil {
		return c.opError(op, uri, err)
	}
	r := &request{action: ActionDelete, resourceURI: uri, messageID: c.messageID(), opts: &opts}
	rep, err := c.call(ctx, op, r, retryUnsafe, ActionDeleteResponse)
	rep.release()
	return err
}

// Invoke calls a custom action (a WMI method): Action = resourceURI + "/" +
// method, body <p:method_INPUT> holding input (nil sends an empty element),
// answer <p:method_OUTPUT> returned as an Instance. A non-zero ReturnValue is
// not a fault; callers interpret it.
func (c *Client) Invoke(ctx context.Context, resourceURI, method string, opts Options, input *Instance) (*Instance, error) {
	op := "Invoke " + method
	uri, err := ResolveResourceURI(resourceURI)
	if err != nil {
		return nil, c.opError(op, resourceURI, err)
	}
	if method == "" || strings.ContainsAny(method, "/?#<>&\"' \t\r\n") {
		return nil, c.opError(op, uri, fmt.Errorf("invalid method name %q", method))
	}
	// The _INPUT element lives in the class namespace, which must equal the
	// ResourceURI header byte for byte (winrm.vbs help).
	body := &Instance{ClassName: method + "_INPUT", ResourceURI: uri}
	if input != nil {
		body.Props = input.Props
	}
	if err := checkNames(&opts, body); err != nil {
		return nil, c.opError(op, uri, err)
	}
	action := uri + "/" + method
	r := &request{action: action, resourceURI: uri, messageID: c.messageID(), opts: &opts, bodyXML: appendInstance(nil, body)}
	mode := retryUnsafe
	if opts.Idempotent {
		mode = retryIdempotent
	}
	rep, err := c.call(ctx, op, r, mode, action+"Response")
	if err != nil {
		return nil, err
	}
	defer rep.release()
	tag, ok := rep.bodyTag()
	if !ok || !strings.EqualFold(tag, method+"_OUTPUT") {
		got := "an empty body"
		if ok {
			got = "<" + tag + ">"
		}
		return nil, c.opError(op, uri, fmt.Errorf("%w: want <%s_OUTPUT>, got %s", ErrProtocol, method, got))
	}
	in, err := rep.bodyInstance()
	if err != nil {
		return nil, c.opError(op, uri, err)
	}
	return in, nil
}

// EnumerationMode selects what Enumerate returns.
type EnumerationMode int

// Enumeration modes (w:EnumerationMode).
const (
	EnumerateObjects EnumerationMode = iota
	EnumerateObjectAndEPR
	EnumerateEPR
)

// EnumerateOptions shape an enumeration.
type EnumerateOptions struct {
	Options
	// WQL, when set, is sent as a WQL filter (use a …/* resource URI).
	WQL string
	// SelectorFilter, when set, is sent as a selector filter.
	SelectorFilter []Selector
	// Optimize asks for items in the EnumerateResponse itself.
	Optimize bool
	// MaxElements bounds items per response (0: server default).
	MaxElements int
	Mode        EnumerationMode
}

// Item is one enumerated result: the object, its EPR, or both.
type Item struct {
	Instance *Instance
	EPR      *EndpointReference
}

// Enumerate returns an iterator over every item: it Enumerates, Pulls until
// EndOfSequence (in either namespace), and Releases the context when the
// caller stops early or a Pull fails in a way that may leave it open on
// the host (see holdsContext). An error ends the sequence as the final
// pair.
//
// Enumerate is repeated after passing failures (see RetryPolicy); a Pull
// only when the host never saw it, because each answered Pull moves the
// host's cursor and a lost answer cannot be asked for again. Callers that
// collect the items start the enumeration over on such an error
// (IsTransient), as bitsprov.Client.Jobs does.
func (c *Client) Enumerate(ctx context.Context, resourceURI string, opts EnumerateOptions) iter.Seq2[*Item, error] {
	return func(yield func(*Item, error) bool) {
		e := &enumeration{c: c, ctx: ctx, opts: &opts}
		e.run(resourceURI, func(v ItemView, err error) bool { return yield(v.Item, err) })
	}
}

// maxPullTimeouts bounds consecutive n:TimedOut answers to one Pull; each is
// a full OperationTimeout of a server with no data yet.
const maxPullTimeouts = 10

// maxEmptyPages bounds consecutive Enumerate/Pull answers that carry
// neither items nor the end of the sequence: a peer answering that way
// for ever would otherwise keep the iterator pulling without yielding.
// (Windows answers a Pull with no data yet with w:TimedOut instead.)
const maxEmptyPages = 100

// releaseTimeout bounds the Release sent after an early break or a failed
// Pull, which runs even when the caller's context is already cancelled: a
// caller that gave up must not wait long for a courtesy.
const releaseTimeout = 5 * time.Second

type enumeration struct {
	c    *Client
	ctx  context.Context
	opts *EnumerateOptions
	uri  string
	// views: EnumerateViews (parseViewPage) rather than Enumerate.
	views bool
}

// parse reads the page of an Enumerate or Pull reply and releases the
// reply (a viewed page takes its document instead; see page.free).
func (e *enumeration) parse(rep *reply, want string) (*page, error) {
	parse := parsePage
	if e.views {
		parse = parseViewPage
	}
	p, err := parse(rep, want)
	rep.release()
	return p, err
}

func (e *enumeration) run(resourceURI string, yield func(ItemView, error) bool) {
	uri, err := ResolveResourceURI(resourceURI)
	if err != nil {
		yield(ItemView{}, e.c.opError("Enumerate", resourceURI, err))
		return
	}
	e.uri = uri
	err = checkNames(&e.opts.Options, nil)
	if err == nil {
		err = checkSelectorNames("selector filter", e.opts.SelectorFilter)
	}
	if err != nil {
		yield(ItemView{}, e.c.opError("Enumerate", uri, err))
		return
	}
	r := &request{action: ActionEnumerate, resourceURI: uri, messageID: e.c.messageID(), opts: &e.opts.Options, bodyXML: appendEnumerateBody(nil, e.opts)}
	rep, err := e.c.call(e.ctx, "Enumerate", r, retryIdempotent, ActionEnumerateResp, "n", NsEnumeration)
	if err != nil {
		yield(ItemView{}, err)
		return
	}
	page, err := e.parse(rep, "EnumerateResponse")
	if err != nil {
		yield(ItemView{}, e.c.opError("Enumerate", uri, err))
		return
	}
	defer func() { page.free() }()
	for empty := 0; ; {
		if len(page.items) == 0 && len(page.views) == 0 {
			empty++
		} else {
			empty = 0
		}
		if empty > maxEmptyPages && !page.done {
			yield(ItemView{}, e.c.opError("Pull", uri, fmt.Errorf("%w: %d answers in a row without items or end of sequence", ErrProtocol, empty)))
			e.release(page.context)
			return
		}
		for _, it := range page.items {
			if !yield(ItemView{Item: it}, nil) {
				if !page.done {
					e.release(page.context)
				}
				return
			}
		}
		for _, n := range page.views {
			if !yield(ItemView{Object: ObjectView{d: page.doc, n: n}}, nil) {
				if !page.done {
					e.release(page.context)
				}
				return
			}
		}
		if page.done {
			return
		}
		// The views are done with: the next reply may reuse the tables.
		page.free()
		next, err := e.pull(page.context)
		if err != nil {
			// Release before the caller sees the error: one that starts
			// the enumeration over at once must not find its quota
			// slot still taken.
			if holdsContext(err) {
				e.release(page.context)
			}
			yield(ItemView{}, err)
			return
		}
		page = next
	}
}

func (e *enumeration) enumerateBody() *etree.Element {
	en := etree.NewElement("n:Enumerate")
	if e.opts.Optimize {
		en.CreateElement("w:OptimizeEnumeration")
		if e.opts.MaxElements > 0 {
			en.CreateElement("w:MaxElements").SetText(strconv.Itoa(e.opts.MaxElements))
		}
	}
	switch e.opts.Mode {
	case EnumerateObjectAndEPR:
		en.CreateElement("w:EnumerationMode").SetText("EnumerateObjectAndEPR")
	case EnumerateEPR:
		en.CreateElement("w:EnumerationMode").SetText("EnumerateEPR")
	}
	switch {
	case e.opts.WQL != "":
		f := en.CreateElement("w:Filter")
		f.CreateAttr("Dialect", DialectWQL)
		f.SetText(e.opts.WQL)
	case len(e.opts.SelectorFilter) > 0:
		f := en.CreateElement("w:Filter")
		f.CreateAttr("Dialect", DialectSelector)
		writeSelectorSet(f, e.opts.SelectorFilter)
	}
	return en
}

func (e *enumeration) pull(enumCtx string) (*page, error) {
	for timeouts := 0; ; timeouts++ {
		body := appendPullBody(nil, enumCtx, e.opts.MaxElements)
		r := &request{action: ActionPull, resourceURI: e.uri, messageID: e.c.messageID(), bodyXML: body}
		rep, err := e.c.call(e.ctx, "Pull", r, retryCursor, ActionPullResponse, "n", NsEnumeration)
		if err != nil {
			// n:TimedOut means "no data yet"; the context is still valid.
			if IsTimedOut(err) && timeouts < maxPullTimeouts && e.ctx.Err() == nil {
				continue
			}
			return nil, err
		}
		p, err := e.parse(rep, "PullResponse")
		if err != nil {
			return nil, e.c.opError("Pull", e.uri, err)
		}
		return p, nil
	}
}

// release ends a server-side enumeration the caller abandoned or a failed
// Pull left open, so it does not count against
// MaxConcurrentOperationsPerUser until it expires. Its error is dropped:
// the caller has already stopped listening, or has a better error.
func (e *enumeration) release(enumCtx string) {
	if enumCtx == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), releaseTimeout)
	defer cancel()
	r := &request{action: ActionRelease, resourceURI: e.uri, messageID: e.c.messageID(), bodyXML: appendReleaseBody(nil, enumCtx)}
	rep, _ := e.c.call(ctx, "Release", r, retryIdempotent, ActionReleaseResponse, "n", NsEnumeration)
	rep.release()
}

// holdsContext reports whether the host may still hold the enumeration
// context after a Pull failed with err. A fault is the host's answer and,
// but for n:TimedOut ("no data yet"), ends the context there (an expired
// one is n:InvalidEnumerationContext); any other failure (the caller's
// context cancelled, a lost connection, a proxy's error page, a reply we
// could not read) may have left it open.
func holdsContext(err error) bool {
	var f *Fault
	return !errors.As(err, &f) || IsTimedOut(err)
}

// page is one EnumerateResponse or PullResponse.
type page struct {
	context string
	items   []*Item
	done    bool
	// A page of EnumerateViews holds the items' elements in doc, the
	// reply's parsed document, instead of items (parseViewPage).
	doc   *fdoc
	views []int32
}

// free releases the page's document, if it holds one; its views must not
// be read afterwards.
func (p *page) free() {
	if p != nil && p.doc != nil {
		p.doc.release()
		p.doc, p.views = nil, nil
	}
}

// parsePage reads an EnumerateResponse or PullResponse. Items and
// EndOfSequence come in the w: namespace in an optimized EnumerateResponse
// and in n: in a PullResponse; either is accepted in both. An absent or
// empty context also means the enumeration is over.
func parsePage(rep *reply, want string) (*page, error) {
	if rep.fast != nil {
		return rep.fast.parsePage(want)
	}
	resp := child(rep.body, NsEnumeration, want)
	if resp == nil {
		return nil, fmt.Errorf("%w: no n:%s in the body", ErrProtocol, want)
	}
	p := &page{}
	hasContext := false
	for _, c := range elementKids(resp) {
		ns := c.NamespaceURI()
		if ns != NsEnumeration && ns != NsWSMan {
			continue
		}
		switch c.Tag {
		case "EnumerationContext":
			hasContext = true
			p.context = strings.TrimSpace(textOf(c))
		case "EndOfSequence":
			p.done = true
		case "Items":
			items, err := parseItems(c)
			if err != nil {
				return nil, err
			}
			p.items = append(p.items, items...)
		}
	}
	if !hasContext || p.context == "" {
		p.done = true
	}
	return p, nil
}

// parseItems reads the children of n:Items or w:Items: objects, w:Item
// (object + EPR) or bare a:EndpointReference elements.
func parseItems(items *etree.Element) ([]*Item, error) {
	kids := elementKids(items)
	out := make([]*Item, 0, len(kids))
	for _, k := range kids {
		it := &Item{}
		switch ns := k.NamespaceURI(); {
		case k.Tag == "Item" && ns == NsWSMan:
			for _, c := range elementKids(k) {
				if c.Tag == "EndpointReference" && c.NamespaceURI() == NsAddressing {
					epr, err := parseEPR(c)
					if err != nil {
						return nil, err
					}
					it.EPR = epr
				} else if it.Instance == nil {
					in, err := ParseInstance(c)
					if err != nil {
						return nil, err
					}
					it.Instance = in
				}
			}
		case k.Tag == "EndpointReference" && ns == NsAddressing:
			epr, err := parseEPR(k)
			if err != nil {
				return nil, err
			}
			it.EPR = epr
		default:
			in, err := ParseInstance(k)
			if err != nil {
				return nil, err
			}
			it.Instance = in
		}
		out = append(out, it)
	}
	return out, nil
}
