// Package krbseal seals and unseals the messages of a Kerberos security
// context as WinRM's HTTP message encryption carries them (MS-WSMV
// 2.2.9.1): RFC 4121 wrap tokens with confidentiality, laid out as
// Windows SSPI's EncryptMessage lays them out for WinRM (MS-KILE
// 3.4.5.4.1), a "signature" (the token header and the rotated trailer)
// framed before the data, which is sealed where it lies.
//
// gokrb5, our Kerberos library, makes and checks the context (AP-REQ,
// AP-REP) but its GSS Wrap only signs (go-deps.md §7), so the token
// format is done here. Keys are derived with gokrb5 (RFC 3961), once
// per context; RFC 3962's AES-CTS and HMAC-SHA1-96 are done here with the
// standard library, because gokrb5's EncryptMessage derives both keys
// again for every message, which made sealing 2.4 KB cost 20 µs/KB
// instead of about 3 (BenchmarkSealUnseal), and because its
// DecryptMessage panics on short input (jcmturner/gokrb5#580). Tests
// check the result against gokrb5's EncryptMessage and DecryptMessage
// and against MIT's GSSAPI. Only AES (etypes 17 and 18) is supported:
// Windows has issued AES tickets by default since Server 2008, and the
// RC4 wrap token (RFC 4757) is a different format.
package krbseal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/common"
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
// the checksum (with EC 0), which then come right after the token header.
// MS-KILE 3.4.5.4.1 gives 28 for sealed tokens, and MIT's gss_wrap_iov
// makes this layout for a HEADER and DATA without a TRAILER (RRC = the
// trailer's length, k5sealv3iov.c; TestMITAcceptor), as pyspnego's
// wrap_winrm asks it to. The "signature" is then the token header, the
// rotated trailer and the confounder, and the data part keeps the
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
	send  *sealKey
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
	// buf is scratch for one token's plaintext or ciphertext (under mu),
	// kept between messages up to maxKept bytes, and cleared after each.
	buf []byte
	sum [sha1.Size]byte
	tmp [3][aes.BlockSize]byte
}

// maxKept bounds the scratch a Session keeps between messages: BITS
// envelopes are a few kilobytes, and a fleet holds a Session per host.
const maxKept = 64 << 10

// sealKey is a context key's derived keys for one key usage (RFC 3961
// §5.3: Ke encrypts, Ki makes the checksum), derived once rather than
// for every message as gokrb5's EncryptMessage does, which costs more
// than sealing a few kilobytes.
type sealKey struct {
	ke             cipher.Block
	cbcEnc, cbcDec cipher.BlockMode
	mac            hash.Hash // HMAC-SHA1 with Ki, Reset before each use
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
	s := &Session{flags: flagSealed}
	sendUsage, recvUsage := uint32(usageInitiatorSeal), uint32(usageAcceptorSeal)
	if acceptor {
		s.flags |= flagSentByAcceptor
		sendUsage, recvUsage = recvUsage, sendUsage
	} else {
		s.peerFlag = flagSentByAcceptor
	}
	init, initName := sessionKey, "session key"
	if present(auth.SubKey) {
		init, initName = auth.SubKey, "authenticator subkey"
	}
	// Every side seals with the acceptor subkey once it has one (RFC 4121
	// §2); only an AES key can seal here.
	var err error
	if present(rep.Subkey) {
		s.flags |= flagAcceptorSubkey
		if s.send, err = deriveKey(rep.Subkey, "AP-REP acceptor subkey", sendUsage); err != nil {
			return nil, err
		}
		if s.subkey, err = deriveKey(rep.Subkey, "AP-REP acceptor subkey", recvUsage); err != nil {
			return nil, err
		}
		// Only a peer token without the AcceptorSubkey flag needs it.
		s.initKey, _ = deriveKey(init, initName, recvUsage)
	} else {
		if s.send, err = deriveKey(init, initName, sendUsage); err != nil {
			return nil, err
		}
		if s.initKey, err = deriveKey(init, initName, recvUsage); err != nil {
			return nil, err
		}
	}
	// RFC 4120's sequence numbers are 32-bit unsigned; some encoders
	// (Windows' among them, MS-KILE 3.1.5.1) write them as signed
	// integers, so a large one arrives negative. MIT casts it back.
	authSeq, repSeq := uint64(uint32(auth.SeqNumber)), uint64(uint32(rep.SequenceNumber))
	s.sendSeq, s.recvSeq = authSeq, repSeq
	if acceptor {
		s.sendSeq, s.recvSeq = repSeq, authSeq
	}
	return s, nil
}

