// Package ntlmauth is a server-side NTLMv2 acceptor (MS-NLMP) for test
// servers: it answers NEGOTIATE with a CHALLENGE, verifies AUTHENTICATE
// against a table of local users, and seals and unseals messages in the
// server direction so that a simulated WinRM listener can speak MS-WSMV
// message encryption.
//
// No library on the module proxy can accept NTLMv2 and seal as a server
// (go-deps.md §6), so this is a small in-repo implementation. It is meant
// for loopback tests and the simulator, not for guarding real resources:
// passwords are kept in clear in memory.
package ntlmauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/rc4"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	//lint:ignore SA1019 NTLM is defined over MD4 (MS-NLMP NTOWFv2); there is no alternative.
	"golang.org/x/crypto/md4"
)

// Negotiate flags (MS-NLMP 2.2.2.5).
const (
	flagUnicode       uint32 = 0x00000001
	flagOEM           uint32 = 0x00000002
	flagRequestTarget uint32 = 0x00000004
	flagSign          uint32 = 0x00000010
	flagSeal          uint32 = 0x00000020
	flagLMKey         uint32 = 0x00000080
	flagNTLM          uint32 = 0x00000200
	flagAnonymous     uint32 = 0x00000800
	flagAlwaysSign    uint32 = 0x00008000
	flagTargetDomain  uint32 = 0x00010000
	flagESS           uint32 = 0x00080000
	flagTargetInfo    uint32 = 0x00800000
	flagVersion       uint32 = 0x02000000
	flag128           uint32 = 0x20000000
	flagKeyExch       uint32 = 0x40000000
	flag56            uint32 = 0x80000000
	echoedClientFlags        = flagRequestTarget | flagSign | flagSeal | flagAlwaysSign | flagESS | flagVersion | flag128 | flagKeyExch | flag56
)

// AV pair IDs (MS-NLMP 2.2.2.1).
const (
	avEOL           = 0
	avNbComputer    = 1
	avNbDomain      = 2
	avDNSComputer   = 3
	avDNSDomain     = 4
	avFlags         = 6
	avTimestamp     = 7
	avFlagMICInAuth = 0x2
)

var signature = []byte("NTLMSSP\x00")

// Errors callers may tell apart. Every error returned by Authenticate wraps
// ErrAuthFailed; Unwrap errors wrap ErrBadSignature or ErrSequence.
var (
	ErrAuthFailed   = errors.New("ntlm: authentication failed")
	ErrBadMessage   = errors.New("ntlm: malformed message")
	ErrBadSignature = errors.New("ntlm: message signature does not verify")
	ErrSequence     = errors.New("ntlm: unexpected sequence number (replayed or out of order)")
)

// Server holds the accounts a simulated host accepts.
type Server struct {
	// Domain is the NetBIOS domain (or workgroup) name put in the CHALLENGE.
	Domain string
	// Computer is the NetBIOS computer name put in the CHALLENGE.
	Computer string
	// Users maps a lower-case user name to its password. Any domain name the
	// client sends is accepted, as Windows does for local accounts on a
	// stand-alone host; the domain still enters the NTLMv2 hash, so it
	// must match what the client used.
	Users map[string]string

	// now is the clock for MsvAvTimestamp; nil means time.Now.
	now func() time.Time
}

// Conn is the NTLM state of one TCP connection: HTTP.sys binds an NTLM
// context to the connection it was negotiated on.
type Conn struct {
	srv       *Server
	negotiate []byte
	challenge []byte
	serverCh  [8]byte
	flags     uint32

	user, domain string
	session      *Session
}

// NewConn starts the NTLM state of a new connection.
func (s *Server) NewConn() *Conn { return &Conn{srv: s} }

// User is the authenticated user name as the client sent it, or "" before
// a successful Authenticate.
func (c *Conn) User() string { return c.user }

// Domain is the domain name the client sent in AUTHENTICATE.
func (c *Conn) Domain() string { return c.domain }

// Session is the server-direction security session, or nil before a
// successful Authenticate.
func (c *Conn) Session() *Session { return c.session }

