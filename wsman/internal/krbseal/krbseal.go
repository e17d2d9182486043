// Package krbseal seals and unseals the messages of a Kerberos security
// context as WinRM's HTTP message encryption carries them (MS-WSMV
// 2.2.9.1): RFC 4121 wrap tokens with confidentiality, laid out as
// Windows SSPI's EncryptMessage lays them out for WinRM (MS-KILE
// 3.4.5.4.1), a "signature" (the token header and the rotated trailer)
// framed before the data, which is sealed where it lies.
//
// gokrb5, our Kerberos library, makes and checks the context (AP-REQ,
// AP-REP) but its GSS Wrap only signs (go-deps.md §7), so the token
// format is done here; the cryptography (RFC 3962's AES-CTS with
// HMAC-SHA1-96, key derivation) is gokrb5's. Only AES (etypes 17 and 18)
// is supported: Windows has issued AES tickets by default since Server
// 2008, and the RC4 wrap token (RFC 4757) is a different format.
package krbseal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/etype"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Errors callers may tell apart: every UnsealInPlace error wraps one of
// ErrMalformed, ErrIntegrity or ErrSequence, and a context whose key
// cannot seal wraps ErrUnsupportedEtype, so the transport can say whether
// the host sent garbage, something forged or corrupted, a replay, or
// chose a cipher we do not do.
var (
	ErrMalformed        = errors.New("kerberos wrap token: malformed")
	ErrIntegrity        = errors.New("kerberos wrap token: integrity check failed")
	ErrSequence         = errors.New("kerberos wrap token: unexpected sequence number (replayed, reordered or lost)")
	ErrUnsupportedEtype = errors.New("kerberos: only AES keys (etypes 17, 18) can seal WinRM messages")
)

// Token header fields (RFC 4121 §4.2.2, §4.2.6.2).
const (
	tokenID0, tokenID1 = 0x05, 0x04
	filler             = 0xff
	headerLen          = 16

	flagSentByAcceptor = 0x01
	flagSealed         = 0x02
	flagAcceptorSubkey = 0x04
)

// Key usages of sealed wrap tokens (RFC 4121 §2).
const (
	usageAcceptorSeal  = 22
	usageInitiatorSeal = 24
)

// AES sizes (RFC 3962): the confounder is one cipher block, the checksum
// HMAC-SHA1 truncated to 96 bits.
const (
	confounderLen = 16
	checksumLen   = 12
)

// rrc is the Right Rotation Count we send: the encrypted header copy and
// the checksum (with EC 0), which then come right after the token header,
// as Windows' WinRM client sends and MIT's gss_wrap_iov makes for a HEADER
// and DATA without a TRAILER. The "signature" is then the token header,
// the rotated trailer and the confounder, and the data part keeps the
// plaintext's length.
const rrc = headerLen + checksumLen

// sigLen is SignatureLen for the layout we send.
const sigLen = headerLen + rrc + confounderLen

// Session protects the WinRM messages of one Kerberos security context
// with RFC 4121 sealed wrap tokens, laid out as Windows SSPI's
// EncryptMessage lays them out for WinRM. Each direction has its own
// sequence number, so messages must be sealed, and unsealed, in the order
// they are sent; a Session is safe for concurrent use (a mutex), but
// concurrent callers must agree on that order themselves.
type Session struct {
	mu sync.Mutex
	// send seals our tokens; flags are the header flags we send.
	send  sealKey
	flags byte
	// subkey and initKey unseal the peer's tokens: subkey (the acceptor
	// subkey, nil when the AP-REP had none) those with the AcceptorSubkey
	// flag, initKey (the initiator's subkey or the session key, nil when
	// not AES) those without.
	subkey, initKey *sealKey
	// peerFlag is the SentByAcceptor flag the peer's tokens must carry.
	peerFlag byte
	// sendSeq and recvSeq are the sequence numbers of the next token we
	// send and of the next we accept.
	sendSeq, recvSeq uint64
	// sendUsage and recvUsage are the key usages of our tokens and of
	// the peer's.
	sendUsage, recvUsage uint32
}

// sealKey is a context key with its etype.
type sealKey struct {
	key types.EncryptionKey
	et  etype.EType
}

