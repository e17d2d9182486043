package bitssim

import (
	"fmt"
	"strconv"

	"github.com/bitsremote/bitsremote/wsman"
)

// The faults below are built as *wsman.Fault values; the wsmantest server
// renders them as Windows does (HTTP 500, the subcode family's Action,
// WSManFault detail).

const (
	// wmiPluginPath and wmiPluginName are what Windows puts in the
	// f:ProviderFault of faults raised through the WMI plug-in
	// (fixture fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml).
	wmiPluginName = "WMI Provider"
	wmiPluginPath = `%systemroot%\system32\WsmWmiPl.dll`
	// providerName is BitsClientJob's [Provider] qualifier.
	providerName = "BitsClientProv"

	reasonNotFound         = "The WS-Management service cannot process the request. The service cannot find the resource identified by the resource URI and selectors. "
	reasonInvalidSelectors = "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. "
	reasonActionNotSupp    = "The WS-Management service cannot process the request because the action is not supported by the resource. "
	reasonInvalidParameter = "The WS-Management service cannot process the request because a parameter is invalid. "
)

// WMI status codes (wbemcli.h) used in faults.
const (
	wbemNotFound         uint32 = 0x80041002
	wbemInvalidParameter uint32 = 0x80041008
	wbemTypeMismatch     uint32 = 0x80041005
	wbemReadOnly         uint32 = 0x80041023
	wbemInvalidMethod    uint32 = 0x8004102E
	wbemInvalidMethodPar uint32 = 0x8004102F
)

// Other WSManFault codes.
const (
	codeInsufficientSelectors uint32 = 0x8033805A
)

// faultNotFound is what Windows returns for a WMI instance that does not
// exist. Evidence: the Get of a non-existent Win32_Process (Handle=1)
// captured in microsoft/omi issue #254 came back as s:Sender /
// a:DestinationUnreachable with the reason text below, and WinRM's own
// code 2150858752 (0x80338000, ERROR_WSMAN_RESOURCE_NOT_FOUND) as listed in
// spec/wsman-wire.md §2.3; nxtests maps 0x80338000 plus an __ExtendedStatus
// detail to "object not found". The __ExtendedStatus content (Operation
// GetObject, ProviderName BitsClientProv, StatusCode 0x80041002) follows
// the 2008 R2 CannotProcessFilter capture's shape but its values are our
// inference: no capture of this exact fault exists.
func (p *Provider) faultNotFound(machine string, operation, jobID string) *wsman.Fault {
	ext := extendedStatus(operation, fmt.Sprintf("BitsClientJob.JobId=%q", jobID), wbemNotFound)
	return &wsman.Fault{
		Action:     wsman.ActionFaultAddressing,
		Code:       "Sender",
		SubcodeNS:  wsman.NsAddressing,
		Subcode:    "DestinationUnreachable",
		Reason:     reasonNotFound,
		WSManCode:  wsman.CodeResourceNotFound,
		HTTPStatus: 500,
		Machine:    machine,
		Message:    reasonNotFound,
		ProviderFault: &wsman.ProviderFault{
			Provider:  wmiPluginName,
			Path:      wmiPluginPath,
			Text:      reasonNotFound,
			WSManCode: wsman.CodeResourceNotFound,
		},
		WMIError: ext,
	}
}

// extendedStatus builds the WMI __ExtendedStatus object Windows attaches to
// WMI plug-in faults.
func extendedStatus(operation, paramInfo string, status uint32) *wsman.Instance {
	return &wsman.Instance{
		ClassName:   "__ExtendedStatus",
		ResourceURI: namespaceURI + "/__ExtendedStatus",
		TypeName:    "__ExtendedStatus_Type",
		Props: []wsman.Property{
			{Name: "Description", Values: []wsman.Value{{Kind: wsman.KindNil}}},
			textProp("Operation", operation),
			textProp("ParameterInfo", paramInfo),
			textProp("ProviderName", providerName),
			textProp("StatusCode", strconv.FormatUint(uint64(status), 10)),
		},
	}
}

// faultInvalidSelectors is w:InvalidSelectors; detail is
// "UnexpectedSelectors" (extra or unknown keys) or "InsufficientSelectors"
// (missing key), as in fixture fault-w-InvalidSelectors-get.xml.
func faultInvalidSelectors(machine string, detail string) *wsman.Fault {
	code := wsman.CodeInvalidSelectors
	if detail == "InsufficientSelectors" {
		code = codeInsufficientSelectors
	}
	return &wsman.Fault{
		Action:     wsman.ActionFaultWSMan,
		Code:       "Sender",
		SubcodeNS:  wsman.NsWSMan,
		Subcode:    "InvalidSelectors",
		Reason:     reasonInvalidSelectors,
		Detail:     wsman.FaultDetailBase + detail,
		WSManCode:  code,
		HTTPStatus: 500,
		Machine:    machine,
		Message:    reasonInvalidSelectors,
		ProviderFault: &wsman.ProviderFault{
			Provider:  wmiPluginName,
			Path:      wmiPluginPath,
			Text:      reasonInvalidSelectors,
			WSManCode: code,
		},
	}
}

