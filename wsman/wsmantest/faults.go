package wsmantest

import (
	"fmt"
	"strings"

	"github.com/beevik/etree"

	"github.com/bitsremote/bitsremote/wsman"
)

// WinRM HRESULTs the server uses in f:WSManFault/@Code, named as in
// Windows' wsmerror.h. The values of the subcode families are those the
// real captures in shared/wire carry.
const (
	CodeResourceNotFound        uint32 = 0x80338000 // a:DestinationUnreachable
	CodeInvalidHeader           uint32 = 0x8033800F // a:InvalidMessageInformationHeader
	CodeMustUnderstand          uint32 = 0x80338010 // s:MustUnderstand
	CodeHeaderRequired          uint32 = 0x80338011 // a:MessageInformationHeaderRequired
	CodeActionNotSupported      uint32 = 0x80338013 // a:ActionNotSupported
	CodeInvalidRepresentation   uint32 = 0x80338015 // x:InvalidRepresentation
	CodeFilterDialectUnavail    uint32 = 0x80338019 // n:FilterDialectRequestedUnavailable
	CodeCannotProcessFilter     uint32 = 0x8033801A // n:CannotProcessFilter
	CodeInvalidEnumContext      uint32 = 0x8033801B // n:InvalidEnumerationContext
	CodeOperationTimedOut       uint32 = 0x80338029 // w:TimedOut
	CodeAlreadyExists           uint32 = 0x80338033 // w:AlreadyExists
	CodeInvalidParameter        uint32 = 0x8033803A // w:InvalidParameter
	CodeInvalidResourceURI      uint32 = 0x8033803B
	CodeSchemaValidation        uint32 = 0x80338041 // w:SchemaValidationError
	CodeUnsupportedFeature      uint32 = 0x80338042 // w:UnsupportedFeature
	CodeInvalidXML              uint32 = 0x80338043
	CodeMaxEnvelopeSizeExceeded uint32 = 0x80338048 // w:EncodingLimit (response too big)
	CodeOptionsNotSupported     uint32 = 0x80338051 // w:InvalidOptions (mustComply)
	CodeInsufficientSelectors   uint32 = 0x8033805A // w:InvalidSelectors
	CodeUnexpectedSelectors     uint32 = 0x8033805B // w:InvalidSelectors
	CodeMinEnvelopeSize         uint32 = 0x8033807E // w:EncodingLimit (MaxEnvelopeSize < 8192)
	CodeLocaleMustUnderstand    uint32 = 0x80338087 // w:UnsupportedFeature (Locale)
	CodeMaxConcurrentOperations uint32 = 0x803381A6 // w:InternalError (MaxConcurrentOperationsPerUser)
)

