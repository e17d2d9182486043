package wsmantest

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman"
)

// dispatch runs one validated request and returns the reply envelope, or an
// error (a *wsman.Fault, or a provider error turned into one by toFault).
func (s *Server) dispatch(ctx context.Context, p *parsed, user string) ([]byte, error) {
	switch p.action {
	case wsman.ActionPull:
		return s.pull(p)
	case wsman.ActionRelease:
		return s.release(p)
	}
	if p.resource == "" {
		f := newFault("Sender", wsman.NsAddressing, "DestinationUnreachable", CodeInvalidResourceURI, textInvalidResourceURI, textInvalidResourceURI)
		f.Detail = wsman.FaultDetailBase + "InvalidResourceURI"
		return nil, f
	}
	if p.mustComply && isWMI(p.resource) {
		f := newFault("Sender", wsman.NsWSMan, "InvalidOptions", CodeOptionsNotSupported, textOptionsNotSupported, textOptionsNotSupported)
		f.Detail = wsman.FaultDetailBase + "NotSupported"
		return nil, f
	}
	if p.action == wsman.ActionEnumerate {
		return s.enumerate(ctx, p, user)
	}
	rt := s.route(p.resource)
	if rt == nil {
		return nil, faultResourceNotFound()
	}
	req := s.providerRequest(p, user)
	if h, ok := rt.p.(ActionHandler); ok {
		return s.serveAction(ctx, p, h, req)
	}
	switch p.action {
	case wsman.ActionGet:
		if f := checkSelectors(p.selectors, rt.keys, true); f != nil {
			return nil, f
		}
		in, err := call(ctx, s, p.timeout, func(ctx context.Context) (*wsman.Instance, error) { return rt.p.Get(ctx, req) })
		if err != nil {
			return nil, err
		}
		return s.instanceReply(wsman.ActionGetResponse, p, in, rt)
	case wsman.ActionPut:
		if f := checkSelectors(p.selectors, rt.keys, true); f != nil {
			return nil, f
		}
		in, f := bodyInstance(p, rt)
		if f != nil {
			return nil, f
		}
		out, err := call(ctx, s, p.timeout, func(ctx context.Context) (*wsman.Instance, error) { return rt.p.Put(ctx, req, in) })
		if err != nil {
			return nil, err
		}
		return s.instanceReply(wsman.ActionPutResponse, p, out, rt)
	case wsman.ActionCreate:
		cr, ok := rt.p.(Creator)
		if !ok {
			return nil, FaultActionNotSupported(p.action)
		}
		in, f := bodyInstance(p, rt)
		if f != nil {
			return nil, f
		}
		epr, err := call(ctx, s, p.timeout, func(ctx context.Context) (*wsman.EndpointReference, error) { return cr.Create(ctx, req, in) })
		if err != nil {
			return nil, err
		}
		if epr == nil {
			epr = &wsman.EndpointReference{}
		}
		e := *epr
		if e.Address == "" {
			e.Address = s.URL
		}
		if e.ResourceURI == "" {
			e.ResourceURI = p.resource
		}
		env := newEnvelope(wsman.ActionCreateResponse, p.messageID, nsTransfer)
		env.body.AddChild(eprElement("x:ResourceCreated", &e))
		return env.bytes(), nil
	case wsman.ActionDelete:
		del, ok := rt.p.(Deleter)
		if !ok {
			return nil, FaultActionNotSupported(p.action)
		}
		if f := checkSelectors(p.selectors, rt.keys, true); f != nil {
			return nil, f
		}
		if _, err := call(ctx, s, p.timeout, func(ctx context.Context) (struct{}, error) { return struct{}{}, del.Delete(ctx, req) }); err != nil {
			return nil, err
		}
		env := newEnvelope(wsman.ActionDeleteResponse, p.messageID, nsPlainWSMV)
		env.body.CreateText("")
		return env.bytes(), nil
	}
	method, ok := strings.CutPrefix(p.action, rt.uri+"/")
	if !ok {
		method, ok = cutPrefixFold(p.action, rt.uri+"/")
	}
	if !ok || method == "" || strings.Contains(method, "/") {
		return nil, FaultActionNotSupported(p.action)
	}
	return s.invoke(ctx, p, rt, req, method)
}

