package wsmantest

import (
	"context"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman"
)

// Request is what a Provider sees of one WS-Management call: the parsed
// addressing headers and the body, after authentication and decryption.
type Request struct {
	// Action is the wsa:Action URI.
	Action string
	// ResourceURI is the wsman:ResourceURI as sent (full URI).
	ResourceURI string
	// Selectors is the wsman:SelectorSet, in order.
	Selectors []wsman.Selector
	// OptionSet is the wsman:OptionSet, in order.
	OptionSet []wsman.Option
	// Body is the first element child of s:Body, or nil for an empty body.
	Body *etree.Element
	// User is the authenticated user name, as sent (e.g. "DOMAIN\\admin").
	User string
	// Machine is the simulated host's name, used in faults' Machine attribute.
	Machine string
}

// Selector returns the value of the named selector, matching the name
// case-insensitively as Windows does.
func (r *Request) Selector(name string) (string, bool) {
	for _, s := range r.Selectors {
		if equalFold(s.Name, name) {
			return s.Value, true
		}
	}
	return "", false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// EnumerateRequest is a Request plus its filter.
type EnumerateRequest struct {
	*Request
	// WQL is the WQL filter text, if the Dialect was WQL.
	WQL string
	// SelectorFilter is the selector filter, if the Dialect was SelectorFilter.
	SelectorFilter []wsman.Selector
}

// Provider serves one resource URI, as an imapserver backend serves a
// Session. Methods return *wsman.Fault values for WS-Management faults,
// which the server renders exactly as Windows does (HTTP 500, the fault
// Action of the subcode's family, WSManFault detail); any other error
// becomes a w:InternalError fault carrying its text as a provider fault.
type Provider interface {
	// Get returns the instance addressed by r.Selectors.
	Get(ctx context.Context, r *Request) (*wsman.Instance, error)
	// Put replaces the writable properties of the addressed instance with
	// those of in and returns the updated instance.
	Put(ctx context.Context, r *Request, in *wsman.Instance) (*wsman.Instance, error)
	// Invoke runs a method (Action = ResourceURI/method). input is the parsed
	// <method_INPUT>; the result is rendered as <method_OUTPUT>.
	Invoke(ctx context.Context, r *Request, method string, input *wsman.Instance) (*wsman.Instance, error)
	// Enumerate returns every instance matching the request; the server
	// does the batching into Enumerate/Pull responses and keeps contexts.
	// The server also applies the WQL WHERE clause, a WQL property list
	// and the selector filter to what Enumerate returns, so a provider may
	// return all its instances and ignore r.WQL and r.SelectorFilter.
	Enumerate(ctx context.Context, r *EnumerateRequest) ([]*wsman.Instance, error)
}

// Creator is a Provider that also supports WS-Transfer Create.
type Creator interface {
	Provider
	Create(ctx context.Context, r *Request, in *wsman.Instance) (*wsman.EndpointReference, error)
}

// Deleter is a Provider that also supports WS-Transfer Delete.
type Deleter interface {
	Provider
	Delete(ctx context.Context, r *Request) error
}
