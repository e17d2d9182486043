package wsmantest

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman"
)

// enumState is one server-side enumeration context. Windows issues a new
// context id with every PullResponse; the state moves to the new id.
type enumState struct {
	items   []*wsman.Instance
	pos     int
	mode    wsman.EnumerationMode
	uri     string
	keys    []string
	user    string // quotaUser of the owner
	expires time.Time
}

func (s *Server) enumerate(ctx context.Context, p *parsed, user string) ([]byte, error) {
	en := p.body
	if !isNS(en, wsman.NsEnumeration, "Enumerate") {
		return nil, newFault("Sender", wsman.NsWSMan, "SchemaValidationError", CodeSchemaValidation, textSchemaValidation, textSchemaValidation)
	}
	quser := quotaUser(user)
	if err := s.openEnum(quser); err != nil {
		return nil, err
	}
	defer s.openDone(quser)
	optimize := child(en, wsman.NsWSMan, "OptimizeEnumeration") != nil
	maxElems := 1
	if me := child(en, wsman.NsWSMan, "MaxElements"); me != nil {
		n, err := strconv.Atoi(textOf(me))
		if err != nil || n < 1 {
			return nil, FaultInvalidParameter(textInvalidParameter, CodeInvalidParameter)
		}
		maxElems = n
	}
	mode := wsman.EnumerateObjects
	if em := child(en, wsman.NsWSMan, "EnumerationMode"); em != nil {
		switch textOf(em) {
		case "EnumerateObjectAndEPR":
			mode = wsman.EnumerateObjectAndEPR
		case "EnumerateEPR":
			mode = wsman.EnumerateEPR
		default:
			f := newFault("Sender", wsman.NsWSMan, "UnsupportedFeature", 0x80338086, textUnsupportedFeature,
				"The WS-Management service does not support the specified enumeration mode. ")
			f.Detail = wsman.FaultDetailBase + "EnumerationMode"
			return nil, f
		}
	}
	filter := child(en, wsman.NsWSMan, "Filter")
	if filter == nil {
		filter = child(en, wsman.NsEnumeration, "Filter")
	}
	ereq := &EnumerateRequest{}
	var query *wqlQuery
	uri := p.resource
	wildcard := strings.HasSuffix(uri, "/*")
	nsURI := strings.TrimSuffix(uri, "/*")
	if !wildcard {
		nsURI = uri[:max(strings.LastIndexByte(uri, '/'), 0)]
	}
	if filter != nil {
		switch d := filter.SelectAttrValue("Dialect", ""); d {
		case wsman.DialectWQL:
			ereq.WQL = strings.TrimSpace(filter.Text())
			q, err := parseWQL(ereq.WQL)
			if err != nil {
				return nil, faultInvalidQuery(nsURI, ereq.WQL)
			}
			query = q
			if wildcard {
				uri = nsURI + "/" + q.class
			} else if !strings.EqualFold(q.class, className(uri)) {
				return nil, faultCannotProcessFilter(nsURI, textClassNotFound, ereq.WQL, 0)
			}
		case wsman.DialectSelector:
			if wildcard {
				return nil, faultCannotProcessFilter(nsURI, textCannotProcessFilter, "", 0)
			}
			ss := child(filter, wsman.NsWSMan, "SelectorSet")
			if ss == nil {
				return nil, faultCannotProcessFilter(nsURI, textCannotProcessFilter, "", 0)
			}
			ereq.SelectorFilter = parseSelectors(ss)
			seen := map[string]bool{}
			for _, sel := range ereq.SelectorFilter {
				n := strings.ToLower(sel.Name)
				if seen[n] || sel.EPR != nil || strings.ContainsAny(sel.Value, `"'`) {
					return nil, faultCannotProcessFilter(nsURI, textCannotProcessFilter, "", 0)
				}
				seen[n] = true
			}
		default:
			f := newFault("Sender", wsman.NsEnumeration, "FilterDialectRequestedUnavailable", CodeFilterDialectUnavail, textDialectUnavailable, textDialectUnavailable)
			f.Detail = wsman.FaultDetailBase + "FilterDialectRequestedUnavailable"
			return nil, f
		}
	} else if wildcard {
		// A namespace URI names no class: WinRM needs a WQL filter.
		return nil, faultCannotProcessFilter(nsURI, textCannotProcessFilter, "", 0)
	}
	rt := s.route(uri)
	if rt == nil {
		if query != nil {
			return nil, faultCannotProcessFilter(nsURI, textClassNotFound, ereq.WQL, 0)
		}
		return nil, faultResourceNotFound()
	}
	var qenv *wqlEnv
	if query != nil {
		qenv = s.wqlEnv(rt, nsURI)
		if query.check(qenv) != nil {
			return nil, faultInvalidQuery(nsURI, ereq.WQL)
		}
	}
	ereq.Request = s.providerRequest(p, user)
	items, err := call(ctx, s, p.timeout, func(ctx context.Context) ([]*wsman.Instance, error) { return rt.p.Enumerate(ctx, ereq) })
	if err != nil {
		return nil, err
	}
	var kept []*wsman.Instance
	for _, in := range items {
		if in == nil {
			continue
		}
		if query != nil && !query.match(in, qenv) {
			continue
		}
		if !matchSelectors(in, ereq.SelectorFilter) {
			continue
		}
		if query != nil && query.props != nil {
			in = query.project(in, qenv)
		}
		kept = append(kept, in)
	}
	st := &enumState{items: kept, mode: mode, uri: rt.uri, keys: rt.keys, user: quser}
	env := newEnvelope(wsman.ActionEnumerateResp, p.messageID, nsEnum)
	resp := env.body.CreateElement("n:EnumerateResponse")
	ctxEl := resp.CreateElement("n:EnumerationContext")
	if !optimize {
		ctxEl.SetText("uuid:" + s.storeEnum(st))
		return env.bytes(), nil
	}
	batch, err := s.takeBatch(st, min(maxElems, s.cfg.OptimizedBatch), s.replyLimit(p))
	if err != nil {
		return nil, err
	}
	if st.pos < len(st.items) {
		ctxEl.SetText("uuid:" + s.storeEnum(st))
	} else {
		ctxEl.CreateText("")
	}
	if len(batch) > 0 {
		its := resp.CreateElement("w:Items")
		for _, b := range batch {
			its.AddChild(b)
		}
	}
	if st.pos >= len(st.items) {
		resp.CreateElement("w:EndOfSequence")
	}
	return env.bytes(), nil
}

