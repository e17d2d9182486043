// Package encframe builds and parses the MS-WSMV HTTP message-encryption
// body (MS-WSMV 2.2.9.1.1.2): a multipart/encrypted document whose first
// part names the original content type and length, and whose second part
// holds a length-prefixed signature followed by the sealed message.
//
// The layout follows pywinrm and pypsrp byte for byte (wsman-wire.md §4.3).
// Go's mime/multipart cannot read it because part headers start with a
// TAB, and the payload is binary without a CRLF before the closing boundary.
package encframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
)

// Protocol is the session-encryption protocol for SPNEGO (NTLM or Kerberos
// negotiated through Negotiate).
const Protocol = "application/HTTP-SPNEGO-session-encrypted"

// ContentType is the HTTP Content-Type of an encrypted request or reply.
const ContentType = `multipart/encrypted;protocol="` + Protocol + `";boundary="Encrypted Boundary"`

// SOAPType is the original content type of a WS-Management envelope.
const SOAPType = "application/soap+xml;charset=UTF-8"

const (
	boundaryName = "Encrypted Boundary"
	boundaryLine = "--" + boundaryName + "\r\n"
	closingLine  = "--" + boundaryName + "--\r\n"
	octetHeader  = "\tContent-Type: application/octet-stream\r\n"
)

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed multipart/encrypted body")

// ErrLength is wrapped when the unsealed message is not as long as the
// OriginalContent header says.
var ErrLength = errors.New("unsealed length differs from OriginalContent Length")

// Part is one parsed encrypted message.
type Part struct {
	// OriginalType is the OriginalContent type without its Length
	// parameter, for example "application/soap+xml;charset=UTF-8".
	OriginalType string
	// Length is the plaintext length the sender announced.
	Length int
	// Signature is the GSS per-message token (16 bytes for NTLM).
	Signature []byte
	// Sealed is the ciphertext.
	Sealed []byte
}

// IsEncrypted reports whether an HTTP Content-Type announces an MS-WSMV
// SPNEGO-encrypted body.
func IsEncrypted(contentType string) bool {
	if contentType == ContentType {
		// What Windows, pywinrm and we send, checked on every sealed
		// reply: spare mime.ParseMediaType's map and strings.
		return true
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/encrypted" {
		return false
	}
	return strings.EqualFold(params["protocol"], Protocol)
}

// Append appends the framed body to dst. plainLen is the length of the
// message before sealing; originalType is its media type (SOAPType for
// envelopes).
func Append(dst []byte, originalType string, plainLen int, sig, sealed []byte) []byte {
	dst = append(dst, boundaryLine...)
	dst = append(dst, "\tContent-Type: "+Protocol+"\r\n"...)
	dst = append(dst, "\tOriginalContent: type="...)
	dst = append(dst, originalType...)
	dst = append(dst, ";Length="...)
	dst = strconv.AppendInt(dst, int64(plainLen), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, boundaryLine...)
	dst = append(dst, octetHeader...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(sig)))
	dst = append(dst, sig...)
	dst = append(dst, sealed...)
	return append(dst, closingLine...)
}

// Size is the length of the body Append produces.
func Size(originalType string, plainLen, sigLen, sealedLen int) int {
	return 2*len(boundaryLine) + len("\tContent-Type: "+Protocol+"\r\n") +
		len("\tOriginalContent: type="+originalType+";Length=\r\n") + len(strconv.Itoa(plainLen)) +
		len(octetHeader) + 4 + sigLen + sealedLen + len(closingLine)
}

// Wrap seals plain with seal and frames it.
func Wrap(plain []byte, originalType string, seal func([]byte) (sealed, sig []byte, err error)) ([]byte, error) {
	sealed, sig, err := seal(plain)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, Size(originalType, len(plain), len(sig), len(sealed)))
	return Append(out, originalType, len(plain), sig, sealed), nil
}