// Challenge parses a NEGOTIATE message and returns the CHALLENGE to send.
//
// The CHALLENGE always sets UNICODE and clears OEM: pywinrm's ntlm-auth
// sends a NEGOTIATE without UNICODE (flags 0xE2889032) and would otherwise
// encode names as OEM bytes (peers.md §1.1 pitfall 4). TargetInfo carries
// MsvAvTimestamp so that clients add a MIC to AUTHENTICATE.
func (c *Conn) Challenge(negotiate []byte) ([]byte, error) {
	if len(negotiate) < 16 || !bytes.Equal(negotiate[:8], signature) {
		return nil, fmt.Errorf("%w: NEGOTIATE too short or without NTLMSSP signature", ErrBadMessage)
	}
	if t := binary.LittleEndian.Uint32(negotiate[8:]); t != 1 {
		return nil, fmt.Errorf("%w: message type %d, want NEGOTIATE (1)", ErrBadMessage, t)
	}
	clientFlags := binary.LittleEndian.Uint32(negotiate[12:])
	flags := (clientFlags&echoedClientFlags | flagUnicode | flagNTLM | flagTargetInfo | flagVersion) &^ flagOEM
	if flags&flagRequestTarget != 0 {
		flags |= flagTargetDomain
	}
	if _, err := rand.Read(c.serverCh[:]); err != nil {
		return nil, fmt.Errorf("ntlm: server challenge: %w", err)
	}

	now := time.Now
	if c.srv.now != nil {
		now = c.srv.now
	}
	targetName := utf16le(strings.ToUpper(c.srv.Domain))
	var ti []byte
	ti = appendAV(ti, avNbDomain, utf16le(strings.ToUpper(c.srv.Domain)))
	ti = appendAV(ti, avNbComputer, utf16le(strings.ToUpper(c.srv.Computer)))
	ti = appendAV(ti, avDNSDomain, utf16le(strings.ToLower(c.srv.Domain)))
	ti = appendAV(ti, avDNSComputer, utf16le(strings.ToLower(c.srv.Computer)))
	ti = appendAV(ti, avTimestamp, binary.LittleEndian.AppendUint64(nil, filetime(now())))
	ti = appendAV(ti, avEOL, nil)

	const hdr = 56
	m := make([]byte, hdr, hdr+len(targetName)+len(ti))
	copy(m, signature)
	binary.LittleEndian.PutUint32(m[8:], 2)
	putField(m[12:], len(targetName), hdr)
	binary.LittleEndian.PutUint32(m[20:], flags)
	copy(m[24:32], c.serverCh[:])
	putField(m[40:], len(ti), hdr+len(targetName))
	// Version: Windows 10.0 build 17763, NTLMSSP revision 15.
	copy(m[48:], []byte{10, 0, 0x63, 0x45, 0, 0, 0, 15})
	m = append(m, targetName...)
	m = append(m, ti...)

	c.negotiate = append([]byte(nil), negotiate...)
	c.challenge = m
	c.flags = flags
	c.user, c.domain, c.session = "", "", nil
	return m, nil
}

