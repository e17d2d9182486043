package bitsprov

import (
	"errors"
	"fmt"
)

// Code is an HRESULT as the provider reports it: a method's ReturnValue or
// GetError's ErrorCode. A Code is also an error, so the sentinel values
// below work with errors.Is on a *ReturnError.
type Code uint32

// Error renders "BG_E_INVALID_STATE (0x80200002): action not allowed in
// the current job state", or the bare hex for codes not in the table.
func (c Code) Error() string {
	name, meaning, ok := LookupCode(uint32(c))
	if !ok {
		return fmt.Sprintf("0x%08X", uint32(c))
	}
	return fmt.Sprintf("%s (0x%08X): %s", name, uint32(c), meaning)
}

// String returns the code's name ("BG_E_EMPTY") or its hex form.
func (c Code) String() string {
	if name, _, ok := LookupCode(uint32(c)); ok {
		return name
	}
	return fmt.Sprintf("0x%08X", uint32(c))
}

// Failed reports whether the code is a failure (severity bit set). BG_S_*
// codes such as BG_S_PARTIAL_COMPLETE are non-zero successes.
func (c Code) Failed() bool { return c&0x80000000 != 0 }

// Well-known codes.
const (
	CodeOK                      Code = 0x00000000
	CodePartialComplete         Code = 0x00200017 // BG_S_PARTIAL_COMPLETE
	CodeUnableToDeleteFiles     Code = 0x0020001A // BG_S_UNABLE_TO_DELETE_FILES
	CodeNotFound                Code = 0x80200001 // BG_E_NOT_FOUND
	CodeInvalidState            Code = 0x80200002 // BG_E_INVALID_STATE
	CodeEmpty                   Code = 0x80200003 // BG_E_EMPTY
	CodeErrorInformationUnavail Code = 0x8020000F // BG_E_ERROR_INFORMATION_UNAVAILABLE
	CodeTooManyFiles            Code = 0x8020001C // BG_E_TOO_MANY_FILES
	CodeInvalidAuthTarget       Code = 0x80200027 // BG_E_INVALID_AUTH_TARGET
	CodeInvalidAuthScheme       Code = 0x80200028 // BG_E_INVALID_AUTH_SCHEME
	CodeInvalidProxyInfo        Code = 0x8020003F // BG_E_INVALID_PROXY_INFO
	CodeWBEMFailed              Code = 0x80041001 // WBEM_E_FAILED
	CodeWBEMNotFound            Code = 0x80041002 // WBEM_E_NOT_FOUND
	CodeWBEMAccessDenied        Code = 0x80041003 // WBEM_E_ACCESS_DENIED
	CodeWBEMInvalidParameter    Code = 0x80041008 // WBEM_E_INVALID_PARAMETER
	CodeWBEMInvalidNamespace    Code = 0x8004100E // WBEM_E_INVALID_NAMESPACE
	CodeWBEMInvalidClass        Code = 0x80041010 // WBEM_E_INVALID_CLASS
	CodeWBEMInvalidMethodParams Code = 0x8004102F // WBEM_E_INVALID_METHOD_PARAMETERS
	CodeInvalidArg              Code = 0x80070057 // E_INVALIDARG
	CodeAccessDenied            Code = 0x80070005 // E_ACCESSDENIED
	CodeHTTPBase                Code = 0x80190000 // BG_E_HTTP_ERROR_xxx = CodeHTTPBase | status
	codeHTTPMask                Code = 0xFFFF0000
)

// HTTP statuses BITS can report as BG_E_HTTP_ERROR_xxx.
const codeHTTPMinStatus, codeHTTPMax = 100, 599

// Sentinels for errors.Is. A *ReturnError with the same code matches; so
// does a GetError code wrapped by the poller.
var (
	// ErrInvalidState is BG_E_INVALID_STATE: e.g. Resume on a final job.
	ErrInvalidState error = CodeInvalidState
	// ErrEmpty is BG_E_EMPTY: Resume on a job without files.
	ErrEmpty error = CodeEmpty
	// ErrErrorInfoUnavailable is BG_E_ERROR_INFORMATION_UNAVAILABLE:
	// GetError on a job that is not in (transient) error.
	ErrErrorInfoUnavailable error = CodeErrorInformationUnavail
	// ErrAccessDenied is E_ACCESSDENIED.
	ErrAccessDenied error = CodeAccessDenied
	// ErrInvalidArg is E_INVALIDARG.
	ErrInvalidArg error = CodeInvalidArg
)