// AppendSealed appends the framed body of plain to dst, sealed in place:
// plain is copied into the frame, and seal then encrypts that copy where
// it lies and writes the sigLen-byte signature into the frame's slot, so
// that the message is copied once and no other buffer is allocated.
func AppendSealed(dst []byte, originalType string, plain []byte, sigLen int, seal func(msg, sig []byte)) []byte {
	start := len(dst)
	dst = append(dst, boundaryLine...)
	dst = append(dst, "\tContent-Type: "+Protocol+"\r\n"...)
	dst = append(dst, "\tOriginalContent: type="...)
	dst = append(dst, originalType...)
	dst = append(dst, ";Length="...)
	dst = strconv.AppendInt(dst, int64(len(plain)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, boundaryLine...)
	dst = append(dst, octetHeader...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(sigLen))
	sigAt := len(dst) - start
	dst = append(dst, make([]byte, sigLen)...)
	msgAt := len(dst) - start
	dst = append(dst, plain...)
	frame := dst[start:]
	seal(frame[msgAt:msgAt+len(plain)], frame[sigAt:sigAt+sigLen])
	return append(dst, closingLine...)
}

// UnwrapInPlace is Unwrap for an unseal that decrypts where the message
// lies: the plaintext returned is a part of body.
func UnwrapInPlace(body []byte, unseal func(sealed, sig []byte) error) (plain []byte, originalType string, err error) {
	p, err := parse(body)
	if err != nil {
		return nil, "", err
	}
	if err := unseal(p.Sealed, p.Signature); err != nil {
		return nil, "", err
	}
	if len(p.Sealed) != p.Length {
		return nil, "", fmt.Errorf("%w: got %d bytes, header says %d", ErrLength, len(p.Sealed), p.Length)
	}
	return p.Sealed, p.OriginalType, nil
}

// Unwrap parses body, unseals it with unseal and checks the plaintext
// length against OriginalContent. It returns the plaintext and its
// original content type.
func Unwrap(body []byte, unseal func(sealed, sig []byte) ([]byte, error)) (plain []byte, originalType string, err error) {
	p, err := Parse(body)
	if err != nil {
		return nil, "", err
	}
	plain, err = unseal(p.Sealed, p.Signature)
	if err != nil {
		return nil, "", err
	}
	if len(plain) != p.Length {
		return nil, "", fmt.Errorf("%w: got %d bytes, header says %d", ErrLength, len(plain), p.Length)
	}
	return plain, p.OriginalType, nil
}

// Parse splits an encrypted body into its parts. It accepts what pywinrm,
// pypsrp and Windows write, including "-- Encrypted Boundary" with
// whitespace after the dashes (pypsrp matches --\s*Encrypted Boundary), and
// a missing final CRLF. Only one message per body is supported: several
// part pairs are CredSSP chunking (multipart/x-multi-encrypted).
func Parse(body []byte) (*Part, error) {
	p, err := parse(body)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// parse is Parse without allocating: a sealed reply is parsed once per
// message, and the usual OriginalContent type is returned as SOAPType.
func parse(body []byte) (Part, error) {
	p := Part{Length: -1}
	rest, ok := cutBoundary(body)
	if !ok {
		return p, fmt.Errorf("%w: does not start with the Encrypted Boundary line", ErrMalformed)
	}
	var proto []byte
	for n := 0; ; n++ {
		if after, ok := cutBoundary(rest); ok {
			rest = after
			break
		}
		if n == 8 {
			return p, fmt.Errorf("%w: too many header lines in the first part", ErrMalformed)
		}
		line, after, ok := bytes.Cut(rest, crlf)
		if !ok {
			return p, fmt.Errorf("%w: first part ends without a second boundary", ErrMalformed)
		}
		rest = after
		name, value, ok := bytes.Cut(line, colon)
		if !ok {
			return p, fmt.Errorf("%w: header line %q has no colon", ErrMalformed, trunc(line))
		}
		name, value = bytes.TrimSpace(name), bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, contentTypeName):
			proto = value
		case bytes.EqualFold(name, originalContentName):
			if err := p.parseOriginal(value); err != nil {
				return p, err
			}
		}
	}
	if !bytes.EqualFold(proto, protocolBytes) {
		return p, fmt.Errorf("%w: first part Content-Type %q, want %s", ErrMalformed, trunc(proto), Protocol)
	}
	if p.Length < 0 {
		return p, fmt.Errorf("%w: no OriginalContent header with a Length", ErrMalformed)
	}

	line, rest, ok := bytes.Cut(rest, crlf)
	if !ok {
		return p, fmt.Errorf("%w: second part has no header line", ErrMalformed)
	}
	name, value, _ := bytes.Cut(line, colon)
	if !bytes.EqualFold(bytes.TrimSpace(name), contentTypeName) || !bytes.EqualFold(bytes.TrimSpace(value), octetStream) {
		return p, fmt.Errorf("%w: second part header %q, want Content-Type: application/octet-stream", ErrMalformed, trunc(line))
	}

	payload, ok := cutClosing(rest)
	if !ok {
		return p, fmt.Errorf("%w: does not end with the closing Encrypted Boundary line", ErrMalformed)
	}
	if len(payload) < 4 {
		return p, fmt.Errorf("%w: payload of %d bytes has no signature length", ErrMalformed, len(payload))
	}
	sigLen := binary.LittleEndian.Uint32(payload)
	if uint64(sigLen) > uint64(len(payload)-4) {
		return p, fmt.Errorf("%w: signature length %d exceeds the %d payload bytes", ErrMalformed, sigLen, len(payload)-4)
	}
	p.Signature = payload[4 : 4+sigLen]
	p.Sealed = payload[4+sigLen:]
	return p, nil
}

