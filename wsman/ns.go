// Package wsman is a generic WS-Management client (DMTF DSP0226 with the
// Microsoft MS-WSMV extensions): Identify, Get, Put, Create, Delete, Invoke
// and Enumerate/Pull/Release, with typed SOAP faults and WMI instances.
//
// It knows nothing of BITS. Elements are always matched by namespace URI,
// never by prefix, because Windows and other peers use different prefixes
// for the same namespaces. Requests are written straight into bytes
// (fastwrite.go) and replies read by a small strict scanner (fastread.go);
// both are held byte for byte and value for value to the etree builder and
// reader, which stay as the reference implementation and read faults and
// anything the fast reader leaves to them.
package wsman

// Namespace URIs used on the wire (MS-WSMV 2.2.1).
const (
	NsSOAP        = "http://www.w3.org/2003/05/soap-envelope"
	NsAddressing  = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	NsWSMan       = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
	NsWSMV        = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
	NsEnumeration = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
	NsTransfer    = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
	NsEventing    = "http://schemas.xmlsoap.org/ws/2004/08/eventing"
	NsCIMBinding  = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"
	NsWSManFault  = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
	NsCIM         = "http://schemas.dmtf.org/wbem/wscim/1/common"
	NsXSI         = "http://www.w3.org/2001/XMLSchema-instance"
	// NsIdentity is what every real Windows capture uses; MS-WSMV prints
	// ".../identify/1/..." by mistake.
	NsIdentity = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
	NsConfig   = "http://schemas.microsoft.com/wbem/wsman/1/config"
	NsShell    = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
)

// Action URIs.
const (
	ActionGet              = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
	ActionGetResponse      = "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse"
	ActionPut              = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put"
	ActionPutResponse      = "http://schemas.xmlsoap.org/ws/2004/09/transfer/PutResponse"
	ActionCreate           = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
	ActionCreateResponse   = "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse"
	ActionDelete           = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
	ActionDeleteResponse   = "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse"
	ActionEnumerate        = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"
	ActionEnumerateResp    = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse"
	ActionPull             = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull"
	ActionPullResponse     = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/PullResponse"
	ActionRelease          = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release"
	ActionReleaseResponse  = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/ReleaseResponse"
	ActionFaultWSMan       = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
	ActionFaultAddressing  = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault"
	ActionFaultEnumeration = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/fault"
	ActionFaultTransfer    = "http://schemas.xmlsoap.org/ws/2004/09/transfer/fault"
)

// Other well-known URIs.
const (
	AddressAnonymous = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
	DialectWQL       = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
	DialectSelector  = "http://schemas.dmtf.org/wbem/wsman/1/wsman/SelectorFilter"
	FaultDetailBase  = "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/"
	// ResourceWMI is the prefix of every WMI class resource URI.
	ResourceWMI = "http://schemas.microsoft.com/wbem/wsman/1/wmi"
	// ResourceCIM is the prefix of DMTF CIM class resource URIs.
	ResourceCIM = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2"
)