// Authenticate verifies an AUTHENTICATE message against the CHALLENGE this
// Conn sent (MS-NLMP 3.3.2): the NTProofStr must match the user's password,
// and the MIC must match when the client says one is present. On success
// the Conn holds the user and a security Session. Every failure wraps
// ErrAuthFailed; the error never contains a password.
func (c *Conn) Authenticate(auth []byte) error {
	if c.challenge == nil {
		return fmt.Errorf("%w: AUTHENTICATE before CHALLENGE", ErrAuthFailed)
	}
	// A CHALLENGE is good for one attempt, as on Windows.
	negotiate, challenge := c.negotiate, c.challenge
	c.negotiate, c.challenge = nil, nil
	c.user, c.domain, c.session = "", "", nil

	if len(auth) < 64 || !bytes.Equal(auth[:8], signature) {
		return fmt.Errorf("%w: %w: AUTHENTICATE too short or without NTLMSSP signature", ErrAuthFailed, ErrBadMessage)
	}
	if t := binary.LittleEndian.Uint32(auth[8:]); t != 3 {
		return fmt.Errorf("%w: %w: message type %d, want AUTHENTICATE (3)", ErrAuthFailed, ErrBadMessage, t)
	}
	flags := binary.LittleEndian.Uint32(auth[60:])
	nt, err1 := field(auth, 20)
	dom, err2 := field(auth, 28)
	usr, err3 := field(auth, 36)
	encKey, err4 := field(auth, 52)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("%w: %w", ErrAuthFailed, err)
	}
	user, domain := decodeName(usr, flags), decodeName(dom, flags)
	if flags&flagAnonymous != 0 || user == "" {
		return fmt.Errorf("%w: anonymous logon is not accepted", ErrAuthFailed)
	}
	if len(nt) <= 24 {
		return fmt.Errorf("%w: user %q: NTLMv1 responses are not accepted", ErrAuthFailed, user)
	}
	if len(nt) < 16+28 {
		return fmt.Errorf("%w: %w: NTLMv2 response of %d bytes", ErrAuthFailed, ErrBadMessage, len(nt))
	}
	password, ok := c.srv.Users[strings.ToLower(user)]
	if !ok {
		return fmt.Errorf("%w: unknown user %q", ErrAuthFailed, user)
	}

	ntowf := ntowfv2(user, password, domain)
	proof, temp := nt[:16], nt[16:]
	var serverCh [8]byte
	copy(serverCh[:], challenge[24:32])
	want := hmacMD5(ntowf, serverCh[:], temp)
	if !hmac.Equal(proof, want) {
		return fmt.Errorf("%w: wrong password for user %q", ErrAuthFailed, user)
	}

	sessionBaseKey := hmacMD5(ntowf, proof)
	exported := sessionBaseKey
	if flags&flagKeyExch != 0 {
		if len(encKey) != 16 {
			return fmt.Errorf("%w: %w: KEY_EXCH with a %d-byte session key", ErrAuthFailed, ErrBadMessage, len(encKey))
		}
		ciph, _ := rc4.NewCipher(sessionBaseKey) // 16-byte key never fails
		exported = make([]byte, 16)
		ciph.XORKeyStream(exported, encKey)
	}

	avs, err := parseAV(temp[28:])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAuthFailed, err)
	}
	if f, ok := avs[avFlags]; ok && len(f) == 4 && binary.LittleEndian.Uint32(f)&avFlagMICInAuth != 0 {
		if len(auth) < 88 {
			return fmt.Errorf("%w: %w: MIC announced but message too short", ErrAuthFailed, ErrBadMessage)
		}
		mic := append([]byte(nil), auth[72:88]...)
		zeroed := append([]byte(nil), auth...)
		clear(zeroed[72:88])
		if !hmac.Equal(mic, hmacMD5(exported, negotiate, challenge, zeroed)) {
			return fmt.Errorf("%w: user %q: MIC does not verify (message altered)", ErrAuthFailed, user)
		}
	}

	var sess *Session
	if flags&(flagSign|flagSeal) != 0 {
		if flags&flagESS == 0 {
			return fmt.Errorf("%w: signing without extended session security is not supported", ErrAuthFailed)
		}
		sess = newSession(flags, exported)
	}
	c.flags = flags
	c.user, c.domain, c.session = user, domain, sess
	return nil
}

// Session seals and unseals messages for one side of an NTLM security
// context: a server's (from Conn.Authenticate: it unseals what the client
// sealed and seals what the server sends) or a client's (from
// ClientSession). RC4 handles and sequence numbers persist across
// messages, so messages must be processed in order. A Session is safe for
// concurrent use, but concurrent callers must agree on the order
// themselves.
type Session struct {
	mu    sync.Mutex
	flags uint32
	// outMAC and inMAC are HMAC-MD5 keyed with the direction's signing
	// key, Reset for each message rather than built anew.
	outMAC, inMAC hash.Hash
	out, in       *rc4.Cipher
	outSeq, inSeq uint32
	// seqb and sum are scratch for mac (under mu): passed to hash.Hash
	// methods, locals would escape to the heap on every message.
	seqb [4]byte
	sum  [md5.Size]byte
}

// Magic constants of MS-NLMP 3.4.5.2 and 3.4.5.3.
const (
	clientSigningMagic = "session key to client-to-server signing key magic constant\x00"
	serverSigningMagic = "session key to server-to-client signing key magic constant\x00"
	clientSealingMagic = "session key to client-to-server sealing key magic constant\x00"
	serverSealingMagic = "session key to server-to-client sealing key magic constant\x00"
)

func newSession(flags uint32, exported []byte) *Session {
	return newDirectedSession(flags, exported, serverSigningMagic, clientSigningMagic, serverSealingMagic, clientSealingMagic)
}

func newDirectedSession(flags uint32, exported []byte, outSign, inSign, outSeal, inSeal string) *Session {
	s := &Session{
		flags:  flags,
		outMAC: hmac.New(md5.New, md5Sum(exported, []byte(outSign))),
		inMAC:  hmac.New(md5.New, md5Sum(exported, []byte(inSign))),
	}
	s.out, _ = rc4.NewCipher(sealKey(flags, exported, outSeal))
	s.in, _ = rc4.NewCipher(sealKey(flags, exported, inSeal))
	return s
}