// wqlEnv gathers what checking and evaluating a WQL query against the
// class rt serves needs: its Schema, when the provider declares one, and
// what its instances' system properties derive from.
func (s *Server) wqlEnv(rt *route, nsURI string) *wqlEnv {
	env := &wqlEnv{machine: s.cfg.Machine, keys: rt.keys}
	if sc, ok := rt.p.(Schema); ok {
		env.decls = sc.Properties()
		if env.decls == nil {
			env.decls = []PropertyDecl{}
		}
	}
	if ns, ok := strings.CutPrefix(nsURI, wsman.ResourceWMI+"/"); ok {
		env.namespace = strings.ReplaceAll(ns, "/", `\`)
	}
	return env
}

func (s *Server) pull(p *parsed) ([]byte, error) {
	pl := p.body
	if !isNS(pl, wsman.NsEnumeration, "Pull") {
		return nil, newFault("Sender", wsman.NsWSMan, "SchemaValidationError", CodeSchemaValidation, textSchemaValidation, textSchemaValidation)
	}
	id := textOf(child(pl, wsman.NsEnumeration, "EnumerationContext"))
	maxElems := 1
	if me := child(pl, wsman.NsEnumeration, "MaxElements"); me != nil {
		n, err := strconv.Atoi(textOf(me))
		if err != nil || n < 1 {
			return nil, FaultInvalidParameter(textInvalidParameter, CodeInvalidParameter)
		}
		maxElems = n
	}
	st := s.takeEnum(id)
	if st == nil {
		return nil, faultInvalidEnumContext()
	}
	batch, err := s.takeBatch(st, min(maxElems, s.cfg.PullBatch), s.replyLimit(p))
	if err != nil {
		return nil, err
	}
	env := newEnvelope(wsman.ActionPullResponse, p.messageID, nsEnum)
	resp := env.body.CreateElement("n:PullResponse")
	done := st.pos >= len(st.items)
	if !done {
		resp.CreateElement("n:EnumerationContext").SetText("uuid:" + s.storeEnum(st))
	}
	if len(batch) > 0 {
		its := resp.CreateElement("n:Items")
		for _, b := range batch {
			its.AddChild(b)
		}
	}
	if done {
		resp.CreateElement("n:EndOfSequence")
	}
	return env.bytes(), nil
}

func (s *Server) release(p *parsed) ([]byte, error) {
	if !isNS(p.body, wsman.NsEnumeration, "Release") {
		return nil, newFault("Sender", wsman.NsWSMan, "SchemaValidationError", CodeSchemaValidation, textSchemaValidation, textSchemaValidation)
	}
	if s.takeEnum(textOf(child(p.body, wsman.NsEnumeration, "EnumerationContext"))) == nil {
		return nil, faultInvalidEnumContext()
	}
	env := newEnvelope(wsman.ActionReleaseResponse, p.messageID, nsEnum)
	env.body.CreateText("")
	return env.bytes(), nil
}

func faultInvalidEnumContext() *wsman.Fault {
	return newFault("Receiver", wsman.NsEnumeration, "InvalidEnumerationContext", CodeInvalidEnumContext, textInvalidEnumContext, textInvalidEnumContext)
}

// takeBatch renders up to n items that fit, with the envelope around them,
// into limit bytes; at least one item goes out, and a single item too big
// for the limit is w:EncodingLimit, as WinRM answers.
func (s *Server) takeBatch(st *enumState, n, limit int) ([]*etree.Element, error) {
	const overhead = 1536 // envelope, headers and context around the items
	size := overhead
	var out []*etree.Element
	for st.pos < len(st.items) && len(out) < n {
		el := itemElement(st.items[st.pos], st.mode, st.uri, st.keys)
		doc := etree.NewDocument()
		doc.SetRoot(el)
		b, _ := doc.WriteToBytes()
		if size+len(b) > limit {
			if len(out) == 0 {
				f := newFault("Sender", wsman.NsWSMan, "EncodingLimit", CodeMaxEnvelopeSizeExceeded, textEncodingLimit, textEnvelopeExceeded)
				f.Detail = wsman.FaultDetailBase + "MaxEnvelopeSize"
				return nil, f
			}
			break
		}
		size += len(b)
		out = append(out, el)
		st.pos++
	}
	return out, nil
}

// storeEnum files st under a new context id and returns it.
func (s *Server) storeEnum(st *enumState) string {
	id := newUUID()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for k, e := range s.enums {
		if now.After(e.expires) {
			delete(s.enums, k)
		}
	}
	st.expires = now.Add(s.cfg.EnumerationTimeout)
	s.enums[id] = st
	return id
}

// takeEnum removes and returns the live context id ("uuid:…"), or nil.
func (s *Server) takeEnum(id string) *enumState {
	id, _ = strings.CutPrefix(strings.TrimSpace(id), "uuid:")
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.enums[strings.ToUpper(id)]
	delete(s.enums, strings.ToUpper(id))
	if st == nil || time.Now().After(st.expires) {
		return nil
	}
	return st
}

// quotaUser is the account an operation counts against: WinRM keeps
// quotas per user, and "HOST\\admin" (NTLM) and "admin" (Basic) are the
// same local account.
func quotaUser(user string) string {
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		user = user[i+1:]
	}
	return strings.ToLower(user)
}

// openEnum admits a new Enumerate for user, or answers the fault WinRM
// sends when the user already holds MaxConcurrentOperationsPerUser
// operations: live contexts plus Enumerates still being answered.
func (s *Server) openEnum(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.opening[user]
	now := time.Now()
	for _, e := range s.enums {
		if e.user == user && !now.After(e.expires) {
			n++
		}
	}
	if n >= s.cfg.MaxOperationsPerUser {
		return FaultMaxConcurrentOperations(s.cfg.MaxOperationsPerUser)
	}
	s.opening[user]++
	return nil
}

func (s *Server) openDone(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opening[user]--; s.opening[user] <= 0 {
		delete(s.opening, user)
	}
}

// Enumerations returns the number of live enumeration contexts, so tests
// can check that clients Release what they abandon.
func (s *Server) Enumerations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	now := time.Now()
	for _, e := range s.enums {
		if !now.After(e.expires) {
			n++
		}
	}
	return n
}

// ExpireEnumerations makes every live enumeration context expire now, as
// if EnumerationTimeoutms had passed.
func (s *Server) ExpireEnumerations() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.enums {
		e.expires = time.Time{}
	}
}

// matchSelectors applies a selector filter: every selector must equal the
// property's value (case-insensitively, as WMI compares strings).
func matchSelectors(in *wsman.Instance, sels []wsman.Selector) bool {
	for _, sel := range sels {
		p, ok := in.Property(sel.Name)
		if !ok || len(p.Values) == 0 || p.Values[0].Kind == wsman.KindNil || !strings.EqualFold(p.Values[0].Text, sel.Value) {
			return false
		}
	}
	return true
}