// present reports whether an optional key field was sent.
func present(k types.EncryptionKey) bool { return k.KeyType != 0 || len(k.KeyValue) != 0 }

// deriveKey checks that k (named name in errors) is an AES key and
// derives its Ke and Ki for usage with gokrb5's RFC 3961 derivation.
func deriveKey(k types.EncryptionKey, name string, usage uint32) (*sealKey, error) {
	if k.KeyType != etypeID.AES128_CTS_HMAC_SHA1_96 && k.KeyType != etypeID.AES256_CTS_HMAC_SHA1_96 {
		return nil, fmt.Errorf("%w: the %s is of etype %d", ErrUnsupportedEtype, name, k.KeyType)
	}
	et, err := crypto.GetEtype(k.KeyType)
	if err != nil {
		return nil, fmt.Errorf("%w: the %s: %v", ErrUnsupportedEtype, name, err)
	}
	if len(k.KeyValue) != et.GetKeyByteSize() {
		return nil, fmt.Errorf("krbseal: the %s (etype %d) is %d bytes, want %d", name, k.KeyType, len(k.KeyValue), et.GetKeyByteSize())
	}
	ke, err := et.DeriveKey(k.KeyValue, common.GetUsageKe(usage))
	if err != nil {
		return nil, fmt.Errorf("krbseal: derive the %s's encryption key: %w", name, err)
	}
	ki, err := et.DeriveKey(k.KeyValue, common.GetUsageKi(usage))
	if err != nil {
		return nil, fmt.Errorf("krbseal: derive the %s's checksum key: %w", name, err)
	}
	block, err := aes.NewCipher(ke)
	if err != nil {
		return nil, fmt.Errorf("krbseal: the %s: %w", name, err)
	}
	return &sealKey{
		ke:     block,
		cbcEnc: cipher.NewCBCEncrypter(block, zeroIV[:]),
		cbcDec: cipher.NewCBCDecrypter(block, zeroIV[:]),
		mac:    hmac.New(sha1.New, ki),
	}, nil
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
	// RFC 3961's encryption of confounder | data | EC (0) filler bytes |
	// the header with RRC 0: AES-CTS with Ke, then HMAC-SHA1-96 with Ki
	// over that plaintext.
	n := confounderLen + len(msg) + headerLen
	pt := s.scratch(n)
	defer clear(pt)
	if _, err := rand.Read(pt[:confounderLen]); err != nil {
		return fmt.Errorf("krbseal: seal: confounder: %w", err)
	}
	copy(pt[confounderLen:], msg)
	hdr := pt[n-headerLen:]
	putHeader(hdr, s.flags, 0, 0, s.sendSeq)
	sum := s.checksum(s.send, pt)
	s.send.encrypt(pt, &s.tmp)
	// The ciphertext then the checksum, rotated right by RRC: the
	// encrypted header copy and the checksum first, then the confounder,
	// then the data.
	putHeader(sig, s.flags, 0, rrc, s.sendSeq)
	copy(sig[headerLen:], pt[n-headerLen:])
	copy(sig[headerLen+headerLen:], sum)
	copy(sig[headerLen+rrc:], pt[:confounderLen])
	copy(msg, pt[confounderLen:])
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

	buf := s.scratch(body)
	defer clear(buf) // the plaintext is not kept after the call
	pt, ok := s.decrypt(k, buf, sig[headerLen:], msg, (rrcIn+ec)%body)
	if !ok && ec != 0 {
		pt, ok = s.decrypt(k, buf, sig[headerLen:], msg, rrcIn%body)
	}
	if !ok {
		return fmt.Errorf("%w: sequence %d, RRC %d, EC %d: the checksum does not match", ErrIntegrity, seq, rrcIn, ec)
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
	copy(msg, pt)
	s.recvSeq++
	return nil
}

// decrypt puts the token body a followed by b, rotated left by rot, into
// buf, decrypts it and checks its checksum: the plaintext after the
// confounder, and whether the checksum matched.
func (s *Session) decrypt(k *sealKey, buf, a, b []byte, rot int) ([]byte, bool) {
	copyRotated(buf, a, b, rot)
	ct, sum := buf[:len(buf)-checksumLen], buf[len(buf)-checksumLen:]
	k.decrypt(ct, &s.tmp)
	return ct[confounderLen:], hmac.Equal(sum, s.checksum(k, ct))
}

// checksum is HMAC-SHA1-96 of b with k's Ki, in s.sum (s.mu is held).
func (s *Session) checksum(k *sealKey, b []byte) []byte {
	k.mac.Reset()
	k.mac.Write(b)
	return k.mac.Sum(s.sum[:0])[:checksumLen]
}

// scratch returns n bytes of s.buf, grown as needed (s.mu is held).
func (s *Session) scratch(n int) []byte {
	if cap(s.buf) >= n {
		return s.buf[:n]
	}
	b := make([]byte, n)
	if n <= maxKept {
		s.buf = b
	}
	return b
}

// copyRotated copies a followed by b, rotated left by rot (0 <= rot <
// len(a)+len(b) = len(dst)), into dst.
func copyRotated(dst, a, b []byte, rot int) {
	n := copyRange(dst, a, b, rot, len(a)+len(b))
	copyRange(dst[n:], a, b, 0, rot)
}

// copyRange copies bytes from through to-1 of a followed by b into dst.
func copyRange(dst, a, b []byte, from, to int) int {
	n := 0
	if from < len(a) {
		n = copy(dst, a[from:min(to, len(a))])
	}
	if to > len(a) {
		n += copy(dst[n:], b[max(from-len(a), 0):to-len(a)])
	}
	return n
}

// zeroIV is RFC 3962's initial vector for every message.
var zeroIV [aes.BlockSize]byte

// ivSetter is the SetIV method of the standard library's CBC modes, which
// lets a key keep its modes instead of making two per message.
type ivSetter interface{ SetIV([]byte) }

// cbc returns k's CBC encrypter or decrypter, starting from the zero IV.
func (k *sealKey) cbc(enc bool) cipher.BlockMode {
	m := k.cbcDec
	if enc {
		m = k.cbcEnc
	}
	if s, ok := m.(ivSetter); ok {
		s.SetIV(zeroIV[:])
		return m
	}
	if enc {
		return cipher.NewCBCEncrypter(k.ke, zeroIV[:])
	}
	return cipher.NewCBCDecrypter(k.ke, zeroIV[:])
}

// encrypt encrypts p (longer than a block) in place with AES in CBC mode
// with ciphertext stealing and a zero IV (RFC 3962 §5): CBC with the last
// block padded with zeros, then the last two ciphertext blocks swapped
// and the output cut to the plaintext's length. tmp is scratch.
func (k *sealKey) encrypt(p []byte, tmp *[3][aes.BlockSize]byte) {
	r := len(p) % aes.BlockSize
	if r == 0 {
		r = aes.BlockSize
	}
	full := len(p) - r // through the second-last block
	k.cbc(true).CryptBlocks(p[:full], p[:full])
	prev, last := p[full-aes.BlockSize:full], tmp[0][:] // C(n-1), P(n)
	clear(last)
	copy(last, p[full:])
	subtle.XORBytes(last, last, prev)
	k.ke.Encrypt(last, last) // C(n)
	copy(p[full:], prev[:r])
	copy(prev, last)
}

// decrypt decrypts c (longer than a block) in place, undoing encrypt.
func (k *sealKey) decrypt(c []byte, tmp *[3][aes.BlockSize]byte) {
	r := len(c) % aes.BlockSize
	if r == 0 {
		r = aes.BlockSize
	}
	full := len(c) - r
	// c ends with C(n), a whole block, then C(n-1) cut to r bytes. C(n)
	// decrypts to P(n), zero padded, XOR C(n-1): its last bytes are the
	// ones cut.
	d, cn1, pn1 := tmp[0][:], tmp[1][:], tmp[2][:]
	k.ke.Decrypt(d, c[full-aes.BlockSize:full])
	copy(cn1, c[full:])
	copy(cn1[r:], d[r:])
	subtle.XORBytes(c[full:], d[:r], c[full:]) // P(n)
	k.ke.Decrypt(pn1, cn1)
	if full > aes.BlockSize {
		subtle.XORBytes(pn1, pn1, c[full-2*aes.BlockSize:full-aes.BlockSize])
		k.cbc(false).CryptBlocks(c[:full-aes.BlockSize], c[:full-aes.BlockSize])
	}
	copy(c[full-aes.BlockSize:full], pn1)
}

func putHeader(h []byte, flags byte, ec, rrc uint16, seq uint64) {
	h[0], h[1], h[2], h[3] = tokenID0, tokenID1, flags, filler
	binary.BigEndian.PutUint16(h[4:], ec)
	binary.BigEndian.PutUint16(h[6:], rrc)
	binary.BigEndian.PutUint64(h[8:], seq)
}