// ClientSession derives the client's side of the security context from
// the AUTHENTICATE message the client sent and the password it was built
// with: the key a server computes in Conn.Authenticate (MS-NLMP 3.3.2:
// SessionBaseKey from the NTProofStr, the exported key unwrapped from
// EncryptedRandomSessionKey under KEY_EXCH), with the directions swapped.
//
// A client library that does not export its session key (bodgit/ntlmssp)
// still does the handshake; this session then seals in place, without
// the copies and per-message HMAC allocations of the library's.
func ClientSession(authenticate []byte, password string) (*Session, error) {
	if len(authenticate) < 64 || !bytes.Equal(authenticate[:8], signature) || binary.LittleEndian.Uint32(authenticate[8:]) != 3 {
		return nil, fmt.Errorf("%w: not an AUTHENTICATE message", ErrBadMessage)
	}
	flags := binary.LittleEndian.Uint32(authenticate[60:])
	nt, err1 := field(authenticate, 20)
	dom, err2 := field(authenticate, 28)
	usr, err3 := field(authenticate, 36)
	encKey, err4 := field(authenticate, 52)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	if len(nt) < 16+28 {
		return nil, fmt.Errorf("%w: NTLMv2 response of %d bytes", ErrBadMessage, len(nt))
	}
	if flags&(flagSign|flagSeal) == 0 || flags&flagESS == 0 {
		return nil, fmt.Errorf("%w: the AUTHENTICATE negotiates no signing with extended session security", ErrBadMessage)
	}
	ntowf := ntowfv2(decodeName(usr, flags), password, decodeName(dom, flags))
	exported := hmacMD5(ntowf, nt[:16])
	if flags&flagKeyExch != 0 {
		if len(encKey) != 16 {
			return nil, fmt.Errorf("%w: KEY_EXCH with a %d-byte session key", ErrBadMessage, len(encKey))
		}
		ciph, _ := rc4.NewCipher(exported) // 16-byte key never fails
		ciph.XORKeyStream(exported, encKey)
	}
	return newDirectedSession(flags, exported, clientSigningMagic, serverSigningMagic, clientSealingMagic, serverSealingMagic), nil
}

// Sealed reports whether the client negotiated confidentiality (SEAL);
// without it Wrap only signs.
func (s *Session) Sealed() bool { return s.flags&flagSeal != 0 }

// Wrap seals msg (when SEAL was negotiated) and returns the ciphertext and
// its 16-byte signature (MS-NLMP 3.4.4.2).
func (s *Session) Wrap(msg []byte) (sealed, sig []byte) {
	sealed = append([]byte(nil), msg...)
	sig = make([]byte, 16)
	s.SealInPlace(sealed, sig)
	return sealed, sig
}

// SealInPlace signs msg into sig (16 bytes) and seals msg in place (when
// SEAL was negotiated).
func (s *Session) SealInPlace(msg, sig []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The checksum is over the plaintext; the RC4 stream seals the message
	// first and then the checksum.
	sum := s.mac(s.outMAC, s.outSeq, msg)
	if s.flags&flagSeal != 0 {
		s.out.XORKeyStream(msg, msg)
	}
	s.putSignature(sig, s.out, sum[:8], s.outSeq)
	s.outSeq++
}

// Unwrap checks the signature of a message from the peer and returns its
// plaintext. A signature with a sequence number other than the next
// expected one (a replay, a reordering) fails with ErrSequence before any
// state changes; a checksum mismatch fails with ErrBadSignature and also
// leaves the session as it was, so a forged message cannot desynchronise it.
func (s *Session) Unwrap(sealed, sig []byte) ([]byte, error) {
	plain := append([]byte(nil), sealed...)
	if err := s.UnsealInPlace(plain, sig); err != nil {
		return nil, err
	}
	return plain, nil
}

