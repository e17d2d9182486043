package wsman

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// Fault is a SOAP fault returned by a WS-Management service. Every field
// Windows sends is kept so that users see what went wrong instead of "500".
type Fault struct {
	// Host and Operation say where the fault came from ("Get", "Invoke CreateJob").
	Host      string
	Operation string
	// HTTPStatus is the HTTP status of the reply (500 for every Windows fault).
	HTTPStatus int
	// Action is the fault's wsa:Action.
	Action string
	// Code is "Sender" or "Receiver" (the local part of s:Code/s:Value).
	Code string
	// SubcodeNS and Subcode are the resolved QName of s:Subcode/s:Value,
	// e.g. NsWSMan + "InvalidSelectors" or NsAddressing + "DestinationUnreachable".
	SubcodeNS string
	Subcode   string
	// Reason is s:Reason/s:Text, trimmed.
	Reason string
	// Detail is the w:FaultDetail URI, if any.
	Detail string
	// WSManCode is f:WSManFault/@Code (e.g. 2150858843 = 0x8033805B); 0 if absent.
	WSManCode uint32
	// Machine is f:WSManFault/@Machine.
	Machine string
	// Message is the text of f:WSManFault/f:Message (without provider fault).
	Message string
	// ProviderFault is f:ProviderFault, if any.
	ProviderFault *ProviderFault
	// WMIError is a p:MSFT_WmiError or p:__ExtendedStatus object, if any.
	WMIError *Instance
}

// ProviderFault is the f:ProviderFault element of a WSManFault.
type ProviderFault struct {
	Provider string
	Path     string
	// Text is the provider's message (nested WSManFault message or plain text).
	Text string
	// WSManCode is the nested f:WSManFault/@Code, if any.
	WSManCode uint32
}

// Error renders "host: operation: Subcode (Code 0x8033805B): reason".
func (f *Fault) Error() string {
	var b []byte
	if f.Host != "" {
		b = append(b, f.Host...)
		b = append(b, ": "...)
	}
	if f.Operation != "" {
		b = append(b, f.Operation...)
		b = append(b, ": "...)
	}
	b = append(b, "WS-Management fault "...)
	if f.Subcode != "" {
		b = append(b, f.Subcode...)
	} else {
		b = append(b, f.Code...)
	}
	if f.WSManCode != 0 {
		b = fmt.Appendf(b, " (code %d = 0x%08X)", f.WSManCode, f.WSManCode)
	}
	if f.Reason != "" {
		b = append(b, ": "...)
		b = append(b, f.Reason...)
	}
	if f.ProviderFault != nil && f.ProviderFault.Text != "" && f.ProviderFault.Text != f.Reason {
		b = append(b, " [provider: "...)
		b = append(b, f.ProviderFault.Text...)
		b = append(b, ']')
	}
	return string(b)
}

// Common WSManFault codes (HRESULTs in the WinRM range 0x80338000).
const (
	CodeResourceNotFound   uint32 = 0x80338000 // a:DestinationUnreachable
	CodeInvalidHeader      uint32 = 0x8033800F // a:InvalidMessageInformationHeader
	CodeMustUnderstand     uint32 = 0x80338010
	CodeHeaderRequired     uint32 = 0x80338011
	CodeActionNotSupported uint32 = 0x80338013
	CodeCannotProcess      uint32 = 0x8033801A // n:CannotProcessFilter
	CodeInvalidEnumCtx     uint32 = 0x8033801B
	CodeTimedOut           uint32 = 0x80338029 // w:TimedOut
	CodeEncodingLimit      uint32 = 0x80338035
	CodeInvalidParameter   uint32 = 0x8033803A
	CodeInvalidSelectors   uint32 = 0x8033805B // w:InvalidSelectors (unexpected)
	CodeAccessDenied       uint32 = 0x80070005
)

// IsNotFound reports whether err is a fault saying the resource or instance
// does not exist (a:DestinationUnreachable, w:InvalidSelectors, or a WMI
// WBEM_E_NOT_FOUND).
func IsNotFound(err error) bool {
	var f *Fault
	if !errors.As(err, &f) {
		return false
	}
	switch {
	case f.SubcodeNS == NsAddressing && f.Subcode == "DestinationUnreachable":
		return true
	case f.SubcodeNS == NsWSMan && f.Subcode == "InvalidSelectors":
		return true
	case f.WSManCode == CodeResourceNotFound || f.WSManCode == 0x80041002:
		return true
	}
	return false
}

