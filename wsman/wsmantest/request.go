package wsmantest

import (
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman"
)

// parsed is one request envelope after header validation.
type parsed struct {
	body       *etree.Element // first child of s:Body, or nil
	identify   bool
	action     string
	messageID  string
	resource   string
	selectors  []wsman.Selector
	options    []wsman.Option
	mustComply bool
	timeout    time.Duration // 0: none sent
	maxEnv     int           // 0: none sent
	// notUnderstood is the namespace and local name of a mustUnderstand
	// header the server does not know.
	notUnderstood [2]string
}

// knownHeaders are the headers the server understands; any other header
// with mustUnderstand="true" is refused with s:MustUnderstand.
var knownHeaders = map[string]map[string]bool{
	wsman.NsAddressing: {"Action": true, "To": true, "MessageID": true, "ReplyTo": true, "FaultTo": true, "From": true, "RelatesTo": true},
	wsman.NsWSMan: {"ResourceURI": true, "MaxEnvelopeSize": true, "OperationTimeout": true, "Locale": true,
		"SelectorSet": true, "OptionSet": true, "RequestEPR": true, "RequestTotalItemsCountEstimate": true},
	wsman.NsWSMV: {"DataLocale": true, "SessionId": true, "OperationID": true, "SequenceId": true, "ActivityId": true},
}

func isNS(el *etree.Element, ns, local string) bool {
	return el != nil && el.Tag == local && el.NamespaceURI() == ns
}

func child(parent *etree.Element, ns, local string) *etree.Element {
	if parent == nil {
		return nil
	}
	for _, c := range parent.ChildElements() {
		if isNS(c, ns, local) {
			return c
		}
	}
	return nil
}

func attrNS(el *etree.Element, ns, local string) (string, bool) {
	for i := range el.Attr {
		a := &el.Attr[i]
		if a.Key == local && a.Space != "" && a.NamespaceURI() == ns {
			return a.Value, true
		}
	}
	return "", false
}

func mustUnderstand(el *etree.Element) bool {
	v, _ := attrNS(el, wsman.NsSOAP, "mustUnderstand")
	return v == "true" || v == "1"
}

func textOf(el *etree.Element) string {
	if el == nil {
		return ""
	}
	return strings.TrimSpace(el.Text())
}

