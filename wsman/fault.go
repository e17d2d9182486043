package wsman

import (
	"errors"
	"fmt"
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
