package bitssim

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// HRESULTs the simulator returns (Bitsmsg.h, winerror.h, winhttp.h); the
// ones bitsprov names come from its table.
const (
	sOK                      uint32 = uint32(bitsprov.CodeOK)
	bgSPartialComplete       uint32 = uint32(bitsprov.CodePartialComplete)
	bgSUnableToDeleteFiles   uint32 = uint32(bitsprov.CodeUnableToDeleteFiles)
	bgEProxyListTooLarge     uint32 = 0x80200018
	bgEProxyBypassTooLarge   uint32 = 0x80200019
	bgEUsernameTooLarge      uint32 = 0x80200025
	bgEPasswordTooLarge      uint32 = 0x80200026
	bgEInvalidState          uint32 = uint32(bitsprov.CodeInvalidState)
	bgEEmpty                 uint32 = uint32(bitsprov.CodeEmpty)
	bgEErrorInfoUnavailable  uint32 = uint32(bitsprov.CodeErrorInformationUnavail)
	bgEMissingFileSize       uint32 = 0x80200011
	bgEInsufficientRange     uint32 = 0x80200013
	bgETooManyFiles          uint32 = uint32(bitsprov.CodeTooManyFiles)
	bgELocalFileChanged      uint32 = 0x8020001D
	bgEProtocolMismatch      uint32 = 0x80200022
	bgEStringTooLong         uint32 = 0x80200021
	bgEInvalidAuthTarget     uint32 = uint32(bitsprov.CodeInvalidAuthTarget)
	bgEInvalidAuthScheme     uint32 = uint32(bitsprov.CodeInvalidAuthScheme)
	bgEInvalidProxyInfo      uint32 = uint32(bitsprov.CodeInvalidProxyInfo)
	bgEHTTPErrorBase         uint32 = uint32(bitsprov.CodeHTTPBase)
	eInvalidArg              uint32 = uint32(bitsprov.CodeInvalidArg)
	eAccessDenied            uint32 = uint32(bitsprov.CodeAccessDenied)
	eFileNotFound            uint32 = 0x80070002
	ePathNotFound            uint32 = 0x80070003
	eDiskFull                uint32 = 0x80070070
	eFail                    uint32 = 0x80004005
	winhttpTimeout           uint32 = 0x80072EE2
	winhttpNameNotResolved   uint32 = 0x80072EE7
	winhttpCannotConnect     uint32 = 0x80072EFD
	winhttpConnectionError   uint32 = 0x80072EFE
	winhttpInvalidServerResp uint32 = 0x80072F78
)

// contextDescriptions are BITS' English texts for BG_ERROR_CONTEXT, as
// bitsadmin /geterror prints them ("ERROR CONTEXT: 0x00000005 - The error
// occurred while the remote file was being processed."). [I] Quoted from
// memory of bitsadmin output; only context 5's wording is well attested.
var contextDescriptions = map[bitsprov.ErrorContext]string{
	bitsprov.ContextNone:                     "An error has not occurred.",
	bitsprov.ContextUnknown:                  "The error context is unknown.",
	bitsprov.ContextGeneralQueueManager:      "The error occurred in the Background Intelligent Transfer Service (BITS) queue manager.",
	bitsprov.ContextQueueManagerNotification: "The error occurred while the queue manager was notifying the program.",
	bitsprov.ContextLocalFile:                "The error occurred while the local file was being processed.",
	bitsprov.ContextRemoteFile:               "The error occurred while the remote file was being processed.",
	bitsprov.ContextGeneralTransport:         "The error occurred in the transport layer. The client could not connect to the server.",
	bitsprov.ContextRemoteApplication:        "The error occurred while the server application was processing the notification.",
}