// Texts of Windows' messages (wsmerror.h and the captures), trailing space
// included where Windows sends one.
const (
	textResourceNotFound     = "The WS-Management service cannot process the request. The service cannot find the resource identified by the resource URI and selectors. "
	textInvalidHeader        = "The WS-Management service cannot process the request. The request contains one or more invalid SOAP headers. "
	textHeaderRequired       = "The WS-Management service cannot process the request. The request does not have all the expected SOAP headers. "
	textMustUnderstand       = "The WS-Management service cannot process a SOAP header in the request that is marked as mustUnderstand by the client.  This could be caused by the use of a version of the protocol which is not supported, or may be an incompatibility  between the client and server implementations. "
	textActionNotSupported   = "The WS-Management service does not support the action specified in the request. "
	textInvalidRepresent     = "The WS-Management service cannot identify the format of the object passed to a Put or Create method. The input XML may not be appropriate for the resource or uses the wrong schema for the resource. Change the input XML in the request. "
	textDialectUnavailable   = "The filter dialect (the type associated with the filter) was not supported for this resource. Change the filter dialect or remove it from the request and try the request again. "
	textCannotProcessFilter  = "The data source could not process the filter. The filter might be missing or it might be invalid. Change the filter and try the request again.  "
	textInvalidEnumContext   = "The WS-Enumeration context in the enumeration is not valid. Enumeration may have been completed or canceled. You cannot use this enumeration context anymore. Start a new enumeration. "
	textTimedOut             = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
	textAlreadyExists        = "The WS-Management service cannot create the resource because it already exists. "
	textInvalidParameter     = "The WS-Management service cannot process the request because a parameter for the operation is not valid. "
	textInvalidResourceURI   = "The WS-Management service cannot process the request. The resource URI is missing or it has an incorrect format. Check the documentation or use the following command for information on how to construct a resource URI: \"winrm help uris\".  "
	textSchemaValidation     = "The SOAP XML in the message does not match the corresponding XML schema definition. Change the XML and retry. "
	textUnsupportedFeature   = "The WS-Management service does not support the specified feature. Remove the unsupported feature from the request and retry. "
	textInvalidXML           = "The WS-Management service cannot process the request because the XML is invalid. "
	textEnvelopeExceeded     = "The response that the WS-Management service computed exceeds the maximum envelope size in the request. "
	textEncodingLimit        = "The WS-Management service cannot process the request because the encoding of the request exceeds an internal encoding limit. Reconfigure the client to send messages which fit the encoding limits of the service. "
	textOptionsNotSupported  = "The WS-Management provider does not support the specified option set because mustComply for one of the options is set to true. Change mustComply for one of the options to false. "
	textInsufficientSelector = "The WS-Management service cannot process the request because the request did not contain all required selectors. "
	textUnexpectedSelectors  = "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. "
	textMinEnvelopeSize      = "The WS-Management service cannot process the request because the envelope size in the request is too small. "
	textLocaleMustUnderstand = "The WS-Management service cannot guarantee that all data is returned in the requested locale as some data sources may not be able to comply. Resend the remote request with locale as a hint (the SOAP header should have mustUnderstand=\"false\") "
	textClassNotFound        = "The specified class does not exist in the given namespace. "
	textInvalidQuery         = "The WS-Management service cannot process the request. The WQL query is invalid. "
	textMaxConcurrentOps     = "The WS-Management service cannot process the request. The maximum number of concurrent operations for this user has been exceeded. Close existing operations for this user, or raise the quota for this user. "
	textMaxConcurrentOpsN    = "The WS-Management service cannot process the request. This user is allowed a maximum number of %d concurrent operations, which has been exceeded. Close existing operations for this user, or raise the quota for this user. "
)

// Provider identities Windows puts in f:ProviderFault.
const (
	wmiProviderName = "WMI Provider"
	wmiProviderPath = `%systemroot%\system32\WsmWmiPl.dll`
	svcProviderName = "WinRM service"
	svcProviderPath = `%systemroot%\system32\WsmSvc.dll`
)

func newFault(code, subNS, sub string, wsmanCode uint32, reason, message string) *wsman.Fault {
	return &wsman.Fault{
		HTTPStatus: 500,
		Code:       code,
		SubcodeNS:  subNS,
		Subcode:    sub,
		Reason:     reason,
		WSManCode:  wsmanCode,
		Message:    message,
	}
}

// FaultNotFound is what WinRM answers when the WMI instance addressed by the
// selectors does not exist (a:DestinationUnreachable, 0x80338000, as seen in
// microsoft/omi#254 for a Get of a missing Win32_Process). detail, when not
// empty, is the provider's own message.
func FaultNotFound(detail string) *wsman.Fault {
	f := newFault("Sender", wsman.NsAddressing, "DestinationUnreachable", CodeResourceNotFound, textResourceNotFound, "")
	f.Detail = wsman.FaultDetailBase + "ResourceNotFound"
	if detail == "" {
		detail = textResourceNotFound
	}
	f.ProviderFault = &wsman.ProviderFault{Provider: wmiProviderName, Path: wmiProviderPath, Text: detail, WSManCode: CodeResourceNotFound}
	return f
}

// FaultMaxConcurrentOperations is what WinRM answers when a user already
// holds limit concurrent operations (MaxConcurrentOperationsPerUser):
// s:Receiver, w:InternalError, WSManFault 0x803381A6 and no FaultDetail,
// the shape of the real fault-w-InternalError-quota-max-concurrent-operations.xml.
func FaultMaxConcurrentOperations(limit int) *wsman.Fault {
	return newFault("Receiver", wsman.NsWSMan, "InternalError", CodeMaxConcurrentOperations,
		textMaxConcurrentOps, fmt.Sprintf(textMaxConcurrentOpsN, limit))
}