// ErrNotFound matches every way a host says "no such job": a ReturnValue
// of BG_E_NOT_FOUND or WBEM_E_NOT_FOUND, and a WS-Management
// not-found fault (see *NotFoundError). Final jobs (Acknowledged,
// Cancelled) leave the queue and are reported this way too.
var ErrNotFound = errors.New("bitsprov: job not found")

// ErrProviderMissing matches a host without the BITS provider (the
// Compact Server feature is not installed): WBEM_E_INVALID_NAMESPACE or
// WBEM_E_INVALID_CLASS.
var ErrProviderMissing = errors.New("bitsprov: BITS provider (root\\microsoft\\bits) not available on the host")

type codeInfo struct{ name, meaning string }

// codes holds the BITS (Bitsmsg.h), WMI (wbemcli.h) and common Win32
// HRESULTs with the meanings from bits-provider.md §2.5 and §4.8.
var codes = map[Code]codeInfo{
	0x00000000: {"S_OK", "success"},
	0x00000001: {"S_FALSE", "success (false)"},
	0x00200017: {"BG_S_PARTIAL_COMPLETE", "job completed, but only some files were transferred; the rest were deleted"},
	0x0020001A: {"BG_S_UNABLE_TO_DELETE_FILES", "done, but some temporary files could not be deleted"},
	0x00200055: {"BG_S_OVERRIDDEN_BY_POLICY", "preference saved but overridden by Group Policy"},
	0x80200001: {"BG_E_NOT_FOUND", "job not found"},
	0x80200002: {"BG_E_INVALID_STATE", "action not allowed in the current job state"},
	0x80200003: {"BG_E_EMPTY", "job has no files"},
	0x80200004: {"BG_E_FILE_NOT_AVAILABLE", "error not associated with a file"},
	0x80200005: {"BG_E_PROTOCOL_NOT_AVAILABLE", "error not associated with a protocol"},
	0x8020000D: {"BG_E_DESTINATION_LOCKED", "destination volume is locked"},
	0x8020000E: {"BG_E_VOLUME_CHANGED", "destination volume changed"},
	0x8020000F: {"BG_E_ERROR_INFORMATION_UNAVAILABLE", "no error information: the job is not in an error state"},
	0x80200010: {"BG_E_NETWORK_DISCONNECTED", "no active network connection"},
	0x80200011: {"BG_E_MISSING_FILE_SIZE", "server did not return the file size (dynamic content)"},
	0x80200012: {"BG_E_INSUFFICIENT_HTTP_SUPPORT", "server does not support HTTP/1.1"},
	0x80200013: {"BG_E_INSUFFICIENT_RANGE_SUPPORT", "server or proxy does not support Content-Range"},
	0x80200014: {"BG_E_REMOTE_NOT_SUPPORTED", "remote use of BITS is not supported"},
	0x80200015: {"BG_E_NEW_OWNER_DIFF_MAPPING", "drive mapping differs for the new owner"},
	0x80200016: {"BG_E_NEW_OWNER_NO_FILE_ACCESS", "new owner cannot access the temporary files"},
	0x80200018: {"BG_E_PROXY_LIST_TOO_LARGE", "proxy list longer than 32 KB"},
	0x80200019: {"BG_E_PROXY_BYPASS_LIST_TOO_LARGE", "proxy bypass list longer than 32 KB"},
	0x8020001C: {"BG_E_TOO_MANY_FILES", "upload jobs hold exactly one file"},
	0x8020001D: {"BG_E_LOCAL_FILE_CHANGED", "upload source changed during the transfer"},
	0x80200020: {"BG_E_TOO_LARGE", "upload exceeds the server's maximum"},
	0x80200021: {"BG_E_STRING_TOO_LONG", "string too long"},
	0x80200022: {"BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH", "upload protocol negotiation failed"},
	0x80200023: {"BG_E_SERVER_EXECUTE_ENABLED", "server virtual directory has script or execute permission"},
	0x80200025: {"BG_E_USERNAME_TOO_LARGE", "user name longer than 300 characters"},
	0x80200026: {"BG_E_PASSWORD_TOO_LARGE", "password longer than 65535 characters"},
	0x80200027: {"BG_E_INVALID_AUTH_TARGET", "invalid credential target"},
	0x80200028: {"BG_E_INVALID_AUTH_SCHEME", "invalid authentication scheme"},
	0x8020002B: {"BG_E_INVALID_RANGE", "invalid byte range"},
	0x8020002C: {"BG_E_OVERLAPPING_RANGES", "byte ranges overlap"},
	0x8020003E: {"BG_E_BLOCKED_BY_POLICY", "Group Policy blocks background transfers now"},
	0x8020003F: {"BG_E_INVALID_PROXY_INFO", "invalid proxy list or bypass list"},
	0x80200040: {"BG_E_INVALID_CREDENTIALS", "credentials are malformed"},
	0x80200049: {"BG_E_TOO_MANY_JOBS_PER_USER", "Group Policy limit of jobs per user exceeded"},
	0x80200050: {"BG_E_TOO_MANY_JOBS_PER_MACHINE", "Group Policy limit of jobs per machine exceeded"},
	0x80200051: {"BG_E_TOO_MANY_FILES_IN_JOB", "Group Policy limit of files per job exceeded"},
	0x80200052: {"BG_E_TOO_MANY_RANGES_IN_FILE", "Group Policy limit of ranges per file exceeded"},
	0x80200053: {"BG_E_VALIDATION_FAILED", "invalid response from the website"},
	0x80200054: {"BG_E_MAXDOWNLOAD_TIMEOUT", "MaxDownloadTime exceeded"},

	0x80041001: {"WBEM_E_FAILED", "WMI call failed"},
	0x80041002: {"WBEM_E_NOT_FOUND", "WMI object not found"},
	0x80041003: {"WBEM_E_ACCESS_DENIED", "WMI access denied"},
	0x80041008: {"WBEM_E_INVALID_PARAMETER", "invalid WMI parameter"},
	0x8004100C: {"WBEM_E_NOT_SUPPORTED", "operation not supported by the WMI provider"},
	0x8004100E: {"WBEM_E_INVALID_NAMESPACE", "WMI namespace does not exist (is the BITS Compact Server feature installed?)"},
	0x80041010: {"WBEM_E_INVALID_CLASS", "WMI class does not exist (is the BITS Compact Server feature installed?)"},
	0x80041013: {"WBEM_E_PROVIDER_LOAD_FAILURE", "WMI provider failed to load"},
	0x8004102E: {"WBEM_E_INVALID_METHOD", "no such WMI method"},
	0x8004102F: {"WBEM_E_INVALID_METHOD_PARAMETERS", "invalid WMI method parameters"},

	0x80004001: {"E_NOTIMPL", "not implemented"},
	0x80004005: {"E_FAIL", "unspecified failure"},
	0x8000FFFF: {"E_UNEXPECTED", "unexpected failure"},
	0x80070002: {"ERROR_FILE_NOT_FOUND", "the system cannot find the file specified"},
	0x80070003: {"ERROR_PATH_NOT_FOUND", "the system cannot find the path specified"},
	0x80070005: {"E_ACCESSDENIED", "access denied"},
	0x8007000E: {"E_OUTOFMEMORY", "out of memory"},
	0x80070020: {"ERROR_SHARING_VIOLATION", "the file is in use by another process"},
	0x80070050: {"ERROR_FILE_EXISTS", "the file exists"},
	0x80070057: {"E_INVALIDARG", "invalid argument"},
	0x80070070: {"ERROR_DISK_FULL", "not enough space on the disk"},
	0x8007007B: {"ERROR_INVALID_NAME", "invalid file name, directory name or volume label"},
	0x800703EB: {"ERROR_CAN_NOT_COMPLETE", "cannot complete this function"},
	0x800704DD: {"ERROR_NOT_LOGGED_ON", "the job owner is not logged on"},
	0x80072EE2: {"ERROR_WINHTTP_TIMEOUT", "the operation timed out"},
	0x80072EE7: {"ERROR_WINHTTP_NAME_NOT_RESOLVED", "server name could not be resolved"},
	0x80072EFD: {"ERROR_WINHTTP_CANNOT_CONNECT", "cannot connect to the server"},
	0x80072EFE: {"ERROR_WINHTTP_CONNECTION_ERROR", "connection to the server was reset or ended"},
	0x80072F78: {"ERROR_HTTP_INVALID_SERVER_RESPONSE", "server returned an invalid or unrecognized response"},
}

