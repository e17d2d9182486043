package wsman

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"
)

// wireDir returns ../shared/wire relative to the repository root, or skips
// the test when the captures are not present.
func wireDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Skip("cannot locate the test file")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "shared", "wire")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("real wire captures not present at %s", dir)
	}
	return dir
}

func readWire(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(wireDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wireCheck inspects one parsed capture.
type wireCheck func(t *testing.T, rep *reply)

func checkFault(want Fault, pf *ProviderFault, wmiClass string, wmiProps map[string]string) wireCheck {
	return func(t *testing.T, rep *reply) {
		fe := rep.fault()
		if fe == nil {
			t.Fatal("no s:Fault")
		}
		got := parseFault(fe)
		if diff := cmp.Diff(pf, got.ProviderFault); diff != "" {
			t.Errorf("ProviderFault (-want +got):\n%s", diff)
		}
		if wmiClass == "" {
			if got.WMIError != nil {
				t.Errorf("unexpected WMIError %s", got.WMIError.ClassName)
			}
		} else {
			if got.WMIError == nil || got.WMIError.ClassName != wmiClass {
				t.Fatalf("WMIError = %+v, want class %s", got.WMIError, wmiClass)
			}
			for name, v := range wmiProps {
				if v == "<nil>" {
					if !got.WMIError.IsNil(name) {
						t.Errorf("WMIError.%s not nil", name)
					}
					continue
				}
				if s, err := got.WMIError.String(name); err != nil || s != v {
					t.Errorf("WMIError.%s = %q, %v; want %q", name, s, err, v)
				}
			}
		}
		got.ProviderFault, got.WMIError = nil, nil
		if diff := cmp.Diff(want, *got); diff != "" {
			t.Errorf("Fault (-want +got):\n%s", diff)
		}
	}
}

func checkPage(bodyName, ctx string, done bool, nItems int, more func(t *testing.T, p *page)) wireCheck {
	return func(t *testing.T, rep *reply) {
		p, err := parsePage(rep, bodyName)
		if err != nil {
			t.Fatal(err)
		}
		if p.context != ctx || p.done != done || len(p.items) != nItems {
			t.Fatalf("page context=%q done=%v items=%d; want %q %v %d", p.context, p.done, len(p.items), ctx, done, nItems)
		}
		if more != nil {
			more(t, p)
		}
	}
}

func checkBody(more func(t *testing.T, in *Instance)) wireCheck {
	return func(t *testing.T, rep *reply) {
		in, err := ParseInstance(rep.bodyChild())
		if err != nil {
			t.Fatal(err)
		}
		more(t, in)
	}
}

func checkRequest(action, resource string, sels []Selector, body func(t *testing.T, rep *reply)) wireCheck {
	return func(t *testing.T, rep *reply) {
		if got := rep.headerText(NsAddressing, "Action"); got != action {
			t.Errorf("Action = %q, want %q", got, action)
		}
		if got := rep.headerText(NsWSMan, "ResourceURI"); got != resource {
			t.Errorf("ResourceURI = %q, want %q", got, resource)
		}
		var got []Selector
		if ss := child(rep.header, NsWSMan, "SelectorSet"); ss != nil {
			var err error
			if got, err = parseSelectorSet(ss); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(sels, got); diff != "" {
			t.Errorf("selectors (-want +got):\n%s", diff)
		}
		if body != nil {
			body(t, rep)
		}
	}
}

func wantStr(t *testing.T, in *Instance, name, want string) {
	t.Helper()
	if got, err := in.String(name); err != nil || got != want {
		t.Errorf("%s.%s = %q, %v; want %q", in.ClassName, name, got, err, want)
	}
}

func wantU64(t *testing.T, in *Instance, name string, want uint64) {
	t.Helper()
	if got, err := in.Uint64(name); err != nil || got != want {
		t.Errorf("%s.%s = %d, %v; want %d", in.ClassName, name, got, err, want)
	}
}

func countNils(in *Instance) int {
	n := 0
	for _, p := range in.Props {
		if len(p.Values) == 1 && p.Values[0].Kind == KindNil {
			n++
		}
	}
	return n
}

const (
	wmiSvc    = ResourceWMI + "/root/cimv2/Win32_Service"
	errReason = "The WS-Management service cannot process the request."
)

var wireTable = map[string]wireCheck{
	"fault-a-InvalidMessageInformationHeader-bad-timeout.xml": checkFault(Fault{
		Code: "Sender", SubcodeNS: NsAddressing, Subcode: "InvalidMessageInformationHeader",
		Reason:    errReason + " The request contains one or more invalid SOAP headers.",
		WSManCode: 2150858767, Machine: "127.0.0.1",
		Message: errReason + " The XML contains an invalid timeout field in the SOAP header: PT-1S.",
	}, nil, "", nil),
	"fault-n-CannotProcessFilter-wmi-extendedstatus_2008R2.xml": checkFault(Fault{
		Code: "Sender", SubcodeNS: NsEnumeration, Subcode: "CannotProcessFilter",
		Reason:    "The data source could not process the filter. The filter might be missing or it might be invalid. Change the filter and try the request again.",
		WSManCode: 2150858778, Machine: "localhost",
	}, &ProviderFault{Provider: "WMI Provider", Path: `%systemroot%\system32\WsmWmiPl.dll`, Text: "The specified class does not exist in the given namespace.", WSManCode: 2150858778},
		"__ExtendedStatus", map[string]string{"Operation": "ExecQuery", "ParameterInfo": `Select * from Win32_Processa where name="sshd.exe"`, "ProviderName": "WinMgmt", "StatusCode": "<nil>", "Description": "<nil>"}),
	"fault-n-CannotProcessFilter-wmiv1-plugin.xml": checkFault(Fault{
		Code: "Sender", SubcodeNS: NsEnumeration, Subcode: "CannotProcessFilter",
		Reason:    "The data source could not process the filter. The filter might be missing or it might be invalid. Change the filter and try the request again.",
		WSManCode: 2150858778,
	}, &ProviderFault{Provider: "WMIv1 plugin for Windows Remote Management", Path: `%systemroot%\system32\WsmWmiPl.dll`, Text: "The specified class does not exist in the given namespace.", WSManCode: 2150858778}, "", nil),
	"fault-w-InternalError-filename-too-long.xml": checkFault(Fault{
		Code: "Receiver", SubcodeNS: NsWSMan, Subcode: "InternalError", Reason: "The filename or extension is too long.",
		WSManCode: 2147942606, Machine: "52.12.219.136",
	}, &ProviderFault{Provider: "Shell cmd plugin", Path: `%systemroot%\system32\winrscmd.dll`, Text: "The filename or extension is too long."}, "", nil),
	"fault-w-InternalError-providerfault-win32-error.xml": checkFault(Fault{
		Code: "Receiver", SubcodeNS: NsWSMan, Subcode: "InternalError", Reason: "The system cannot find the file specified.",
		WSManCode: 0x80070002, Machine: "server2008r2.domain.local",
	}, &ProviderFault{Provider: "Shell cmd plugin", Path: `%systemroot%\system32\winrscmd.dll`, Text: "The system cannot find the file specified."}, "", nil),
	"fault-w-InternalError-quota-max-concurrent-operations.xml": checkFault(Fault{
		Code: "Receiver", SubcodeNS: NsWSMan, Subcode: "InternalError",
		Reason:    errReason + " The maximum number of concurrent operations for this user has been exceeded. Close existing operations for this user, or raise the quota for this user.",
		WSManCode: 0x803381A6, Machine: "103040106",
		Message: errReason + " This user is allowed a maximum number of 15 concurrent operations, which has been exceeded. Close existing operations for this user, or raise the quota for this user.",
	}, nil, "", nil),
	"fault-w-InvalidParameter-code87.xml": checkFault(Fault{
		Code: "Sender", SubcodeNS: NsWSMan, Subcode: "InvalidParameter", Reason: "The parameter is incorrect.",
		Detail: FaultDetailBase + "InvalidValue", WSManCode: 87, Machine: "127.0.0.1",
	}, &ProviderFault{Provider: "Shell cmd plugin", Path: `%systemroot%\system32\winrscmd.dll`, Text: "The parameter is incorrect."}, "", nil),
	"fault-w-InvalidSelectors-get.xml": checkFault(Fault{
		Code: "Sender", SubcodeNS: NsWSMan, Subcode: "InvalidSelectors",
		Reason: "The WS-Management service cannot process the request because the request contained invalid selectors for the resource.",
		Detail: FaultDetailBase + "UnexpectedSelectors", WSManCode: CodeInvalidSelectors, Machine: "127.0.0.1",
	}, &ProviderFault{Provider: "Shell provider", Path: `%systemroot%\system32\WsmSvc.dll`, Text: "The WS-Management service cannot process the request because the request contained invalid selectors for the resource.", WSManCode: CodeInvalidSelectors}, "", nil),
	"fault-w-QuotaLimit-msft-wmierror.xml": checkFault(Fault{
		Code: "Sender", SubcodeNS: NsWSMan, Subcode: "QuotaLimit",
		Reason: errReason + " The maximum number of concurrent shells for this user has been exceeded. Close existing shells or raise the quota for this user.",
	}, nil, "MSFT_WmiError", map[string]string{"CIMStatusCode": "27", "MessageID": "HRESULT 0x803381a5", "error_Code": "2150859173", "error_Type": "HRESULT", "OwningEntity": "<nil>"}),
	"fault-w-TimedOut-receive.xml": checkFault(Fault{
		Code: "Receiver", SubcodeNS: NsWSMan, Subcode: "TimedOut",
		Reason:    "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
		WSManCode: CodeTimedOut, Machine: "192.168.56.11",
		Message: "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
	}, nil, "", nil),
	// The spec example uses the prefix a without declaring it (only wsa is
	// declared), so the subcode namespace does not resolve.
	"spec-fault-a-DestinationUnreachable-get.xml": checkFault(Fault{
		Code: "Sender", SubcodeNS: "", Subcode: "DestinationUnreachable",
		Reason: errReason + " The service cannot find the resource identified by the resource URI and selectors.",
		Detail: "wsman:faultDetail/ResourceNotFound", WSManCode: 32768, Machine: "http://localhost:80/wsman",
	}, &ProviderFault{Provider: "D9A2A039-A4B3-4A70-8CB9-8D7714EAD776", Text: errReason + " The service cannot find the resource identified by the resource URI and selectors.", WSManCode: 32768}, "", nil),

	"identify-request-unauthenticated.xml": func(t *testing.T, rep *reply) {
		if rep.header == nil || len(rep.header.ChildElements()) != 0 || child(rep.body, NsIdentity, "Identify") == nil {
			t.Error("not an empty-header Identify")
		}
	},
	"identify-response-unauthenticated.xml": checkBody(func(t *testing.T, in *Instance) {
		wantStr(t, in, "ProtocolVersion", NsWSMan)
		wantStr(t, in, "ProductVendor", "Microsoft Corporation")
		wantStr(t, in, "ProductVersion", "OS: 0.0.0 SP: 0.0 Stack: 3.0")
	}),
	"spec-invoke-request_Win32_Process_Create.xml": checkRequest(ResourceWMI+"/root/cimv2/Win32_Process/Create", ResourceWMI+"/root/cimv2/Win32_Process", nil, checkBody(func(t *testing.T, in *Instance) {
		wantStr(t, in, "CommandLine", "notepad.exe")
		wantStr(t, in, "CurrentDirectory", `C:\`)
	})),
	"spec-invoke-response_Win32_Process_Create.xml": checkBody(func(t *testing.T, in *Instance) {
		if in.ClassName != "Create_OUTPUT" || in.ResourceURI != ResourceWMI+"/root/cimv2/Win32_Process" {
			t.Errorf("output element %s in %s", in.ClassName, in.ResourceURI)
		}
		wantU64(t, in, "ProcessId", 4000)
		wantU64(t, in, "ReturnValue", 0)
	}),
	"spec-put-request_myclass.xml": checkRequest(ActionPut, ResourceWMI+"/root/mynamespace/myclass", []Selector{{Name: "id", Value: "1"}}, nil),
	// The txwinrm templates keep placeholders for the URI.
	"template-wmi-enumerate-wql-request.xml": checkRequest(ActionEnumerate, "{resource_uri}", nil, func(t *testing.T, rep *reply) {
		en := child(rep.body, NsEnumeration, "Enumerate")
		f := child(en, NsWSMan, "Filter")
		if f == nil || f.SelectAttrValue("Dialect", "") != DialectWQL || child(en, NsWSMan, "OptimizeEnumeration") == nil {
			t.Error("no optimized WQL filter")
		}
	}),
	"template-wmi-pull-request.xml": checkRequest(ActionPull, "{resource_uri}", nil, func(t *testing.T, rep *reply) {
		if child(child(rep.body, NsEnumeration, "Pull"), NsEnumeration, "EnumerationContext") == nil {
			t.Error("no context in Pull")
		}
	}),

	"wmi-enum-arrays-response_Win32_ComputerSystem_2012.xml": checkPage("EnumerateResponse", "", true, 1, func(t *testing.T, p *page) {
		roles, err := p.items[0].Instance.Strings("Roles")
		if want := []string{"LM_Workstation", "LM_Server", "NT", "Server_NT"}; err != nil || !slices.Equal(roles, want) {
			t.Errorf("Roles = %q, %v; want %q", roles, err, want)
		}
		if n := len(p.items[0].Instance.Props); n != 53 {
			t.Errorf("%d properties, want 53 (56 elements, Roles ×4)", n)
		}
	}),
	"wmi-enum-complete-response_Win32_Processor_2003.xml": checkPage("EnumerateResponse", "", true, 1, func(t *testing.T, p *page) {
		in := p.items[0].Instance
		wantStr(t, in, "Name", "Intel(R) Xeon(R) CPU           E5645  @ 2.40GHz")
		wantU64(t, in, "MaxClockSpeed", 2144)
		wantStr(t, in, "Manufacturer", "GenuineIntel")
	}),
	"wmi-enum-first-batch-response_Win32_LogicalDisk_2008.xml": checkPage("EnumerateResponse", "uuid:5BB9D3D1-8FF1-40FA-ADA2-BE91F7F050E6", false, 1, func(t *testing.T, p *page) {
		wantStr(t, p.items[0].Instance, "DeviceID", "C:")
		wantU64(t, p.items[0].Instance, "FreeSpace", 9769496576)
	}),
	"wmi-pull-end-of-sequence-response_Win32_LogicalDisk_2008.xml": checkPage("PullResponse", "", true, 1, func(t *testing.T, p *page) {
		wantStr(t, p.items[0].Instance, "DeviceID", "D:")
		wantU64(t, p.items[0].Instance, "FreeSpace", 53584777216)
	}),
	"wmi-enum-optimized-complete-response_Win32_OperatingSystem_2012.xml": checkPage("EnumerateResponse", "", true, 1, func(t *testing.T, p *page) {
		in := p.items[0].Instance
		if in.TypeName != "Win32_OperatingSystem_Type" || len(in.Props) != 64 || countNils(in) != 7 {
			t.Errorf("type %q, %d props, %d nils; want 64 props, 7 nils", in.TypeName, len(in.Props), countNils(in))
		}
		for name, want := range map[string]time.Time{
			"InstallDate":    time.Date(2013, 3, 9, 2, 57, 32, 0, time.UTC),
			"LastBootUpTime": time.Date(2013, 4, 15, 16, 28, 43, 488171000, time.UTC),
			"LocalDateTime":  time.Date(2013, 4, 15, 20, 28, 20, 913000000, time.UTC),
		} {
			if p, _ := in.Property(name); p == nil || p.Values[0].Kind != KindDatetime {
				t.Errorf("%s is not a datetime", name)
			}
			if got, err := in.Datetime(name); err != nil || !got.Equal(want) {
				t.Errorf("%s = %v, %v; want %v", name, got, err, want)
			}
		}
	}),
	"wmi-enum-optimized-first-batch-response_Win32_Service_2012.xml": checkPage("EnumerateResponse", "uuid:6C0AB864-47F9-4D3E-8601-B786754BBABB", false, 1, func(t *testing.T, p *page) {
		in := p.items[0].Instance
		if in.ClassName != "Win32_Service" || in.ResourceURI != wmiSvc || len(in.Props) != 25 {
			t.Errorf("item %s %s with %d props", in.ClassName, in.ResourceURI, len(in.Props))
		}
		wantStr(t, in, "Name", "AeLookupSvc")
	}),
	"wmi-enum-xmlfragment-response_Win32_OperatingSystem_2012.xml": checkPage("EnumerateResponse", "", true, 1, func(t *testing.T, p *page) {
		in := p.items[0].Instance
		if !in.Fragment || in.ClassName != "XmlFragment" || len(in.Props) != 64 || countNils(in) != 7 {
			t.Errorf("fragment=%v class=%s props=%d nils=%d", in.Fragment, in.ClassName, len(in.Props), countNils(in))
		}
		wantU64(t, in, "MaxNumberOfProcesses", 4294967295)
		wantU64(t, in, "TotalVirtualMemorySize", 9017972)
		if got, err := in.Datetime("LastBootUpTime"); err != nil || !got.Equal(time.Date(2013, 4, 15, 16, 28, 43, 488171000, time.UTC)) {
			t.Errorf("LastBootUpTime = %v, %v", got, err)
		}
		if !in.IsNil("CSDVersion") {
			t.Error("CSDVersion not nil")
		}
	}),
	"wmi-pull-arrays-nil-response_Win32_NetworkAdapterConfiguration_2012.xml": checkPage("PullResponse", "", true, 12, func(t *testing.T, p *page) {
		for i, it := range p.items {
			wantU64(t, it.Instance, "Index", uint64(i+1))
			wantProps, wantNils := 50, 42
			if i == 9 {
				wantProps, wantNils = 56, 26
			}
			if len(it.Instance.Props) != wantProps || countNils(it.Instance) != wantNils {
				t.Errorf("item %d: %d props, %d nils; want %d, %d", i, len(it.Instance.Props), countNils(it.Instance), wantProps, wantNils)
			}
		}
		in := p.items[9].Instance
		got, err := in.Strings("DNSDomainSuffixSearchOrder")
		if want := []string{"us-east-1.ec2-utilities.amazonaws.com", "ec2.internal", "compute-1.internal", "solutions.loc"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("DNSDomainSuffixSearchOrder = %q, %v", got, err)
		}
		if got, err := in.Strings("IPAddress"); err != nil || !slices.Equal(got, []string{"10.30.40.193"}) {
			t.Errorf("IPAddress = %q, %v", got, err)
		}
		if got, err := p.items[0].Instance.Strings("DHCPServer"); err != nil || len(got) != 0 {
			t.Errorf("nil DHCPServer = %q, %v; want empty", got, err)
		}
		wantStr(t, p.items[0].Instance, "Description", "WAN Miniport (SSTP)")
	}),
	"wmi-pull-response-end-of-sequence_Win32_Service_2012.xml": checkPage("PullResponse", "", true, 28, func(t *testing.T, p *page) {
		wantStr(t, p.items[0].Instance, "Name", "UI0Detect")
		wantStr(t, p.items[27].Instance, "Name", "xensvc")
	}),
	"wmi-pull-response-mid-sequence_Win32_Service_2012.xml": checkPage("PullResponse", "uuid:69C1232D-0042-447B-BBA4-F6DD9324B110", false, 50, func(t *testing.T, p *page) {
		wantStr(t, p.items[0].Instance, "Name", "ALG")
		wantStr(t, p.items[49].Instance, "Name", "MSiSCSI")
		for i, it := range p.items {
			if it.Instance.ClassName != "Win32_Service" || len(it.Instance.Props) != 25 {
				t.Errorf("item %d: %s with %d props", i, it.Instance.ClassName, len(it.Instance.Props))
			}
		}
	}),
	"wmi-get-request_Win32_LogicalDisk_msdn.xml": checkRequest(ActionGet, ResourceWMI+"/root/cimv2/Win32_logicaldisk", []Selector{{Name: "DeviceId", Value: "c:"}}, nil),
	"wmi-get-response_Win32_LogicalDisk.xml": checkBody(func(t *testing.T, in *Instance) {
		if in.ClassName != "Win32_LogicalDisk" || in.TypeName != "Win32_LogicalDisk_Type" || len(in.Props) != 39 {
			t.Errorf("%s %s %d props", in.ClassName, in.TypeName, len(in.Props))
		}
		wantU64(t, in, "FreeSpace", 840649814016)
		wantU64(t, in, "Size", 999650488320)
		wantStr(t, in, "VolumeName", "")
		wantStr(t, in, "VolumeSerialNumber", "ECA22F4F")
		if b, err := in.Bool("QuotasDisabled"); err != nil || !b {
			t.Errorf("QuotasDisabled = %v, %v", b, err)
		}
		if !in.IsNil("Availability") || countNils(in) != 16 {
			t.Errorf("nils = %d, want 16", countNils(in))
		}
	}),
	"wsman-create-request_shell.xml": checkRequest(ActionCreate, NsShell+"/cmd", nil, checkBody(func(t *testing.T, in *Instance) {
		if in.ClassName != "Shell" || in.ResourceURI != NsShell {
			t.Errorf("body %s %s", in.ClassName, in.ResourceURI)
		}
	})),
	"wsman-create-response_resourcecreated.xml": func(t *testing.T, rep *reply) {
		epr, err := parseEPR(child(rep.body, NsTransfer, "ResourceCreated"))
		want := &EndpointReference{Address: "http://192.168.56.11:5985/wsman", ResourceURI: NsShell + "/cmd", Selectors: []Selector{{Name: "ShellId", Value: "4283CBDC-3706-415B-88BD-B385F3E51A53"}}}
		if diff := cmp.Diff(want, epr); err != nil || diff != "" {
			t.Errorf("EPR %v (-want +got):\n%s", err, diff)
		}
	},
	"wsman-delete-request.xml": checkRequest(ActionDelete, NsShell+"/cmd", []Selector{{Name: "ShellId", Value: "4283CBDC-3706-415B-88BD-B385F3E51A53"}}, nil),
	"wsman-delete-response.xml": func(t *testing.T, rep *reply) {
		if rep.headerText(NsAddressing, "Action") != ActionDeleteResponse || rep.bodyChild() != nil {
			t.Error("not an empty DeleteResponse")
		}
	},
	"wsman-enumerate-optimized-request_shell.xml": checkRequest(ActionEnumerate, NsShell, nil, nil),
	"wsman-enumerate-optimized-response_shell-items-eos.xml": checkPage("EnumerateResponse", "", true, 2, func(t *testing.T, p *page) {
		for _, it := range p.items {
			if it.Instance.ClassName != "Shell" || it.Instance.ResourceURI != NsShell {
				t.Errorf("item %s %s", it.Instance.ClassName, it.Instance.ResourceURI)
			}
		}
	}),
	"wsman-enumerate-selectorfilter-request.xml": checkRequest(ActionEnumerate, NsShell+"/Command", nil, func(t *testing.T, rep *reply) {
		f := child(child(rep.body, NsEnumeration, "Enumerate"), NsWSMan, "Filter")
		sels, err := parseSelectorSet(child(f, NsWSMan, "SelectorSet"))
		if err != nil || f.SelectAttrValue("Dialect", "") != DialectSelector || !cmp.Equal(sels, []Selector{{Name: "ShellId", Value: "B6631D8E-65A0-49F2-9053-A1B156C95777"}}) {
			t.Errorf("selector filter %v %v", sels, err)
		}
	}),
	"wsman-enumerate-selectorfilter-response-empty-eos.xml": checkPage("EnumerateResponse", "", true, 0, nil),
	"wsman-get-config-request.xml":                          checkRequest(ActionGet, NsConfig, nil, nil),
	"wsman-get-config-response.xml": checkBody(func(t *testing.T, in *Instance) {
		if in.ClassName != "Config" || in.ResourceURI != NsConfig || len(in.Props) != 7 {
			t.Errorf("%s %s %d props", in.ClassName, in.ResourceURI, len(in.Props))
		}
		wantU64(t, in, "MaxEnvelopeSizekb", 150)
		svc, err := in.Objects("Service")
		if err != nil || len(svc) != 1 || len(svc[0].Props) != 15 {
			t.Fatalf("Service = %v, %v", svc, err)
		}
		if b, err := svc[0].Bool("AllowUnencrypted"); err != nil || b {
			t.Errorf("Service.AllowUnencrypted = %v, %v", b, err)
		}
	}),
	"wsman-get-request-selectors_shell.xml": checkRequest(ActionGet, NsShell, []Selector{{Name: "ShellId", Value: "12FC74F8-639A-45D8-88FF-3E494804563A"}}, nil),
	"wsman-get-response_shell.xml": checkBody(func(t *testing.T, in *Instance) {
		if len(in.Props) != 20 {
			t.Errorf("%d props, want 20", len(in.Props))
		}
		wantStr(t, in, "ShellId", "12FC74F8-639A-45D8-88FF-3E494804563A")
		wantU64(t, in, "ProcessId", 2852)
		if d, err := in.Interval("MaxIdleTimeOut"); err != nil || d != 2147483647*time.Millisecond {
			t.Errorf("MaxIdleTimeOut = %v, %v", d, err)
		}
		if d, err := in.Interval("IdleTimeOut"); err != nil || d != time.Minute {
			t.Errorf("IdleTimeOut = %v, %v", d, err)
		}
	}),
}

// TestWireCaptures parses every real envelope in ../shared/wire and checks
// exact values; a capture without a table entry fails the test.
func TestWireCaptures(t *testing.T) {
	dir := wireDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in %s: %v", dir, err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		t.Run(strings.TrimSuffix(name, ".xml"), func(t *testing.T) {
			check, ok := wireTable[name]
			if !ok {
				t.Fatalf("capture %s has no entry in wireTable", name)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := parseEnvelope(b)
			if err != nil {
				t.Fatal(err)
			}
			check(t, rep)
		})
	}
	for name := range wireTable {
		if !seen[name] {
			t.Errorf("wireTable names %s, which is not in %s", name, dir)
		}
	}
}

// TestWireInstancesRoundTrip renders every instance found in the captures
// with Element and parses it back: nothing may change.
func TestWireInstancesRoundTrip(t *testing.T) {
	dir := wireDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := parseEnvelope(b)
		if err != nil || rep.fault() != nil {
			continue
		}
		var ins []*Instance
		for _, w := range []string{"EnumerateResponse", "PullResponse"} {
			if p, err := parsePage(rep, w); err == nil {
				for _, it := range p.items {
					ins = append(ins, it.Instance)
				}
			}
		}
		if len(ins) == 0 && rep.headerText(NsAddressing, "Action") == ActionGetResponse {
			in, err := ParseInstance(rep.bodyChild())
			if err != nil {
				t.Fatal(err)
			}
			ins = append(ins, in)
		}
		for i, in := range ins {
			doc := etree.NewDocument()
			doc.SetRoot(in.Element())
			back := mustParseInstance(t, string(render(doc)))
			if diff := cmp.Diff(in, back); diff != "" {
				t.Errorf("%s item %d: round trip changed it (-orig +back):\n%s", filepath.Base(f), i, diff)
			}
			n++
		}
	}
	if n != 102 {
		t.Errorf("round-tripped %d instances, want 102 (99 enumerated items and 3 GetResponses)", n)
	}
}