// FaultInvalidSelectors is w:InvalidSelectors with detail UnexpectedSelectors
// (0x8033805B), the shape of the real fault-w-InvalidSelectors-get.xml.
func FaultInvalidSelectors() *wsman.Fault {
	f := newFault("Sender", wsman.NsWSMan, "InvalidSelectors", CodeUnexpectedSelectors, textUnexpectedSelectors, "")
	f.Detail = wsman.FaultDetailBase + "UnexpectedSelectors"
	f.ProviderFault = &wsman.ProviderFault{Provider: wmiProviderName, Path: wmiProviderPath, Text: textUnexpectedSelectors, WSManCode: CodeUnexpectedSelectors}
	return f
}

// FaultInsufficientSelectors is w:InvalidSelectors with detail
// InsufficientSelectors (0x8033805A): a key is missing.
func FaultInsufficientSelectors() *wsman.Fault {
	f := newFault("Sender", wsman.NsWSMan, "InvalidSelectors", CodeInsufficientSelectors, textInsufficientSelector, "")
	f.Detail = wsman.FaultDetailBase + "InsufficientSelectors"
	f.ProviderFault = &wsman.ProviderFault{Provider: wmiProviderName, Path: wmiProviderPath, Text: textInsufficientSelector, WSManCode: CodeInsufficientSelectors}
	return f
}

// FaultInvalidParameter is w:InvalidParameter with detail InvalidValue. code
// is the WSManFault code (Windows sends raw Win32 codes such as 87 here, see
// fault-w-InvalidParameter-code87.xml; 0 means 0x8033803A); text is the
// provider's message ("" for Windows' generic text).
func FaultInvalidParameter(text string, code uint32) *wsman.Fault {
	if code == 0 {
		code = CodeInvalidParameter
	}
	if text == "" {
		text = textInvalidParameter
	}
	f := newFault("Sender", wsman.NsWSMan, "InvalidParameter", code, text, "")
	f.Detail = wsman.FaultDetailBase + "InvalidValue"
	f.ProviderFault = &wsman.ProviderFault{Provider: wmiProviderName, Path: wmiProviderPath, Text: text}
	return f
}

// FaultInternalError is w:InternalError (Receiver) with a text provider fault,
// the shape of fault-w-InternalError-providerfault-win32-error.xml. code is
// the WSManFault code, usually an HRESULT such as 0x80070002.
func FaultInternalError(providerText string, code uint32) *wsman.Fault {
	f := newFault("Receiver", wsman.NsWSMan, "InternalError", code, providerText, "")
	f.ProviderFault = &wsman.ProviderFault{Provider: wmiProviderName, Path: wmiProviderPath, Text: providerText}
	return f
}

// FaultAlreadyExists is w:AlreadyExists (0x80338033), for a Create of an
// existing resource.
func FaultAlreadyExists() *wsman.Fault {
	return newFault("Sender", wsman.NsWSMan, "AlreadyExists", CodeAlreadyExists, textAlreadyExists, textAlreadyExists)
}

// FaultActionNotSupported is a:ActionNotSupported (0x80338013), for a method
// the class does not have.
func FaultActionNotSupported(action string) *wsman.Fault {
	return newFault("Sender", wsman.NsAddressing, "ActionNotSupported", CodeActionNotSupported, textActionNotSupported,
		textActionNotSupported+"Action: "+action+" ")
}

// FaultTimedOut is w:TimedOut (Receiver, 0x80338029), as in fault-w-TimedOut-receive.xml.
func FaultTimedOut() *wsman.Fault {
	return newFault("Receiver", wsman.NsWSMan, "TimedOut", CodeOperationTimedOut, textTimedOut, textTimedOut)
}