// httpReason gives the reason phrase of the statuses BITS jobs commonly
// fail with; other statuses read "HTTP status N".
var httpReason = map[uint32]string{
	400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
	405: "method not allowed", 407: "proxy authentication required", 408: "request timeout",
	410: "gone", 412: "precondition failed", 413: "request entity too large",
	414: "request URI too long", 416: "requested range not satisfiable",
	500: "internal server error", 501: "not implemented", 502: "bad gateway",
	503: "service unavailable", 504: "gateway timeout", 505: "HTTP version not supported",
}

// LookupCode names an HRESULT: BITS (BG_E_*, BG_S_*), WMI (WBEM_E_*), common
// COM and Win32 codes, and any HTTP status BITS maps as 0x80190000|status
// (BG_E_HTTP_ERROR_404). ok is false for codes it does not know.
func LookupCode(code uint32) (name, meaning string, ok bool) {
	c := Code(code)
	if ci, found := codes[c]; found {
		return ci.name, ci.meaning, true
	}
	if c&codeHTTPMask == CodeHTTPBase {
		st := code &^ uint32(codeHTTPMask)
		if st >= codeHTTPMinStatus && st <= codeHTTPMax {
			r, found := httpReason[st]
			if !found {
				r = fmt.Sprintf("HTTP status %d", st)
			}
			return fmt.Sprintf("BG_E_HTTP_ERROR_%d", st), "server returned HTTP " + fmt.Sprint(st) + " " + r, true
		}
	}
	return "", "", false
}