var (
	crlf                = []byte("\r\n")
	colon               = []byte(":")
	contentTypeName     = []byte("Content-Type")
	originalContentName = []byte("OriginalContent")
	protocolBytes       = []byte(Protocol)
	octetStream         = []byte("application/octet-stream")
	lengthName          = []byte("Length")
	typeName            = []byte("type")
)

// parseOriginal reads "type=<media type>;Length=<n>": the type keeps
// every parameter but Length.
func (p *Part) parseOriginal(v []byte) error {
	var buf [64]byte // room for the usual type, on the stack
	kept := buf[:0]
	rest := v
	for i := 0; ; i++ {
		param, after, more := bytes.Cut(rest, []byte(";"))
		rest = after
		k, val, _ := bytes.Cut(param, []byte("="))
		k = bytes.TrimSpace(k)
		switch {
		case i == 0:
			if !bytes.EqualFold(k, typeName) {
				return fmt.Errorf("%w: OriginalContent %q does not start with type=", ErrMalformed, trunc(v))
			}
			kept = append(kept, bytes.TrimSpace(val)...)
		case bytes.EqualFold(k, lengthName):
			n, err := strconv.Atoi(string(bytes.TrimSpace(val)))
			if err != nil || n < 0 {
				return fmt.Errorf("%w: OriginalContent Length %q is not a byte count", ErrMalformed, trunc(val))
			}
			p.Length = n
		default:
			kept = append(kept, ';')
			kept = append(kept, bytes.TrimSpace(param)...)
		}
		if !more {
			break
		}
	}
	if string(kept) == SOAPType {
		p.OriginalType = SOAPType
	} else {
		p.OriginalType = string(kept)
	}
	return nil
}

// cutBoundary removes a leading "--\s*Encrypted Boundary\r\n" from b.
func cutBoundary(b []byte) ([]byte, bool) {
	if !bytes.HasPrefix(b, []byte("--")) {
		return nil, false
	}
	b = bytes.TrimLeft(b[2:], " \t")
	if !bytes.HasPrefix(b, []byte(boundaryName+"\r\n")) {
		return nil, false
	}
	return b[len(boundaryName)+2:], true
}

// cutClosing removes a trailing "--\s*Encrypted Boundary--" (with an
// optional CRLF) from b and returns what precedes it.
func cutClosing(b []byte) ([]byte, bool) {
	b = bytes.TrimSuffix(b, []byte("\r\n"))
	if !bytes.HasSuffix(b, []byte(boundaryName+"--")) {
		return nil, false
	}
	b = b[:len(b)-len(boundaryName)-2]
	b = bytes.TrimRight(b, " \t")
	if !bytes.HasSuffix(b, []byte("--")) {
		return nil, false
	}
	return b[:len(b)-2], true
}

func trunc(b []byte) string {
	if len(b) > 100 {
		return string(b[:100]) + "..."
	}
	return string(b)
}