// FaultWMI is a WMI provider error as WinRM 3.0 reports it: subcode (local
// name in the wsman namespace, e.g. "InternalError", "InvalidParameter";
// "" means "InternalError"), and a p:MSFT_WmiError detail carrying the WMI
// HRESULT (e.g. 0x80041002 WBEM_E_NOT_FOUND) and message, in the shape of
// fault-w-QuotaLimit-msft-wmierror.xml.
func FaultWMI(subcode string, hresult uint32, message string) *wsman.Fault {
	if subcode == "" {
		subcode = "InternalError"
	}
	code := "Sender"
	if subcode == "InternalError" || subcode == "TimedOut" {
		code = "Receiver"
	}
	f := newFault(code, wsman.NsWSMan, subcode, 0, message, "")
	f.WMIError = WMIError(hresult, message)
	return f
}

// FaultExtendedStatus is a WMI provider failure in the shape WinRM's WMI
// plugin gives it with a p:__ExtendedStatus object (fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml):
// w:InternalError (Receiver) whose WSManFault and nested provider fault
// carry hresult (e.g. 0x80041002), and whose f:ExtendedError holds
// __ExtendedStatus with operation ("GetObject", "ExecMethod",
// "ExecQuery"), param (the object path or query) and hresult as StatusCode.
// resourceURI is the class URI; __ExtendedStatus lives in its namespace.
func FaultExtendedStatus(resourceURI, operation, param string, hresult uint32, message string) *wsman.Fault {
	f := newFault("Receiver", wsman.NsWSMan, "InternalError", hresult, message, "")
	f.ProviderFault = &wsman.ProviderFault{Provider: wmiProviderName, Path: wmiProviderPath, Text: message, WSManCode: hresult}
	ns := resourceURI
	if i := strings.LastIndexByte(ns, '/'); i >= 0 {
		ns = ns[:i]
	}
	f.WMIError = extendedStatus(ns, operation, param, hresult)
	return f
}

// WMIError builds the p:MSFT_WmiError instance Windows puts in s:Detail.
func WMIError(hresult uint32, message string) *wsman.Instance {
	in := &wsman.Instance{
		ClassName:   "MSFT_WmiError",
		ResourceURI: wsman.ResourceCIM + "/MSFT_WmiError",
		TypeName:    "MSFT_WmiError_Type",
	}
	text := func(s string) []wsman.Value { return []wsman.Value{{Kind: wsman.KindText, Text: s}} }
	null := []wsman.Value{{Kind: wsman.KindNil}}
	in.Props = []wsman.Property{
		{Name: "CIMStatusCode", Values: text(cimStatus(hresult))},
		{Name: "CIMStatusCodeDescription", Values: null},
		{Name: "ErrorSource", Values: null},
		{Name: "ErrorSourceFormat", Values: text("0")},
		{Name: "ErrorType", Values: text("0")},
		{Name: "Message", Values: text(message)},
		{Name: "MessageID", Values: text(fmt.Sprintf("HRESULT 0x%08x", hresult))},
		{Name: "OtherErrorSourceFormat", Values: null},
		{Name: "OtherErrorType", Values: null},
		{Name: "OwningEntity", Values: null},
		{Name: "PerceivedSeverity", Values: text("0")},
		{Name: "ProbableCause", Values: text("0")},
		{Name: "ProbableCauseDescription", Values: null},
		{Name: "error_Category", Values: text("30")},
		{Name: "error_Code", Values: text(fmt.Sprint(hresult))},
		{Name: "error_Type", Values: text("HRESULT")},
		{Name: "error_WindowsErrorMessage", Values: text(message)},
	}
	return in
}

// cimStatus maps common WMI HRESULTs to CIM status codes (DSP0004); the
// rest are CIM_ERR_FAILED, which is what WMI itself does.
func cimStatus(hr uint32) string {
	switch hr {
	case 0x80041002:
		return "6" // CIM_ERR_NOT_FOUND
	case 0x80041003:
		return "2" // CIM_ERR_ACCESS_DENIED
	case 0x80041008:
		return "4" // CIM_ERR_INVALID_PARAMETER
	case 0x8004100C:
		return "7" // CIM_ERR_NOT_SUPPORTED
	case 0x80041010:
		return "5" // CIM_ERR_INVALID_CLASS
	}
	return "1"
}