func (s *Server) invoke(ctx context.Context, p *parsed, rt *route, req *Request, method string) ([]byte, error) {
	if len(p.selectors) > 0 {
		if f := checkSelectors(p.selectors, rt.keys, true); f != nil {
			return nil, f
		}
	}
	in := &wsman.Instance{ClassName: method + "_INPUT", ResourceURI: p.resource}
	if p.body != nil {
		if !strings.EqualFold(p.body.Tag, method+"_INPUT") || !strings.EqualFold(p.body.NamespaceURI(), p.resource) {
			return nil, FaultInvalidParameter("", 0)
		}
		var err error
		if in, err = wsman.ParseInstance(p.body); err != nil {
			return nil, FaultInvalidParameter(err.Error(), 0)
		}
	}
	out, err := call(ctx, s, p.timeout, func(ctx context.Context) (*wsman.Instance, error) { return rt.p.Invoke(ctx, req, method, in) })
	if err != nil {
		return nil, err
	}
	o := wsman.Instance{}
	if out != nil {
		o = *out
	}
	o.ClassName, o.ResourceURI, o.TypeName, o.Fragment = method+"_OUTPUT", p.resource, "", false
	env := newEnvelope(p.action+"Response", p.messageID, nsPlainWSMV)
	env.body.AddChild(instanceElement(&o, false))
	return env.bytes(), nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func (s *Server) instanceReply(action string, p *parsed, in *wsman.Instance, rt *route) ([]byte, error) {
	if in == nil {
		return nil, FaultInternalError("The provider returned no instance. ", 0x80004005)
	}
	env := newEnvelope(action, p.messageID, nsTransfer)
	env.body.AddChild(instanceElement(withClass(in, rt.uri), true))
	return env.bytes(), nil
}

// withClass fills an instance's class name and namespace from its resource
// URI when the provider left them empty.
func withClass(in *wsman.Instance, uri string) *wsman.Instance {
	if in.ClassName != "" && in.ResourceURI != "" {
		return in
	}
	c := *in
	if c.ResourceURI == "" {
		c.ResourceURI = uri
	}
	if c.ClassName == "" {
		c.ClassName = className(c.ResourceURI)
	}
	return &c
}

func className(uri string) string {
	return uri[strings.LastIndexByte(uri, '/')+1:]
}

// bodyInstance parses a Put or Create body, which must be an instance of
// the addressed class (x:InvalidRepresentation otherwise, as WinRM says).
func bodyInstance(p *parsed, rt *route) (*wsman.Instance, *wsman.Fault) {
	bad := newFault("Sender", wsman.NsTransfer, "InvalidRepresentation", CodeInvalidRepresentation, textInvalidRepresent, textInvalidRepresent)
	if p.body == nil {
		return nil, bad
	}
	if !strings.EqualFold(p.body.NamespaceURI(), rt.uri) || !strings.EqualFold(p.body.Tag, className(rt.uri)) {
		return nil, bad
	}
	in, err := wsman.ParseInstance(p.body)
	if err != nil {
		bad.Message = textInvalidRepresent + err.Error()
		return nil, bad
	}
	return in, nil
}

func (s *Server) providerRequest(p *parsed, user string) *Request {
	return &Request{
		Action:      p.action,
		ResourceURI: p.resource,
		Selectors:   p.selectors,
		OptionSet:   p.options,
		Body:        p.body,
		User:        user,
		Machine:     s.cfg.Machine,
	}
}

func isWMI(uri string) bool {
	return hasPrefixFold(uri, wsman.ResourceWMI+"/") || hasPrefixFold(uri, wsman.ResourceCIM+"/")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func faultResourceNotFound() *wsman.Fault {
	f := newFault("Sender", wsman.NsAddressing, "DestinationUnreachable", CodeResourceNotFound, textResourceNotFound, textResourceNotFound)
	f.Detail = wsman.FaultDetailBase + "ResourceNotFound"
	return f
}

// checkSelectors compares a SelectorSet with the class's keys as WinRM's
// WMI plugin does: duplicates or names that are not keys are
// UnexpectedSelectors, a missing key InsufficientSelectors. keys == nil
// means the provider checks for itself.
func checkSelectors(sels []wsman.Selector, keys []string, required bool) *wsman.Fault {
	if keys == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, sel := range sels {
		n := strings.ToLower(sel.Name)
		if seen[n] || !containsFold(keys, sel.Name) {
			return FaultInvalidSelectors()
		}
		seen[n] = true
	}
	if required {
		for _, k := range keys {
			if !seen[strings.ToLower(k)] {
				return FaultInsufficientSelectors()
			}
		}
	}
	return nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// call runs a provider method under the request's OperationTimeout. A
// provider still busy when it expires gets its context cancelled and the
// client gets w:TimedOut, as WinRM answers; the provider's late result is
// dropped.
func call[T any](ctx context.Context, s *Server, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	if timeout <= 0 {
		timeout = s.cfg.MaxTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	var zero T
	s.mu.Lock()
	if s.closed {
		// Close is waiting for provider calls; start no new one.
		s.mu.Unlock()
		return zero, errors.New("wsmantest: server closed")
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		v, err := fn(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && errors.Is(r.err, context.DeadlineExceeded) && ctx.Err() != nil {
			return zero, FaultTimedOut()
		}
		return r.v, r.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return zero, FaultTimedOut()
		}
		return zero, ctx.Err()
	}
}

// itemElement renders one enumeration item in the requested mode.
func itemElement(in *wsman.Instance, mode wsman.EnumerationMode, uri string, keys []string) *etree.Element {
	in = withClass(in, uri)
	if mode == wsman.EnumerateObjects {
		return instanceElement(in, !in.Fragment)
	}
	epr := &wsman.EndpointReference{Address: wsman.AddressAnonymous, ResourceURI: in.ResourceURI}
	for _, k := range keys {
		if p, ok := in.Property(k); ok && len(p.Values) > 0 {
			epr.Selectors = append(epr.Selectors, wsman.Selector{Name: p.Name, Value: p.Values[0].Text})
		}
	}
	if mode == wsman.EnumerateEPR {
		return eprElement("a:EndpointReference", epr)
	}
	item := etree.NewElement("w:Item")
	item.AddChild(instanceElement(in, !in.Fragment))
	item.AddChild(eprElement("a:EndpointReference", epr))
	return item
}
