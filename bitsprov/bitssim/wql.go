package bitssim

import (
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// WQL filters are evaluated by the wsmantest server, not here: the
// provider declares BitsClientJob's properties (Properties, the
// wsmantest.Schema interface) and the server checks every query against
// them before Enumerate is called, as WMI checks a query against the
// class before it asks the provider. A name the class lacks, in the
// property list or anywhere in WHERE, is then n:CannotProcessFilter with
// WBEM_E_INVALID_QUERY, no job is listed and no enumeration context is
// made; the server applies the WHERE clause and the property list
// (w:XmlFragment items) to what Enumerate returns.

// jobSchema is BitsClientJob as job.instance renders it: its properties
// in that order, with the CIM types of the class page (spec
// bits-provider.md §1.3). State is uint16; the times are FILETIMEs
// packed in uint64.
var jobSchema = []wsmantest.PropertyDecl{
	{Name: "BytesTotal", Type: "uint64"},
	{Name: "BytesTransferred", Type: "uint64"},
	{Name: "Description", Type: "string"},
	{Name: "DisplayName", Type: "string"},
	{Name: "Files", Type: "object", Array: true}, // BitsClientFile[]
	{Name: "FilesTotal", Type: "uint32"},
	{Name: "FilesTransferred", Type: "uint32"},
	{Name: "JobCompletionTime", Type: "uint64"},
	{Name: "JobCreationTime", Type: "uint64"},
	{Name: "JobId", Type: "string"},
	{Name: "JobLastModificationTime", Type: "uint64"},
	{Name: "MinimumRetryDelay", Type: "uint32"},
	{Name: "NoProgressTimeout", Type: "uint32"},
	{Name: "Owner", Type: "string"},
	{Name: "Priority", Type: "uint32"},
	{Name: "State", Type: "uint16"},
	{Name: "TransientErrorCount", Type: "uint32"},
}

// Properties declares BitsClientJob's properties to the server, which
// checks and evaluates WQL queries with them (wsmantest.Schema).
func (p *Provider) Properties() []wsmantest.PropertyDecl {
	return append([]wsmantest.PropertyDecl(nil), jobSchema...)
}

// faultCannotProcessFilter is n:CannotProcessFilter (code 2150858778) in
// the shape of fixture fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml,
// the WMI plug-in's provider fault and an __ExtendedStatus from WinMgmt
// naming param, for a selector filter the class cannot apply.
func faultCannotProcessFilter(machine, param string, err error) *wsman.Fault {
	const reason = "The data source could not process the filter. The filter might be missing or it might be invalid. Change the filter and try the request again.  "
	ext := extendedStatus("ExecQuery", param, 0)
	ext.Props[3] = textProp("ProviderName", "WinMgmt")
	return &wsman.Fault{
		HTTPStatus: 500,
		Code:       "Sender",
		SubcodeNS:  wsman.NsEnumeration,
		Subcode:    "CannotProcessFilter",
		Reason:     reason,
		WSManCode:  wsmantest.CodeCannotProcessFilter,
		Machine:    machine,
		ProviderFault: &wsman.ProviderFault{
			Provider:  "WMI Provider",
			Path:      `%systemroot%\system32\WsmWmiPl.dll`,
			Text:      err.Error(),
			WSManCode: wsmantest.CodeCannotProcessFilter,
		},
		WMIError: ext,
	}
}