// UnsealInPlace is Unwrap decrypting msg where it lies. On an error msg
// may be garbled, but the session is unchanged.
func (s *Session) UnsealInPlace(msg, sig []byte) error {
	if len(sig) != 16 {
		return fmt.Errorf("%w: signature is %d bytes, want 16", ErrBadSignature, len(sig))
	}
	if v := binary.LittleEndian.Uint32(sig); v != 1 {
		return fmt.Errorf("%w: signature version %d, want 1", ErrBadSignature, v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq := binary.LittleEndian.Uint32(sig[12:]); seq != s.inSeq {
		return fmt.Errorf("%w: got %d, want %d", ErrSequence, seq, s.inSeq)
	}
	// Work on a copy of the RC4 state and commit it only when the message
	// verifies.
	handle := *s.in
	if s.flags&flagSeal != 0 {
		handle.XORKeyStream(msg, msg)
	}
	sum := s.mac(s.inMAC, s.inSeq, msg)
	var want [16]byte
	s.putSignature(want[:], &handle, sum[:8], s.inSeq)
	if !hmac.Equal(sig, want[:]) {
		return fmt.Errorf("%w: checksum mismatch at sequence %d", ErrBadSignature, s.inSeq)
	}
	*s.in = handle
	s.inSeq++
	return nil
}

// mac returns HMAC_MD5(signKey, seq ‖ msg), in s's scratch space (valid
// until the next call; s.mu is held).
func (s *Session) mac(h hash.Hash, seq uint32, msg []byte) []byte {
	binary.LittleEndian.PutUint32(s.seqb[:], seq)
	h.Reset()
	h.Write(s.seqb[:])
	h.Write(msg)
	return h.Sum(s.sum[:0])
}

// putSignature writes the ESS signature into sig: version 1, the
// checksum (RC4-encrypted with the direction's handle under KEY_EXCH),
// then seq.
func (s *Session) putSignature(sig []byte, h *rc4.Cipher, checksum []byte, seq uint32) {
	binary.LittleEndian.PutUint32(sig, 1)
	copy(sig[4:12], checksum)
	if s.flags&flagKeyExch != 0 {
		h.XORKeyStream(sig[4:12], sig[4:12])
	}
	binary.LittleEndian.PutUint32(sig[12:], seq)
}

func sealKey(flags uint32, key []byte, magic string) []byte {
	switch {
	case flags&flag128 != 0:
	case flags&flag56 != 0:
		key = key[:7]
	default:
		key = key[:5]
	}
	return md5Sum(key, []byte(magic))
}

func ntowfv2(user, password, domain string) []byte {
	h := md4.New()
	h.Write(utf16le(password))
	return hmacMD5(h.Sum(nil), utf16le(strings.ToUpper(user)+domain))
}

func hmacMD5(key []byte, parts ...[]byte) []byte {
	m := hmac.New(md5.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func md5Sum(parts ...[]byte) []byte {
	h := md5.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return b
}

// decodeName decodes a name field: UTF-16LE under UNICODE, else OEM bytes
// (read as Latin-1, which is exact for ASCII names).
func decodeName(b []byte, flags uint32) string {
	if flags&flagUnicode == 0 {
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r)
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

func appendAV(b []byte, id uint16, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, id)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

func parseAV(b []byte) (map[uint16][]byte, error) {
	avs := map[uint16][]byte{}
	for len(b) >= 4 {
		id, n := binary.LittleEndian.Uint16(b), int(binary.LittleEndian.Uint16(b[2:]))
		if id == avEOL {
			return avs, nil
		}
		if 4+n > len(b) {
			return nil, fmt.Errorf("%w: AV pair %d overruns the NTLMv2 response", ErrBadMessage, id)
		}
		avs[id] = b[4 : 4+n]
		b = b[4+n:]
	}
	return nil, fmt.Errorf("%w: AV pair list without MsvAvEOL", ErrBadMessage)
}

func putField(b []byte, n, off int) {
	binary.LittleEndian.PutUint16(b, uint16(n))
	binary.LittleEndian.PutUint16(b[2:], uint16(n))
	binary.LittleEndian.PutUint32(b[4:], uint32(off))
}

// field returns the payload a security buffer at msg[at:at+8] points to,
// with bounds checked.
func field(msg []byte, at int) ([]byte, error) {
	n := int(binary.LittleEndian.Uint16(msg[at:]))
	off := int(binary.LittleEndian.Uint32(msg[at+4:]))
	if off > len(msg) || n > len(msg)-off {
		return nil, fmt.Errorf("%w: field at offset %d (%d bytes at %d) overruns the %d-byte message", ErrBadMessage, at, n, off, len(msg))
	}
	return msg[off : off+n], nil
}

// filetime converts t to Windows FILETIME (100 ns ticks since 1601).
func filetime(t time.Time) uint64 {
	return uint64(t.UnixNano()/100) + 116444736000000000
}
