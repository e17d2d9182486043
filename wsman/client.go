package wsman

import (
	"context"
	"iter"
	"time"

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
	ProtocolVersion string
	ProductVendor   string
	ProductVersion  string
	SecurityProfiles []string
}

// Identify sends an unauthenticated Identify (WSMANIDENTIFY: unauthenticated).
func (c *Client) Identify(ctx context.Context) (*IdentifyResponse, error) {
	panic("wsman: not implemented yet")
}

// Get reads one instance (WS-Transfer Get).
func (c *Client) Get(ctx context.Context, resourceURI string, opts Options) (*Instance, error) {
	panic("wsman: not implemented yet")
}

// Put writes an instance (WS-Transfer Put with the whole instance as body)
// and returns the updated instance from the PutResponse.
func (c *Client) Put(ctx context.Context, resourceURI string, opts Options, in *Instance) (*Instance, error) {
	panic("wsman: not implemented yet")
}

// Create creates a resource and returns the EPR from x:ResourceCreated.
func (c *Client) Create(ctx context.Context, resourceURI string, opts Options, in *Instance) (*EndpointReference, error) {
	panic("wsman: not implemented yet")
}

// Delete deletes one instance.
func (c *Client) Delete(ctx context.Context, resourceURI string, opts Options) error {
	panic("wsman: not implemented yet")
}

// Invoke calls a custom action (a WMI method): Action = resourceURI + "/" +
// method, body <p:method_INPUT> holding input (nil sends an empty element),
// answer <p:method_OUTPUT> returned as an Instance. A non-zero ReturnValue is
// not a fault; callers interpret it.
func (c *Client) Invoke(ctx context.Context, resourceURI, method string, opts Options, input *Instance) (*Instance, error) {
	panic("wsman: not implemented yet")
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
// caller stops early. An error ends the sequence as the final pair.
func (c *Client) Enumerate(ctx context.Context, resourceURI string, opts EnumerateOptions) iter.Seq2[*Item, error] {
	panic("wsman: not implemented yet")
}