// cimTypes are the xsi:type values Windows puts on MSFT_WmiError properties.
var cimTypes = map[string]string{
	"CIMStatusCode": "cim:cimUnsignedInt", "ErrorSourceFormat": "cim:cimUnsignedShort",
	"ErrorType": "cim:cimUnsignedShort", "PerceivedSeverity": "cim:cimUnsignedShort",
	"ProbableCause": "cim:cimUnsignedShort", "error_Category": "cim:cimUnsignedInt",
	"error_Code": "cim:cimUnsignedInt",
}

// extendedStatus builds the p:__ExtendedStatus object WinRM's WMI plugin
// nests in f:ExtendedError (fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml).
func extendedStatus(nsURI, operation, param string, status uint32) *wsman.Instance {
	st := []wsman.Value{{Kind: wsman.KindNil}}
	if status != 0 {
		st = []wsman.Value{{Kind: wsman.KindText, Text: fmt.Sprint(status)}}
	}
	return &wsman.Instance{
		ClassName:   "__ExtendedStatus",
		ResourceURI: nsURI + "/__ExtendedStatus",
		TypeName:    "__ExtendedStatus_Type",
		Props: []wsman.Property{
			{Name: "Description", Values: []wsman.Value{{Kind: wsman.KindNil}}},
			{Name: "Operation", Values: []wsman.Value{{Kind: wsman.KindText, Text: operation}}},
			{Name: "ParameterInfo", Values: []wsman.Value{{Kind: wsman.KindText, Text: param}}},
			{Name: "ProviderName", Values: []wsman.Value{{Kind: wsman.KindText, Text: "WinMgmt"}}},
			{Name: "StatusCode", Values: st},
		},
	}
}

// wbemInvalidQuery is WBEM_E_INVALID_QUERY (wbemcli.h), WMI's status for
// a query it refuses: bad syntax, or a name the class lacks (wmic's
// SELECT of a property Win32_DiskDrive lacks failed with -2147217385 =
// 0x80041017 in avocado-framework/avocado-vt#2861).
const wbemInvalidQuery uint32 = 0x80041017

// faultInvalidQuery is Windows' answer to a WQL query WMI refuses. Its
// shape is the only real capture of a refused WQL filter, the 2008 R2
// fault for an unknown class (fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml):
// s:Sender, n:CannotProcessFilter, WSManFault 2150858778 outside and
// inside the WMI provider fault, __ExtendedStatus from WinMgmt naming
// ExecQuery and the query. What differs is inferred, as no capture of
// an invalid query exists: StatusCode carries WBEM_E_INVALID_QUERY
// (that capture's is nil: WinRM found the class missing itself), and the
// provider's message is textInvalidQuery, whose wording has no source
// either. Every refusal reads the same, as WMI gives no detail.
func faultInvalidQuery(nsURI, query string) *wsman.Fault {
	return faultCannotProcessFilter(nsURI, textInvalidQuery, query, wbemInvalidQuery)
}

// faultCannotProcessFilter is n:CannotProcessFilter with the WMI plugin's
// provider fault and __ExtendedStatus, as Windows answers a bad WQL query.
func faultCannotProcessFilter(nsURI, message, query string, status uint32) *wsman.Fault {
	f := newFault("Sender", wsman.NsEnumeration, "CannotProcessFilter", CodeCannotProcessFilter, textCannotProcessFilter, "")
	f.ProviderFault = &wsman.ProviderFault{Provider: wmiProviderName, Path: wmiProviderPath, Text: message, WSManCode: CodeCannotProcessFilter}
	f.WMIError = extendedStatus(nsURI, "ExecQuery", query, status)
	return f
}

// faultAction returns the wsa:Action of a fault: Windows uses one per
// subcode family (wsman-wire.md §2.2).
func faultAction(f *wsman.Fault) string {
	if f.Action != "" {
		return f.Action
	}
	switch f.SubcodeNS {
	case wsman.NsAddressing:
		return wsman.ActionFaultAddressing
	case wsman.NsEnumeration:
		return wsman.ActionFaultEnumeration
	case wsman.NsTransfer:
		return wsman.ActionFaultTransfer
	case wsman.NsWSMan, wsman.NsWSMV:
		return wsman.ActionFaultWSMan
	}
	// SOAP-level faults (s:MustUnderstand) are addressing faults in DSP0226.
	return wsman.ActionFaultAddressing
}