// httpDescriptions are the Bitsmsg.h texts of BG_E_HTTP_ERROR_xxx
// ("HTTP status 404: The requested URL does not exist on the server.").
// [I] From memory of FormatMessage output; verify on a host.
var httpDescriptions = map[int]string{
	400: "The request could not be processed by the server due to invalid syntax.",
	401: "The requested resource requires user authentication.",
	403: "The client does not have sufficient access rights to the requested server object.",
	404: "The requested URL does not exist on the server.",
	405: "The HTTP verb used is not allowed.",
	406: "No responses acceptable to the client were found.",
	407: "Proxy authentication required.",
	408: "The server timed out waiting for the request.",
	409: "The request could not be completed due to a conflict with the current state of the resource. The user should resubmit with more information.",
	410: "The requested resource is no longer available at the server, and no forwarding address is known.",
	411: "The server cannot accept the request without a defined content length.",
	412: "The precondition given in one or more of the request header fields evaluated to false when it was tested on the server.",
	413: "The server cannot process the request because the request entity is too large.",
	414: "The server cannot process the request because the request Uniform Resource Identifier (URI) is too long.",
	415: "The server cannot process the request because the request entity is in a format not supported by the requested resource for the requested method.",
	416: "The server could not satisfy the range request.",
	500: "An unexpected condition prevented the server from fulfilling the request.",
	501: "The server does not support the functionality required to fulfill the request.",
	502: "The server, while acting as a gateway or proxy, received an invalid response from the upstream server it accessed in attempting to fulfill the request.",
	503: "The service is temporarily overloaded.",
	504: "The request was timed out waiting for a gateway.",
	505: "The server does not support the HTTP protocol version that was used in the request message.",
}

// errorDescriptions are FormatMessage texts for the other codes.
var errorDescriptions = map[uint32]string{
	bgEMissingFileSize:       "The server did not return the file size. The URL might point to dynamic content. The Content-Length header is not available in the server's HTTP reply.",
	bgEInsufficientRange:     "The server does not support the necessary HTTP protocol. Background Intelligent Transfer Service (BITS) requires that the server support the Range protocol header.",
	bgELocalFileChanged:      "The local file was changed during the transfer.",
	bgEProtocolMismatch:      "The client and server versions of the Background Intelligent Transfer Service (BITS) are incompatible.",
	eAccessDenied:            "Access is denied.",
	eInvalidArg:              "The parameter is incorrect.",
	bgEStringTooLong:         "The length of the string exceeds the maximum allowed length.",
	eFileNotFound:            "The system cannot find the file specified.",
	ePathNotFound:            "The system cannot find the path specified.",
	eDiskFull:                "There is not enough space on the disk.",
	eFail:                    "Unspecified error",
	winhttpTimeout:           "The operation timed out",
	winhttpNameNotResolved:   "The server name or address could not be resolved",
	winhttpCannotConnect:     "A connection with the server could not be established",
	winhttpConnectionError:   "The connection with the server was terminated abnormally",
	winhttpInvalidServerResp: "The server response could not be parsed",
}

// describe returns the English description GetError gives for code.
func describe(code uint32) string {
	if code&0xFFFF0000 == bgEHTTPErrorBase {
		status := int(code & 0xFFFF)
		if d, ok := httpDescriptions[status]; ok {
			return fmt.Sprintf("HTTP status %d: %s", status, d)
		}
		return fmt.Sprintf("HTTP status %d.", status)
	}
	if d, ok := errorDescriptions[code]; ok {
		return d
	}
	return fmt.Sprintf("Error 0x%08X", code)
}

// localFileCode maps an OS error on the local file to the HRESULT Windows
// would report for the same condition.
func localFileCode(err error) uint32 {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A missing directory is ERROR_PATH_NOT_FOUND on Windows; a
		// missing upload source is ERROR_FILE_NOT_FOUND. Callers opening a
		// source file override this.
		return ePathNotFound
	case errors.Is(err, fs.ErrPermission),
		// A file operation aimed at a directory (a LocalFile naming one):
		// Windows' CreateFile and MoveFileEx fail with ERROR_ACCESS_DENIED.
		// Go's os.Rename onto a directory reports EEXIST.
		errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.EEXIST):
		return eAccessDenied
	case errors.Is(err, syscall.ENOSPC):
		return eDiskFull
	}
	return eFail
}
