package bitssim

import (
	"fmt"
	"strconv"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// Faults are built with wsmantest's constructors, so that a fault raised
// here reads exactly like the same fault raised by the server itself (for
// example w:InvalidSelectors), plus the WMI detail only the provider knows.

// providerName is BitsClientJob's [Provider] qualifier.
const providerName = "BitsClientProv"

// WMI status codes (wbemcli.h) used in faults.
const (
	wbemNotFound                = uint32(bitsprov.CodeWBEMNotFound)
	wbemInvalidParameter        = uint32(bitsprov.CodeWBEMInvalidParameter)
	wbemTypeMismatch     uint32 = 0x80041005
	wbemReadOnly         uint32 = 0x80041023 // = -2147217373, windows-sys WBEM_E_READ_ONLY
	wbemInvalidMethodPar        = uint32(bitsprov.CodeWBEMInvalidMethodParams)
)

// withMachine sets the fault's Machine, which the server would otherwise
// fill in, so that tests calling the provider directly see it too.
func withMachine(f *wsman.Fault, machine string) *wsman.Fault {
	f.Machine = machine
	return f
}

// faultNotFound is what Windows returns for a WMI instance that does not
// exist. Evidence: the Get of a non-existent Win32_Process (Handle=1)
// captured in microsoft/omi issue #254 came back as s:Sender /
// a:DestinationUnreachable with the reason "The WS-Management service
// cannot process the request. The service cannot find the resource
// identified by the resource URI and selectors." and WinRM's code
// 2150858752 (0x80338000, listed in spec/wsman-wire.md §2.3); nxtests maps
// 0x80338000 plus an __ExtendedStatus detail to "object not found". The
// __ExtendedStatus content (Operation GetObject or ExecMethod, StatusCode
// WBEM_E_NOT_FOUND 0x80041002) follows the shape of the 2008 R2
// CannotProcessFilter capture; its values are our inference, as no capture
// of this exact fault exists.
func (p *Provider) faultNotFound(machine, operation, jobID string) *wsman.Fault {
	f := wsmantest.FaultNotFound("")
	f.WMIError = extendedStatus(operation, fmt.Sprintf("BitsClientJob.JobId=%q", jobID), wbemNotFound)
	return withMachine(f, machine)
}

// extendedStatus builds the WMI __ExtendedStatus object Windows attaches to
// WMI plug-in faults, in the namespace root\microsoft\bits.
func extendedStatus(operation, paramInfo string, status uint32) *wsman.Instance {
	st := wsman.Value{Kind: wsman.KindNil}
	if status != 0 {
		st = wsman.Value{Text: strconv.FormatUint(uint64(status), 10)}
	}
	return &wsman.Instance{
		ClassName:   "__ExtendedStatus",
		ResourceURI: namespaceURI + "/__ExtendedStatus",
		TypeName:    "__ExtendedStatus_Type",
		Props: []wsman.Property{
			{Name: "Description", Values: []wsman.Value{{Kind: wsman.KindNil}}},
			textProp("Operation", operation),
			textProp("ParameterInfo", paramInfo),
			textProp("ProviderName", providerName),
			{Name: "StatusCode", Values: []wsman.Value{st}},
		},
	}
}

// faultInvalidSelectors is w:InvalidSelectors; detail is
// "UnexpectedSelectors" (extra or unknown keys) or "InsufficientSelectors"
// (missing key), as in fixture fault-w-InvalidSelectors-get.xml.
func faultInvalidSelectors(machine, detail string) *wsman.Fault {
	if detail == "InsufficientSelectors" {
		return withMachine(wsmantest.FaultInsufficientSelectors(), machine)
	}
	return withMachine(wsmantest.FaultInvalidSelectors(), machine)
}

// faultActionNotSupported answers a method the class does not have.
func faultActionNotSupported(machine, action string) *wsman.Fault {
	return withMachine(wsmantest.FaultActionNotSupported(action), machine)
}

// faultInvalidParameter answers a method input WMI cannot bind: an
// unknown parameter name, or a value that does not parse as the
// parameter's CIM type. [I] WMI reports these as
// WBEM_E_INVALID_METHOD_PARAMETERS / WBEM_E_TYPE_MISMATCH; the WinRM
// subcode for them was not seen in a capture.
func faultInvalidParameter(machine string, wmiCode uint32, msg string) *wsman.Fault {
	return withMachine(wsmantest.FaultInvalidParameter(msg, wmiCode), machine)
}

// faultProvider is a failure HRESULT returned by the BITS provider from an
// operation that has no ReturnValue (PutInstance). WinRM's WMI plug-in
// reports provider failures as s:Receiver w:InternalError with the HRESULT
// as the WSManFault code (fixture
// fault-w-InternalError-providerfault-win32-error.xml); WinRM 3.0+ adds an
// MSFT_WmiError detail carrying error_Code (fixture
// fault-w-QuotaLimit-msft-wmierror.xml).
func faultProvider(machine string, code uint32, msg string) *wsman.Fault {
	f := wsmantest.FaultInternalError(msg, code)
	f.WMIError = wsmantest.WMIError(code, msg)
	return withMachine(f, machine)
}

func textProp(name, text string) wsman.Property {
	return wsman.Property{Name: name, Values: []wsman.Value{{Text: text}}}
}