// IsTimedOut reports whether err is a w:TimedOut (or n:TimedOut) fault,
// which is a normal "no data yet" answer and safe to retry.
func IsTimedOut(err error) bool {
	var f *Fault
	return errors.As(err, &f) && f.Subcode == "TimedOut"
}

// parseFault reads an s:Fault element into a Fault. Every detail variant
// Windows sends is understood (wsman-wire.md §2.2); unknown parts are
// ignored rather than failing, because a fault must always reach the user.
func parseFault(el *etree.Element) *Fault {
	f := &Fault{}
	if code := child(el, NsSOAP, "Code"); code != nil {
		if v := child(code, NsSOAP, "Value"); v != nil {
			_, f.Code = resolveQName(v, strings.TrimSpace(textOf(v)))
		}
		if sub := child(code, NsSOAP, "Subcode"); sub != nil {
			if v := child(sub, NsSOAP, "Value"); v != nil {
				f.SubcodeNS, f.Subcode = resolveQName(v, strings.TrimSpace(textOf(v)))
			}
		}
	}
	if reason := child(el, NsSOAP, "Reason"); reason != nil {
		if t := child(reason, NsSOAP, "Text"); t != nil {
			f.Reason = collapseSpace(textOf(t))
		}
	}
	detail := child(el, NsSOAP, "Detail")
	if detail == nil {
		return f
	}
	for _, d := range elementKids(detail) {
		ns := d.NamespaceURI()
		switch {
		case ns == NsWSMan && d.Tag == "FaultDetail":
			f.Detail = strings.TrimSpace(textOf(d))
		case ns == NsWSManFault && d.Tag == "WSManFault":
			f.WSManCode = parseCode(d.SelectAttrValue("Code", ""))
			f.Machine = d.SelectAttrValue("Machine", "")
			if msg := child(d, NsWSManFault, "Message"); msg != nil {
				f.Message = collapseSpace(textOf(msg))
				if pf := child(msg, NsWSManFault, "ProviderFault"); pf != nil {
					f.ProviderFault, f.WMIError = parseProviderFault(pf)
				}
			}
		case d.Tag == "MSFT_WmiError" || d.Tag == "__ExtendedStatus":
			if in, err := ParseInstance(d); err == nil {
				f.WMIError = in
			}
		}
	}
	return f
}

// parseProviderFault reads f:ProviderFault: text, or a nested WSManFault,
// and an optional f:ExtendedError holding a WMI object.
func parseProviderFault(pf *etree.Element) (*ProviderFault, *Instance) {
	p := &ProviderFault{
		Provider: strings.TrimSpace(pf.SelectAttrValue("provider", "")),
		Path:     pf.SelectAttrValue("path", ""),
		Text:     collapseSpace(textOf(pf)),
	}
	if p.Provider == "" {
		p.Provider = pf.SelectAttrValue("providerId", "")
	}
	if inner := child(pf, NsWSManFault, "WSManFault"); inner != nil {
		p.WSManCode = parseCode(inner.SelectAttrValue("Code", ""))
		if msg := child(inner, NsWSManFault, "Message"); msg != nil && p.Text == "" {
			p.Text = collapseSpace(textOf(msg))
		}
	}
	var wmi *Instance
	if ext := child(pf, NsWSManFault, "ExtendedError"); ext != nil {
		if kids := elementKids(ext); len(kids) > 0 {
			if in, err := ParseInstance(kids[0]); err == nil {
				wmi = in
			}
		}
	}
	return p, wmi
}

// resolveQName resolves a QName written in element text ("w:InvalidSelectors")
// with the namespaces in scope at el; prefixes are never trusted as such.
func resolveQName(el *etree.Element, qname string) (ns, local string) {
	prefix, local, ok := strings.Cut(qname, ":")
	if !ok {
		prefix, local = "", qname
	}
	for e := el; e != nil; e = e.Parent() {
		for _, a := range e.Attr {
			if (prefix != "" && a.Space == "xmlns" && a.Key == prefix) ||
				(prefix == "" && a.Space == "" && a.Key == "xmlns") {
				return a.Value, local
			}
		}
	}
	return "", local
}

// parseCode reads a WSManFault Code: decimal as Windows sends it, or 0x hex.
func parseCode(s string) uint32 {
	s = strings.TrimSpace(s)
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		n, _ := strconv.ParseUint(h, 16, 32)
		return uint32(n)
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n)
	}
	// Some stacks print HRESULTs signed.
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		return uint32(n)
	}
	return 0
}

// collapseSpace trims text and folds runs of white space, which
// pretty-printing proxies and old WinRM versions insert into messages.
func collapseSpace(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\t\n\r") && !strings.Contains(s, "  ") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