// HTTPCode returns BITS's code for an HTTP status (404 -> 0x80190194).
func HTTPCode(status int) Code { return CodeHTTPBase | Code(uint16(status)) }

// ReturnError is a provider method's non-zero, failing ReturnValue.
type ReturnError struct {
	Host   string
	Method string
	// JobID is empty for static methods (CreateJob) and URL-group methods.
	JobID string
	Code  uint32
}

// Error reads "host: SetJobState on {GUID}: BG_E_INVALID_STATE
// (0x80200002): action not allowed in the current job state".
func (e *ReturnError) Error() string {
	s := ""
	if e.Host != "" {
		s = e.Host + ": "
	}
	s += e.Method
	if e.JobID != "" {
		s += " on " + e.JobID
	}
	name, meaning, ok := LookupCode(e.Code)
	if !ok {
		return fmt.Sprintf("%s: returned 0x%08X (%d)", s, e.Code, e.Code)
	}
	return fmt.Sprintf("%s: %s (0x%08X): %s", s, name, e.Code, meaning)
}

// Unwrap returns the Code, so errors.Is(err, ErrInvalidState) works.
func (e *ReturnError) Unwrap() error { return Code(e.Code) }

// Is makes the not-found and provider-missing codes match ErrNotFound and
// ErrProviderMissing.
func (e *ReturnError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return Code(e.Code) == CodeNotFound || Code(e.Code) == CodeWBEMNotFound
	case ErrProviderMissing:
		return Code(e.Code) == CodeWBEMInvalidNamespace || Code(e.Code) == CodeWBEMInvalidClass
	}
	return false
}

// NotFoundError is a WS-Management fault saying the addressed job (or URL
// group) does not exist. errors.Is(err, ErrNotFound) is true and the
// original *wsman.Fault is reachable with errors.As.
type NotFoundError struct {
	Host string
	Op   string
	// Key is the JobId or UrlGroup that was addressed.
	Key string
	Err error
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s: %s %s: not found: %s", e.Host, e.Op, e.Key, detail(e.Err, e.Host, e.Op))
}

// Is matches ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Unwrap returns the fault.
func (e *NotFoundError) Unwrap() error { return e.Err }