// NewInitiator returns the client's side of a context: sessionKey is the
// service ticket's session key, auth the authenticator the client sent in
// its AP-REQ, rep the decrypted AP-REP part the service answered with.
// Tokens are protected with the AP-REP's acceptor subkey when it has one
// (as Windows' and MIT's AES acceptors always send), else the
// authenticator's subkey, else the session key (RFC 4121 §2). The first
// sequence number we send is the authenticator's, the first we expect the
// AP-REP's (RFC 4121 §4.2.6.2: each side starts from the number it sent).
func NewInitiator(sessionKey types.EncryptionKey, auth types.Authenticator, rep messages.EncAPRepPart) (*Session, error) {
	return newSession(false, sessionKey, auth, rep)
}

// NewAcceptor returns the service's side of the context NewInitiator
// makes for the client, from the same keys: what a simulated host needs
// to answer a client that seals. The directions are swapped: we send from
// the AP-REP's sequence number and expect the authenticator's.
func NewAcceptor(sessionKey types.EncryptionKey, auth types.Authenticator, rep messages.EncAPRepPart) (*Session, error) {
	return newSession(true, sessionKey, auth, rep)
}

func newSession(acceptor bool, sessionKey types.EncryptionKey, auth types.Authenticator, rep messages.EncAPRepPart) (*Session, error) {
	init := sessionKey
	initName := "session key"
	if present(auth.SubKey) {
		init, initName = auth.SubKey, "authenticator subkey"
	}
	s := &Session{}
	// Every side seals with the acceptor subkey once it has one (RFC 4121
	// §2); only an AES key can seal here.
	if present(rep.Subkey) {
		k, err := aesKey(rep.Subkey, "AP-REP acceptor subkey")
		if err != nil {
			return nil, err
		}
		s.subkey = &k
		s.send = k
		s.flags = flagAcceptorSubkey
		if k, err := aesKey(init, initName); err == nil {
			s.initKey = &k
		}
	} else {
		k, err := aesKey(init, initName)
		if err != nil {
			return nil, err
		}
		s.send, s.initKey = k, &k
	}
	s.flags |= flagSealed
	// RFC 4120's sequence numbers are 32-bit unsigned; some encoders
	// (Windows' among them, MS-KILE 3.1.5.1) write them as signed
	// integers, so a large one arrives negative. MIT casts it back.
	authSeq, repSeq := uint64(uint32(auth.SeqNumber)), uint64(uint32(rep.SequenceNumber))
	if acceptor {
		s.flags |= flagSentByAcceptor
		s.sendSeq, s.recvSeq = repSeq, authSeq
		s.sendUsage, s.recvUsage = usageAcceptorSeal, usageInitiatorSeal
	} else {
		s.peerFlag = flagSentByAcceptor
		s.sendSeq, s.recvSeq = authSeq, repSeq
		s.sendUsage, s.recvUsage = usageInitiatorSeal, usageAcceptorSeal
	}
	return s, nil
}

// present reports whether an optional key field was sent.
func present(k types.EncryptionKey) bool { return k.KeyType != 0 || len(k.KeyValue) != 0 }

func aesKey(k types.EncryptionKey, name string) (sealKey, error) {
	if k.KeyType != etypeID.AES128_CTS_HMAC_SHA1_96 && k.KeyType != etypeID.AES256_CTS_HMAC_SHA1_96 {
		return sealKey{}, fmt.Errorf("%w: the %s is of etype %d", ErrUnsupportedEtype, name, k.KeyType)
	}
	et, err := crypto.GetEtype(k.KeyType)
	if err != nil {
		return sealKey{}, fmt.Errorf("%w: the %s: %v", ErrUnsupportedEtype, name, err)
	}
	if len(k.KeyValue) != et.GetKeyByteSize() {
		return sealKey{}, fmt.Errorf("krbseal: the %s (etype %d) is %d bytes, want %d", name, k.KeyType, len(k.KeyValue), et.GetKeyByteSize())
	}
	return sealKey{key: k, et: et}, nil
}

// SignatureLen is the length of the signature SealInPlace writes, which
// the WinRM framing announces before it: 60 for AES, the token header
// (16), the rotated encrypted header copy and checksum (28) and the
// confounder (16).
func (s *Session) SignatureLen() int { return sigLen }