// faultActionNotSupported answers a method the class does not have.
func faultActionNotSupported(machine string, action string) *wsman.Fault {
	return &wsman.Fault{
		Action:     wsman.ActionFaultAddressing,
		Code:       "Sender",
		SubcodeNS:  wsman.NsAddressing,
		Subcode:    "ActionNotSupported",
		Reason:     reasonActionNotSupp,
		Detail:     wsman.FaultDetailBase + "ActionMismatch",
		WSManCode:  wsman.CodeActionNotSupported,
		HTTPStatus: 500,
		Machine:    machine,
		Message:    reasonActionNotSupp + "Action: " + action,
	}
}

// faultInvalidParameter answers a method input WMI cannot bind: an
// unknown parameter name, or a value that does not parse as the
// parameter's CIM type. [I] WMI reports these as
// WBEM_E_INVALID_METHOD_PARAMETERS / WBEM_E_TYPE_MISMATCH; the WinRM
// subcode for them was not seen in a capture.
func faultInvalidParameter(machine string, wmiCode uint32, msg string) *wsman.Fault {
	return &wsman.Fault{
		Action:     wsman.ActionFaultWSMan,
		Code:       "Sender",
		SubcodeNS:  wsman.NsWSMan,
		Subcode:    "InvalidParameter",
		Reason:     reasonInvalidParameter,
		Detail:     wsman.FaultDetailBase + "InvalidValue",
		WSManCode:  wmiCode,
		HTTPStatus: 500,
		Machine:    machine,
		Message:    msg,
		ProviderFault: &wsman.ProviderFault{
			Provider:  wmiPluginName,
			Path:      wmiPluginPath,
			Text:      msg,
			WSManCode: wmiCode,
		},
	}
}

// faultProvider is a failure HRESULT returned by the BITS provider from an
// operation that has no ReturnValue (PutInstance). WinRM's WMI plug-in
// reports provider failures as s:Receiver w:InternalError with the HRESULT
// as the WSManFault code (fixture
// fault-w-InternalError-providerfault-win32-error.xml) and, on WinRM 3.0+,
// an MSFT_WmiError detail carrying error_Code (fixture
// fault-w-QuotaLimit-msft-wmierror.xml).
func faultProvider(machine string, code uint32, msg string) *wsman.Fault {
	return &wsman.Fault{
		Action:     wsman.ActionFaultWSMan,
		Code:       "Receiver",
		SubcodeNS:  wsman.NsWSMan,
		Subcode:    "InternalError",
		Reason:     msg,
		WSManCode:  code,
		HTTPStatus: 500,
		Machine:    machine,
		Message:    msg,
		ProviderFault: &wsman.ProviderFault{
			Provider:  wmiPluginName,
			Path:      wmiPluginPath,
			Text:      msg,
			WSManCode: code,
		},
		WMIError: wmiError(code, msg),
	}
}

// wmiError builds an MSFT_WmiError detail as WinRM 3.0+ sends it.
func wmiError(code uint32, msg string) *wsman.Instance {
	nilProp := func(n string) wsman.Property {
		return wsman.Property{Name: n, Values: []wsman.Value{{Kind: wsman.KindNil}}}
	}
	return &wsman.Instance{
		ClassName:   "MSFT_WmiError",
		ResourceURI: wsman.ResourceCIM + "/MSFT_WmiError",
		TypeName:    "MSFT_WmiError_Type",
		Props: []wsman.Property{
			textProp("CIMStatusCode", "1"),
			nilProp("CIMStatusCodeDescription"),
			nilProp("ErrorSource"),
			textProp("ErrorSourceFormat", "0"),
			textProp("ErrorType", "0"),
			textProp("Message", msg),
			textProp("MessageID", fmt.Sprintf("HRESULT 0x%08x", code)),
			nilProp("OtherErrorSourceFormat"),
			nilProp("OtherErrorType"),
			nilProp("OwningEntity"),
			textProp("PerceivedSeverity", "0"),
			textProp("ProbableCause", "0"),
			nilProp("ProbableCauseDescription"),
			textProp("error_Category", "0"),
			textProp("error_Code", strconv.FormatUint(uint64(code), 10)),
			textProp("error_Type", "HRESULT"),
			textProp("error_WindowsErrorMessage", msg),
		},
	}
}

func textProp(name, text string) wsman.Property {
	return wsman.Property{Name: name, Values: []wsman.Value{{Text: text}}}
}