var subcodePrefix = map[string]string{
	wsman.NsAddressing:  "a",
	wsman.NsEnumeration: "n",
	wsman.NsTransfer:    "x",
	wsman.NsWSMan:       "w",
	wsman.NsWSMV:        "p",
	wsman.NsEventing:    "e",
	wsman.NsSOAP:        "s",
}

// renderFault writes s:Fault into body. machine fills an empty Machine.
func renderFault(body *etree.Element, f *wsman.Fault, machine string) {
	if f.Machine != "" {
		machine = f.Machine
	}
	fe := body.CreateElement("s:Fault")
	code := fe.CreateElement("s:Code")
	c := f.Code
	if c == "" {
		c = "Sender"
	}
	code.CreateElement("s:Value").SetText("s:" + c)
	if f.Subcode != "" {
		pfx, ok := subcodePrefix[f.SubcodeNS]
		sv := code.CreateElement("s:Subcode").CreateElement("s:Value")
		if !ok {
			pfx = "q"
			sv.CreateAttr("xmlns:q", f.SubcodeNS)
		}
		sv.SetText(pfx + ":" + f.Subcode)
	}
	rt := fe.CreateElement("s:Reason").CreateElement("s:Text")
	rt.CreateAttr("xml:lang", "en-US")
	rt.SetText(f.Reason)

	det := fe.CreateElement("s:Detail")
	if f.Detail != "" {
		det.CreateElement("w:FaultDetail").SetText(f.Detail)
	}
	msftErr := f.WMIError != nil && f.WMIError.ClassName == "MSFT_WmiError"
	if f.WSManCode != 0 || f.Message != "" || f.ProviderFault != nil || (f.WMIError != nil && !msftErr) {
		wf := det.CreateElement("f:WSManFault")
		wf.CreateAttr("xmlns:f", wsman.NsWSManFault)
		wf.CreateAttr("Code", fmt.Sprint(f.WSManCode))
		wf.CreateAttr("Machine", machine)
		msg := wf.CreateElement("f:Message")
		pf := f.ProviderFault
		if pf == nil && f.WMIError != nil && !msftErr {
			pf = &wsman.ProviderFault{Provider: wmiProviderName, Path: wmiProviderPath, Text: f.Message}
		}
		if pf == nil {
			msg.SetText(f.Message)
		} else {
			if f.Message != "" && f.Message != pf.Text {
				msg.CreateText(f.Message)
			}
			pe := msg.CreateElement("f:ProviderFault")
			pe.CreateAttr("provider", pf.Provider)
			pe.CreateAttr("path", pf.Path)
			if pf.WSManCode != 0 {
				inner := pe.CreateElement("f:WSManFault")
				inner.CreateAttr("xmlns:f", wsman.NsWSManFault)
				inner.CreateAttr("Code", fmt.Sprint(pf.WSManCode))
				inner.CreateAttr("Machine", machine)
				inner.CreateElement("f:Message").SetText(pf.Text)
			} else {
				pe.SetText(pf.Text)
			}
			if f.WMIError != nil && !msftErr {
				pe.CreateElement("f:ExtendedError").AddChild(instanceElement(f.WMIError, true))
			}
		}
	}
	if msftErr {
		el := instanceElement(f.WMIError, true)
		if el.SelectAttr("xmlns:cim") == nil {
			// The cim: prefix is used in the xsi:type values below.
			el.CreateAttr("xmlns:cim", wsman.NsCIM)
		}
		el.CreateAttr("xmlns:b", wsman.NsCIMBinding)
		el.CreateAttr("b:IsCIM_Error", "true")
		for _, c := range el.ChildElements() {
			t, ok := cimTypes[c.Tag]
			if !ok || c.SelectAttr("xsi:nil") != nil {
				t = "cim:cimString"
			}
			c.CreateAttr("xsi:type", t)
		}
		det.AddChild(el)
	}
}