// parseEnvelope reads and validates a request as WinRM does, in the order of
// SOAP processing: well-formedness, mustUnderstand, then the addressing and
// WS-Management headers. On a fault the returned *parsed still carries the
// MessageID, when one was readable, for the fault's RelatesTo.
func parseEnvelope(data []byte, maxTimeout time.Duration) (*parsed, *wsman.Fault) {
	p := &parsed{}
	doc := etree.NewDocument()
	doc.ReadSettings.MaxDepth = 256
	if err := doc.ReadFromBytes(data); err != nil {
		return p, newFault("Sender", wsman.NsWSMan, "SchemaValidationError", CodeInvalidXML, textSchemaValidation, textInvalidXML)
	}
	env := doc.Root()
	if !isNS(env, wsman.NsSOAP, "Envelope") {
		return p, newFault("Sender", wsman.NsWSMan, "SchemaValidationError", CodeSchemaValidation, textSchemaValidation, textSchemaValidation)
	}
	header := child(env, wsman.NsSOAP, "Header")
	bodyEl := child(env, wsman.NsSOAP, "Body")
	if bodyEl == nil {
		return p, newFault("Sender", wsman.NsWSMan, "SchemaValidationError", CodeSchemaValidation, textSchemaValidation, textSchemaValidation)
	}
	if kids := bodyEl.ChildElements(); len(kids) > 0 {
		p.body = kids[0]
	}
	if isNS(p.body, wsman.NsIdentity, "Identify") {
		p.identify = true
		return p, nil
	}
	if mid := child(header, wsman.NsAddressing, "MessageID"); mid != nil {
		p.messageID = textOf(mid)
	}
	var hdrs []*etree.Element
	if header != nil {
		hdrs = header.ChildElements()
	}
	for _, h := range hdrs {
		if mustUnderstand(h) && !knownHeaders[h.NamespaceURI()][h.Tag] {
			// SOAP 1.2 §5.4.8: the reply names the header in s:NotUnderstood.
			p.notUnderstood = [2]string{h.NamespaceURI(), h.Tag}
			return p, newFault("MustUnderstand", "", "", CodeMustUnderstand, textMustUnderstand, textMustUnderstand)
		}
	}

	required := func(what string) *wsman.Fault {
		f := newFault("Sender", wsman.NsAddressing, "MessageInformationHeaderRequired", CodeHeaderRequired, textHeaderRequired,
			textHeaderRequired+"Missing header: "+what+". ")
		return f
	}
	invalid := func(msg string) *wsman.Fault {
		return newFault("Sender", wsman.NsAddressing, "InvalidMessageInformationHeader", CodeInvalidHeader, textInvalidHeader, msg)
	}

	mid := child(header, wsman.NsAddressing, "MessageID")
	if mid == nil {
		return p, required("MessageID")
	}
	if !validMessageID(p.messageID) {
		p.messageID = ""
		return p, invalid("The WS-Management service cannot process the request. The MessageID header is not a valid uuid: URI. ")
	}
	act := child(header, wsman.NsAddressing, "Action")
	if act == nil {
		return p, required("Action")
	}
	p.action = textOf(act)
	if p.action == "" {
		return p, invalid("The WS-Management service cannot process the request. The Action header is empty. ")
	}
	rt := child(header, wsman.NsAddressing, "ReplyTo")
	if rt == nil {
		return p, required("ReplyTo")
	}
	addr := child(rt, wsman.NsAddressing, "Address")
	if addr == nil || textOf(addr) == "" {
		return p, invalid("The WS-Management service cannot process the request. The ReplyTo header has no Address. ")
	}
	if textOf(addr) != wsman.AddressAnonymous {
		f := newFault("Sender", wsman.NsWSMan, "UnsupportedFeature", CodeUnsupportedFeature, textUnsupportedFeature, textUnsupportedFeature)
		f.Detail = wsman.FaultDetailBase + "AddressingMode"
		return p, f
	}
	if loc := child(header, wsman.NsWSMan, "Locale"); loc != nil && mustUnderstand(loc) {
		f := newFault("Sender", wsman.NsWSMan, "UnsupportedFeature", CodeLocaleMustUnderstand, textUnsupportedFeature, textLocaleMustUnderstand)
		f.Detail = wsman.FaultDetailBase + "Locale"
		return p, f
	}
	if ot := child(header, wsman.NsWSMan, "OperationTimeout"); ot != nil {
		s := textOf(ot)
		d, err := wsman.ParseDuration(s)
		if err != nil || d < 0 || strings.Contains(s, "-") {
			return p, invalid("The WS-Management service cannot process the request. The XML contains an invalid timeout field in the SOAP header: " + s + ". ")
		}
		if maxTimeout > 0 && d > maxTimeout {
			d = maxTimeout
		}
		p.timeout = d
	}
	if me := child(header, wsman.NsWSMan, "MaxEnvelopeSize"); me != nil {
		n, err := strconv.ParseUint(textOf(me), 10, 32)
		if err != nil {
			return p, invalid("The WS-Management service cannot process the request. The MaxEnvelopeSize header is not a number. ")
		}
		if n < 8192 {
			f := newFault("Sender", wsman.NsWSMan, "EncodingLimit", CodeMinEnvelopeSize, textEncodingLimit, textMinEnvelopeSize)
			f.Detail = wsman.FaultDetailBase + "MinimumEnvelopeLimit"
			return p, f
		}
		p.maxEnv = int(n)
	}
	p.resource = textOf(child(header, wsman.NsWSMan, "ResourceURI"))
	if ss := child(header, wsman.NsWSMan, "SelectorSet"); ss != nil {
		p.selectors = parseSelectors(ss)
	}
	if os := child(header, wsman.NsWSMan, "OptionSet"); os != nil {
		for _, o := range os.ChildElements() {
			if !isNS(o, wsman.NsWSMan, "Option") {
				continue
			}
			p.options = append(p.options, wsman.Option{
				Name: o.SelectAttrValue("Name", ""), Value: textOf(o), Type: o.SelectAttrValue("Type", ""),
			})
			if v := o.SelectAttrValue("mustComply", ""); v == "true" || v == "1" {
				p.mustComply = true
			}
		}
	}
	return p, nil
}

func validMessageID(s string) bool {
	u, ok := strings.CutPrefix(s, "uuid:")
	if !ok || len(u) != 36 {
		return false
	}
	for i, c := range u {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

func parseSelectors(ss *etree.Element) []wsman.Selector {
	var out []wsman.Selector
	for _, s := range ss.ChildElements() {
		if !isNS(s, wsman.NsWSMan, "Selector") {
			continue
		}
		sel := wsman.Selector{Name: s.SelectAttrValue("Name", "")}
		if epr := child(s, wsman.NsAddressing, "EndpointReference"); epr != nil {
			sel.EPR = parseEPR(epr)
		} else {
			sel.Value = textOf(s)
		}
		out = append(out, sel)
	}
	return out
}

func parseEPR(el *etree.Element) *wsman.EndpointReference {
	epr := &wsman.EndpointReference{Address: textOf(child(el, wsman.NsAddressing, "Address"))}
	rp := child(el, wsman.NsAddressing, "ReferenceParameters")
	epr.ResourceURI = textOf(child(rp, wsman.NsWSMan, "ResourceURI"))
	if ss := child(rp, wsman.NsWSMan, "SelectorSet"); ss != nil {
		epr.Selectors = parseSelectors(ss)
	}
	return epr
}
