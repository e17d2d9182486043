package bitssim

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// ListenerURI is WinRM's listener configuration resource (winrm
// enumerate winrm/config/Listener), keyed by Address and Transport.
const ListenerURI = "http://schemas.microsoft.com/wbem/wsman/1/config/Listener"

// listeners simulates winrm/config/Listener: the WinRM configuration
// resource that New-WSManInstance and Remove-WSManInstance (winrm create /
// winrm delete) add and remove listeners with, and the only resource of a
// Windows host bitsremote's generic "wsman create" is documented against.
// It models the configuration only: the simulated endpoint keeps serving
// whatever is created or deleted here. It starts with the one listener
// winrm quickconfig makes (Address=*, Transport=HTTP, port 5985). [I] The
// property list and defaults are those "winrm get
// winrm/config/Listener?Address=*+Transport=HTTP" prints; no capture of a
// listener Create exists, and certificate checks of an HTTPS listener
// (Windows looks for one matching Hostname when no thumbprint is given)
// are not modelled.
type listeners struct {
	mu    sync.Mutex
	items []*wsman.Instance // in creation order
}

func newListeners() *listeners {
	l := &listeners{}
	l.items = append(l.items, listenerInstance("*", "HTTP", nil))
	return l
}

// listenerInstance builds a listener with the defaults WinRM fills in,
// overridden by the writable properties of in.
func listenerInstance(address, transport string, in *wsman.Instance) *wsman.Instance {
	port := "5985"
	if transport == "HTTPS" {
		port = "5986"
	}
	out := wsman.NewInstance(ListenerURI)
	out.Set("Address", address)
	out.Set("Transport", transport)
	out.Set("Port", port)
	out.Set("Hostname", "")
	out.Set("Enabled", "true")
	out.Set("URLPrefix", "wsman")
	out.Set("CertificateThumbprint", "")
	out.Set("ListeningOn", "127.0.0.1")
	if in != nil {
		applyListener(out, in)
	}
	return out
}

// listenerWritable are the properties a Create or Put may set.
var listenerWritable = []string{"Port", "Hostname", "Enabled", "URLPrefix", "CertificateThumbprint"}

func applyListener(dst, src *wsman.Instance) {
	for _, p := range src.Props {
		i := slices.IndexFunc(listenerWritable, func(n string) bool { return strings.EqualFold(n, p.Name) })
		if i < 0 || len(p.Values) != 1 || p.Values[0].Kind == wsman.KindNil {
			continue
		}
		dst.Set(listenerWritable[i], strings.TrimSpace(p.Values[0].Text))
	}
}

// Keys implements wsmantest.Keyed.
func (l *listeners) Keys() []string { return []string{"Address", "Transport"} }

// listenerKey reads the selectors, with Transport upper-cased as WinRM stores it.
func listenerKey(r *wsmantest.Request) (address, transport string, err error) {
	address, okA := r.Selector("Address")
	transport, okT := r.Selector("Transport")
	if !okA || !okT {
		return "", "", wsmantest.FaultInsufficientSelectors()
	}
	transport = strings.ToUpper(transport)
	if transport != "HTTP" && transport != "HTTPS" {
		return "", "", wsmantest.FaultInvalidSelectors()
	}
	return address, transport, nil
}

// find returns the index of the listener r addresses. Callers hold l.mu.
func (l *listeners) find(address, transport string) int {
	return slices.IndexFunc(l.items, func(in *wsman.Instance) bool {
		a, _ := in.String("Address")
		t, _ := in.String("Transport")
		return strings.EqualFold(a, address) && t == transport
	})
}

// faultNoListener is what WinRM answers for a listener that does not
// exist: a:DestinationUnreachable 0x80338000 from the service itself, with
// no WMI provider fault inside.
func faultNoListener() *wsman.Fault {
	const text = "The WS-Management service cannot process the request. The service cannot find the resource identified by the resource URI and selectors. "
	return &wsman.Fault{HTTPStatus: 500, Code: "Sender", SubcodeNS: wsman.NsAddressing, Subcode: "DestinationUnreachable",
		Reason: text, Detail: wsman.FaultDetailBase + "ResourceNotFound", WSManCode: wsman.CodeResourceNotFound, Message: text}
}

func (l *listeners) lookup(r *wsmantest.Request) (int, error) {
	a, t, err := listenerKey(r)
	if err != nil {
		return -1, err
	}
	i := l.find(a, t)
	if i < 0 {
		return -1, faultNoListener()
	}
	return i, nil
}

// Get implements wsmantest.Provider.
func (l *listeners) Get(_ context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, err := l.lookup(r)
	if err != nil {
		return nil, err
	}
	return cloneListener(l.items[i]), nil
}

// Put implements wsmantest.Provider (winrm set): writable properties
// change, the others are ignored as in a Get-patch-Put.
func (l *listeners) Put(_ context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.Instance, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, err := l.lookup(r)
	if err != nil {
		return nil, err
	}
	applyListener(l.items[i], in)
	return cloneListener(l.items[i]), nil
}

// Invoke implements wsmantest.Provider: listeners have no methods.
func (l *listeners) Invoke(_ context.Context, r *wsmantest.Request, _ string, _ *wsman.Instance) (*wsman.Instance, error) {
	return nil, wsmantest.FaultActionNotSupported(r.Action)
}

// Enumerate implements wsmantest.Provider.
func (l *listeners) Enumerate(context.Context, *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*wsman.Instance, len(l.items))
	for i, in := range l.items {
		out[i] = cloneListener(in)
	}
	return out, nil
}

// Create implements wsmantest.Creator: the selectors name the new
// listener, the body its settings; an existing one is w:AlreadyExists.
func (l *listeners) Create(_ context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.EndpointReference, error) {
	a, t, err := listenerKey(r)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.find(a, t) >= 0 {
		return nil, wsmantest.FaultAlreadyExists()
	}
	l.items = append(l.items, listenerInstance(a, t, in))
	return &wsman.EndpointReference{ResourceURI: ListenerURI, Selectors: []wsman.Selector{{Name: "Address", Value: a}, {Name: "Transport", Value: t}}}, nil
}

// Delete implements wsmantest.Deleter.
func (l *listeners) Delete(_ context.Context, r *wsmantest.Request) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, err := l.lookup(r)
	if err != nil {
		return err
	}
	l.items = slices.Delete(l.items, i, i+1)
	return nil
}

// cloneListener copies a listener so that the server renders a snapshot.
func cloneListener(in *wsman.Instance) *wsman.Instance {
	out := *in
	out.Props = make([]wsman.Property, len(in.Props))
	for i, p := range in.Props {
		out.Props[i] = wsman.Property{Name: p.Name, Values: slices.Clone(p.Values)}
	}
	return &out
}