// SealInPlace seals msg where it lies (the ciphertext has its length)
// and writes the rest of the wrap token, SignatureLen bytes, into sig:
// sig followed by msg is the token, with EC 0 and RRC 28 as Windows sends
// it. The sequence number advances, so the token must be sent before the
// next one is made. It fails only on a sig of the wrong length or when
// the system's random source fails.
func (s *Session) SealInPlace(msg, sig []byte) error {
	if len(sig) != sigLen {
		return fmt.Errorf("krbseal: signature buffer of %d bytes, want %d", len(sig), sigLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var hdr [headerLen]byte
	putHeader(hdr[:], s.flags, 0, 0, s.sendSeq)
	// Plaintext: the data, EC (0) filler bytes, the header with RRC 0.
	pt := make([]byte, len(msg)+headerLen)
	copy(pt, msg)
	copy(pt[len(msg):], hdr[:])
	var ct []byte
	err := guard(func() (err error) {
		_, ct, err = s.send.et.EncryptMessage(s.send.key.KeyValue, pt, s.sendUsage)
		return err
	})
	if err != nil {
		return fmt.Errorf("krbseal: seal: %w", err)
	}
	if len(ct) != confounderLen+len(pt)+checksumLen {
		return fmt.Errorf("krbseal: seal: ciphertext of %d bytes for %d of plaintext", len(ct), len(pt))
	}
	// ct is E(confounder | data | header copy) | checksum; rotated right
	// by RRC, the encrypted header copy and checksum come first, then the
	// confounder, then the data.
	binary.BigEndian.PutUint16(hdr[6:], rrc)
	copy(sig, hdr[:])
	copy(sig[headerLen:], ct[len(ct)-rrc:])
	copy(sig[headerLen+rrc:], ct[:confounderLen])
	copy(msg, ct[confounderLen:confounderLen+len(msg)])
	s.sendSeq++
	return nil
}

// UnsealInPlace checks the wrap token sig followed by msg from the peer
// and decrypts msg where it lies. sig is the signature as the WinRM
// framing delivered it, of whatever length the peer's layout gives, but
// msg must be exactly the plaintext's length, as it is when the
// framing's signature length is the token's length less the original
// message's. Any RRC and EC are accepted: the token is rotated back by
// RRC+EC, as Windows rotates (MS-KILE 3.4.5.4.1), and if that does not
// verify and EC is not 0, by RRC alone, as RFC 4121 and MIT's non-DCE
// contexts rotate.
//
// The token must be a sealed wrap token (05 04) sent by the other side,
// whose filler byte is FF, whose encrypted header copy matches the header
// (as MIT checks it: RRC aside, which RFC 4121 sets to 0 in the copy), and
// whose sequence number is the next expected one: a replay, a reordering
// or a lost message fails with ErrSequence. On any error msg and the
// session are unchanged, so a forged message cannot desynchronise it.
func (s *Session) UnsealInPlace(msg, sig []byte) error {
	if len(sig) < headerLen {
		return fmt.Errorf("%w: %d bytes, shorter than the %d-byte token header", ErrMalformed, len(sig), headerLen)
	}
	hdr := sig[:headerLen]
	if hdr[0] != tokenID0 || hdr[1] != tokenID1 {
		return fmt.Errorf("%w: token id %02x %02x, want 05 04 (a wrap token)", ErrMalformed, hdr[0], hdr[1])
	}
	flags := hdr[2]
	if flags&^(flagSentByAcceptor|flagSealed|flagAcceptorSubkey) != 0 {
		return fmt.Errorf("%w: unknown flags %#02x", ErrMalformed, flags)
	}
	if flags&flagSealed == 0 {
		return fmt.Errorf("%w: the token is not sealed (flags %#02x): WinRM messages must be encrypted", ErrMalformed, flags)
	}
	if hdr[3] != filler {
		return fmt.Errorf("%w: filler byte %#02x, want 0xff", ErrMalformed, hdr[3])
	}
	ec, rrcIn := int(binary.BigEndian.Uint16(hdr[4:])), int(binary.BigEndian.Uint16(hdr[6:]))
	seq := binary.BigEndian.Uint64(hdr[8:])
	body := len(sig) - headerLen + len(msg)
	if least := confounderLen + ec + headerLen + checksumLen; body < least {
		return fmt.Errorf("%w: %d bytes after the header, too short for EC %d (at least %d)", ErrMalformed, body, ec, least)
	}
	if want := body - confounderLen - ec - headerLen - checksumLen; want != len(msg) {
		return fmt.Errorf("%w: its plaintext is %d bytes but the sealed data part %d (signature %d bytes)", ErrMalformed, want, len(msg), len(sig))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if flags&flagSentByAcceptor != s.peerFlag {
		if s.peerFlag != 0 {
			return fmt.Errorf("%w: sent by the initiator, not by the acceptor (our own message reflected?)", ErrMalformed)
		}
		return fmt.Errorf("%w: sent by the acceptor, not by the initiator (our own message reflected?)", ErrMalformed)
	}
	// MIT picks the key by the flag: an acceptor subkey, or the
	// initiator's key, which a token sent before the AP-REP was read uses.
	k := s.initKey
	if flags&flagAcceptorSubkey != 0 {
		if k = s.subkey; k == nil {
			return fmt.Errorf("%w: protected with an acceptor subkey, but the AP-REP sent none", ErrMalformed)
		}
	} else if k == nil {
		return fmt.Errorf("%w: protected with the initiator's key, which is not AES", ErrUnsupportedEtype)
	}

	buf := make([]byte, body)
	copy(buf, sig[headerLen:])
	copy(buf[len(sig)-headerLen:], msg)
	pt, err := s.decrypt(k, buf, (rrcIn+ec)%body)
	if err != nil && ec != 0 {
		copy(buf, sig[headerLen:])
		copy(buf[len(sig)-headerLen:], msg)
		pt, err = s.decrypt(k, buf, rrcIn%body)
	}
	if err != nil {
		return fmt.Errorf("%w: sequence %d, RRC %d, EC %d: %v", ErrIntegrity, seq, rrcIn, ec, err)
	}
	// The header copy (after the data and EC filler bytes) must match
	// the header in clear, which is not otherwise protected.
	cp := pt[len(pt)-headerLen:]
	if cp[0] != hdr[0] || cp[1] != hdr[1] || cp[2] != hdr[2] || cp[3] != hdr[3] ||
		!bytes.Equal(cp[4:6], hdr[4:6]) || !bytes.Equal(cp[8:], hdr[8:]) {
		return fmt.Errorf("%w: the header % x does not match its encrypted copy % x", ErrIntegrity, hdr, cp)
	}
	if seq != s.recvSeq {
		return fmt.Errorf("%w: got %d, want %d", ErrSequence, seq, s.recvSeq)
	}
	copy(msg, pt[:len(msg)])
	s.recvSeq++
	return nil
}

// decrypt rotates buf (the token after its header) left by rot, in
// place, and decrypts it: the plaintext after the confounder.
func (s *Session) decrypt(k *sealKey, buf []byte, rot int) ([]byte, error) {
	rotateLeft(buf, rot)
	var pt []byte
	err := guard(func() (err error) {
		pt, err = k.et.DecryptMessage(k.key.KeyValue, buf, s.recvUsage)
		return err
	})
	if err == nil && len(pt) != len(buf)-confounderLen-checksumLen {
		err = fmt.Errorf("plaintext of %d bytes from %d of ciphertext", len(pt), len(buf))
	}
	return pt, err
}

// rotateLeft rotates b left by n bytes (0 <= n < len(b)) in place.
func rotateLeft(b []byte, n int) {
	if n == 0 {
		return
	}
	reverse(b[:n])
	reverse(b[n:])
	reverse(b)
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

func putHeader(h []byte, flags byte, ec, rrc uint16, seq uint64) {
	h[0], h[1], h[2], h[3] = tokenID0, tokenID1, flags, filler
	binary.BigEndian.PutUint16(h[4:], ec)
	binary.BigEndian.PutUint16(h[6:], rrc)
	binary.BigEndian.PutUint64(h[8:], seq)
}

// guard turns a panic in gokrb5's crypto into an error: v8.4.4 slices
// without checking lengths (jcmturner/gokrb5#580). Lengths are checked
// before every call; this is the last line, so that no input from the
// network can crash the process.
func guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("gokrb5 panicked: %v", p)
		}
	}()
	return f()
}
