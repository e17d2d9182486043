package krbseal

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// keys is the key material of one context, as the handshake leaves it.
type keys struct {
	session types.EncryptionKey
	auth    types.Authenticator
	rep     messages.EncAPRepPart
}

func randomKey(t testing.TB, etype int32) types.EncryptionKey {
	t.Helper()
	et, err := crypto.GetEtype(etype)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, et.GetKeyByteSize())
	rand.Read(b)
	return types.EncryptionKey{KeyType: etype, KeyValue: et.RandomToKey(b)}
}

// newKeys makes a context's keys: a session key of etype, and when asked
// an authenticator subkey and an acceptor subkey, with the sequence
// numbers given.
func newKeys(t testing.TB, etype int32, authSubkey, acceptorSubkey bool, authSeq, repSeq int64) keys {
	t.Helper()
	k := keys{session: randomKey(t, etype)}
	k.auth.SeqNumber = authSeq
	k.rep.SequenceNumber = repSeq
	if authSubkey {
		k.auth.SubKey = randomKey(t, etype)
	}
	if acceptorSubkey {
		k.rep.Subkey = randomKey(t, etype)
	}
	return k
}

func (k keys) pair(t testing.TB) (initiator, acceptor *Session) {
	t.Helper()
	var err error
	if initiator, err = NewInitiator(k.session, k.auth, k.rep); err != nil {
		t.Fatal(err)
	}
	if acceptor, err = NewAcceptor(k.session, k.auth, k.rep); err != nil {
		t.Fatal(err)
	}
	return initiator, acceptor
}

// seal seals a copy of msg and returns the signature and the sealed data.
func seal(t testing.TB, s *Session, msg []byte) (sig, data []byte) {
	t.Helper()
	data = append([]byte(nil), msg...)
	sig = make([]byte, s.SignatureLen())
	if err := s.SealInPlace(data, sig); err != nil {
		t.Fatal(err)
	}
	return sig, data
}

// unseal unseals copies of sig and data and returns the plaintext.
func unseal(s *Session, sig, data []byte) ([]byte, error) {
	d := append([]byte(nil), data...)
	if err := s.UnsealInPlace(d, append([]byte(nil), sig...)); err != nil {
		return nil, err
	}
	return d, nil
}

// wrapToken is an independent RFC 4121 sealed wrap of msg, written from
// the RFC rather than from SealInPlace, with any EC, RRC and rotation:
// the layouts other peers send.
func wrapToken(t testing.TB, key types.EncryptionKey, usage uint32, flags byte, seq uint64, msg []byte, ec, rrc, rotateBy int) []byte {
	t.Helper()
	hdr := make([]byte, 16)
	hdr[0], hdr[1], hdr[2], hdr[3] = 0x05, 0x04, flags, 0xff
	binary.BigEndian.PutUint16(hdr[4:], uint16(ec))
	binary.BigEndian.PutUint64(hdr[8:], seq)
	pt := append(append(append([]byte(nil), msg...), bytes.Repeat([]byte{0xff}, ec)...), hdr...)
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		t.Fatal(err)
	}
	_, ct, err := et.EncryptMessage(key.KeyValue, pt, usage)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(hdr[6:], uint16(rrc))
	r := rotateBy % len(ct)
	return append(append(hdr, ct[len(ct)-r:]...), ct[:len(ct)-r]...)
}

// split cuts a token into the signature and the data part of n bytes.
func split(tok []byte, n int) (sig, data []byte) { return tok[:len(tok)-n], tok[len(tok)-n:] }

var messagesToSend = [][]byte{
	[]byte("<s:Envelope>first</s:Envelope>"),
	{},
	[]byte("x"),
	bytes.Repeat([]byte("0123456789abcdef"), 4), // a multiple of the AES block
	bytes.Repeat([]byte("<p:State>2</p:State>"), 120),
}

// TestRoundTrip: each side unseals what the other sealed, in both
// directions and for every way the context's key is chosen, with the
// exact header Windows sends (EC 0, RRC 28) and a 60-byte signature.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name             string
		etype            int32
		authSub, accSub  bool
		initFlags, accFl byte
		key              func(keys) types.EncryptionKey
	}{
		{"aes256 acceptor subkey", etypeID.AES256_CTS_HMAC_SHA1_96, true, true, 0x06, 0x07, func(k keys) types.EncryptionKey { return k.rep.Subkey }},
		{"aes128 acceptor subkey", etypeID.AES128_CTS_HMAC_SHA1_96, false, true, 0x06, 0x07, func(k keys) types.EncryptionKey { return k.rep.Subkey }},
		{"aes256 authenticator subkey", etypeID.AES256_CTS_HMAC_SHA1_96, true, false, 0x02, 0x03, func(k keys) types.EncryptionKey { return k.auth.SubKey }},
		{"aes128 session key", etypeID.AES128_CTS_HMAC_SHA1_96, false, false, 0x02, 0x03, func(k keys) types.EncryptionKey { return k.session }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKeys(t, tc.etype, tc.authSub, tc.accSub, 1000, 5000)
			ini, acc := k.pair(t)
			for i, msg := range messagesToSend {
				for _, dir := range []struct {
					from, to *Session
					flags    byte
					seq      uint64
					usage    uint32
				}{{ini, acc, tc.initFlags, 1000, 24}, {acc, ini, tc.accFl, 5000, 22}} {
					sig, data := seal(t, dir.from, msg)
					if len(sig) != 60 || dir.from.SignatureLen() != 60 {
						t.Fatalf("signature %d bytes, SignatureLen %d, want 60", len(sig), dir.from.SignatureLen())
					}
					want := []byte{0x05, 0x04, dir.flags, 0xff, 0, 0, 0, 28}
					want = binary.BigEndian.AppendUint64(want, dir.seq+uint64(i))
					if diff := cmp.Diff(want, sig[:16]); diff != "" {
						t.Errorf("message %d: header (-want +got):\n%s", i, diff)
					}
					if len(msg) > 8 && bytes.Equal(data, msg) {
						t.Errorf("message %d left in clear", i)
					}
					// The token is the RFC's: header | ciphertext rotated
					// right by 28, decrypting with the context key.
					tok := append(append([]byte(nil), sig[16:]...), data...)
					rotateLeft(tok, 28)
					et, _ := crypto.GetEtype(tc.etype)
					pt, err := et.DecryptMessage(tc.key(k).KeyValue, tok, dir.usage)
					if err != nil {
						t.Fatalf("message %d: RFC 4121 decryption: %v", i, err)
					}
					hdrCopy := append([]byte(nil), sig[:16]...)
					hdrCopy[7] = 0 // RRC 0 in the encrypted copy
					if diff := cmp.Diff(append(append([]byte{}, msg...), hdrCopy...), pt); diff != "" {
						t.Errorf("message %d: plaintext | header copy (-want +got):\n%s", i, diff)
					}
					got, err := unseal(dir.to, sig, data)
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if diff := cmp.Diff(msg, got, cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("message %d (-want +got):\n%s", i, diff)
					}
				}
			}
		})
	}
}

// TestMatchesGokrb5: our RFC 3961 encryption (keys derived once, AES-CTS
// and HMAC-SHA1-96 here) is gokrb5's EncryptMessage and DecryptMessage
// for every message length around the AES block, both ways: the
// ciphertext tail of every CTS case is where a mistake would hide.
func TestMatchesGokrb5(t *testing.T) {
	for _, etype := range []int32{etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.AES256_CTS_HMAC_SHA1_96} {
		k := newKeys(t, etype, false, true, 0, 0)
		ini, acc := k.pair(t)
		et, _ := crypto.GetEtype(etype)
		lengths := []int{1000, 1023, 2400, 4097}
		for n := range 70 {
			lengths = append(lengths, n)
		}
		for i, n := range lengths {
			msg := make([]byte, n)
			rand.Read(msg)
			sig, data := seal(t, ini, msg)
			tok := append(append([]byte(nil), sig[16:]...), data...)
			rotateLeft(tok, 28)
			pt, err := et.DecryptMessage(k.rep.Subkey.KeyValue, tok, 24)
			if err != nil || !bytes.Equal(pt[:n], msg) {
				t.Fatalf("etype %d, %d bytes: gokrb5 decrypts ours: %v", etype, n, err)
			}
			theirs := wrapToken(t, k.rep.Subkey, 24, 0x06, uint64(i), msg, 0, 28, 28)
			s, d := split(theirs, n)
			if got, err := unseal(acc, s, d); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("etype %d, %d bytes: we unseal gokrb5's: %v", etype, n, err)
			}
		}
	}
}

// TestOtherLayouts: tokens laid out other than as we send them unseal:
// RRC 0 (MIT's and Heimdal's gss_wrap), other RRCs, EC filler rotated
// by RRC+EC as Windows does, or by RRC alone as RFC 4121 and MIT's
// non-DCE contexts do.
func TestOtherLayouts(t *testing.T) {
	k := newKeys(t, etypeID.AES256_CTS_HMAC_SHA1_96, true, true, 7, 9)
	msg := []byte("<s:Envelope>layout</s:Envelope>")
	for i, tc := range []struct {
		name         string
		ec, rrc, rot int
		flags        byte
		key          types.EncryptionKey
	}{
		{"Windows: EC 0, RRC 28", 0, 28, 28, 0x07, k.rep.Subkey},
		{"gss_wrap: RRC 0", 0, 0, 0, 0x07, k.rep.Subkey},
		{"RRC 12", 0, 12, 12, 0x07, k.rep.Subkey},
		{"RRC longer than the token", 0, 1000, 1000, 0x07, k.rep.Subkey},
		{"EC 16, rotated by RRC+EC (Windows DCE style)", 16, 28, 44, 0x07, k.rep.Subkey},
		{"EC 16, rotated by RRC alone (RFC 4121)", 16, 28, 28, 0x07, k.rep.Subkey},
		{"EC 5, RRC 0", 5, 0, 0, 0x07, k.rep.Subkey},
		{"EC 16, RRC 44 rotated by RRC alone (MIT's IOV)", 16, 44, 44, 0x07, k.rep.Subkey},
		{"no AcceptorSubkey flag: the initiator's key (MIT takes it)", 0, 28, 28, 0x03, k.auth.SubKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ini, _ := k.pair(t)
			ini.recvSeq = uint64(i)
			tok := wrapToken(t, tc.key, 22, tc.flags, uint64(i), msg, tc.ec, tc.rrc, tc.rot)
			sig, data := split(tok, len(msg))
			got, err := unseal(ini, sig, data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(msg, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if ini.recvSeq != uint64(i)+1 {
				t.Errorf("next sequence %d, want %d", ini.recvSeq, i+1)
			}
		})
	}
}

// TestSequence: a replay, a reordering and our own token reflected back
// are refused, and leave the session and the message as they were, so
// the right message still unseals after them.
func TestSequence(t *testing.T) {
	k := newKeys(t, etypeID.AES256_CTS_HMAC_SHA1_96, false, true, 1, 2)
	ini, acc := k.pair(t)
	m1, m2 := []byte("first"), []byte("second")
	sig1, d1 := seal(t, acc, m1)
	sig2, d2 := seal(t, acc, m2)
	check := func(sig, data []byte, wantErr string, target error) {
		t.Helper()
		d := append([]byte(nil), data...)
		err := ini.UnsealInPlace(d, sig)
		if err == nil || err.Error() != wantErr || !errors.Is(err, target) {
			t.Fatalf("got %v, want %q", err, wantErr)
		}
		if !bytes.Equal(d, data) {
			t.Errorf("the message was changed by a failed unseal")
		}
	}
	check(sig2, d2, "kerberos wrap token: unexpected sequence number (replayed, reordered or lost): got 3, want 2", ErrSequence)
	if got, err := unseal(ini, sig1, d1); err != nil || string(got) != "first" {
		t.Fatalf("first after the reordering: %q %v", got, err)
	}
	check(sig1, d1, "kerberos wrap token: unexpected sequence number (replayed, reordered or lost): got 2, want 3", ErrSequence)
	if got, err := unseal(ini, sig2, d2); err != nil || string(got) != "second" {
		t.Fatalf("second after the replay: %q %v", got, err)
	}
	// Our own token back to us, and the acceptor's own to itself.
	sig, d := seal(t, ini, m1)
	check(sig, d, "kerberos wrap token: malformed: sent by the initiator, not by the acceptor (our own message reflected?)", ErrMalformed)
	if got, err := unseal(acc, sig, d); err != nil || string(got) != "first" {
		t.Fatalf("the acceptor: %q %v", got, err)
	}
	asig, ad := seal(t, acc, m1)
	d = append([]byte(nil), ad...)
	if err := acc.UnsealInPlace(d, asig); err == nil || err.Error() != "kerberos wrap token: malformed: sent by the acceptor, not by the initiator (our own message reflected?)" {
		t.Errorf("the acceptor's own token: %v", err)
	}
	// With the direction flag forged, the key usage still tells.
	forged := wrapToken(t, k.rep.Subkey, 24, 0x07, 4, m1, 0, 28, 28)
	fs, fd := split(forged, len(m1))
	check(fs, fd, "kerberos wrap token: integrity check failed: sequence 4, RRC 28, EC 0: the checksum does not match", ErrIntegrity)
}

// TestSequenceNumbers: sequence numbers start from the AP-REQ's and the
// AP-REP's as 32-bit unsigned numbers, one a negative that a signed
// encoder made, and carry past 2^32 as 64-bit ones.
func TestSequenceNumbers(t *testing.T) {
	k := newKeys(t, etypeID.AES256_CTS_HMAC_SHA1_96, false, true, -1, 0x7fffffff)
	ini, acc := k.pair(t)
	for i, want := range []uint64{0xffffffff, 0x100000000, 0x100000001} {
		sig, data := seal(t, ini, []byte("m"))
		if got := binary.BigEndian.Uint64(sig[8:16]); got != want {
			t.Errorf("message %d: sequence %#x, want %#x", i, got, want)
		}
		if _, err := unseal(acc, sig, data); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		sig, _ = seal(t, acc, []byte("m"))
		if got, want := binary.BigEndian.Uint64(sig[8:16]), uint64(0x7fffffff)+uint64(i); got != want {
			t.Errorf("reply %d: sequence %#x, want %#x", i, got, want)
		}
	}
}

// TestTampering: a change to any byte of the token, or a token cut
// short or lengthened, is refused with the error naming what is wrong,
// and leaves the session able to unseal the genuine token.
func TestTampering(t *testing.T) {
	k := newKeys(t, etypeID.AES256_CTS_HMAC_SHA1_96, true, true, 10, 20)
	msg := bytes.Repeat([]byte("<p:JobId>{0}</p:JobId>"), 5)
	_, acc := k.pair(t)
	sig, data := seal(t, acc, msg)
	integrity := "kerberos wrap token: integrity check failed: sequence 20, RRC 28, EC 0: the checksum does not match"
	for _, tc := range []struct {
		name    string
		mutate  func(sig, data []byte) ([]byte, []byte)
		wantErr string
		target  error
	}{
		{"token id", func(s, d []byte) ([]byte, []byte) { s[1] = 0x05; return s, d }, "kerberos wrap token: malformed: token id 05 05, want 05 04 (a wrap token)", ErrMalformed},
		{"MIC token id", func(s, d []byte) ([]byte, []byte) { s[0], s[1] = 0x04, 0x04; return s, d }, "kerberos wrap token: malformed: token id 04 04, want 05 04 (a wrap token)", ErrMalformed},
		{"not sealed", func(s, d []byte) ([]byte, []byte) { s[2] &^= 0x02; return s, d }, "kerberos wrap token: malformed: the token is not sealed (flags 0x05): WinRM messages must be encrypted", ErrMalformed},
		{"unknown flag", func(s, d []byte) ([]byte, []byte) { s[2] |= 0x10; return s, d }, "kerberos wrap token: malformed: unknown flags 0x17", ErrMalformed},
		{"no AcceptorSubkey flag", func(s, d []byte) ([]byte, []byte) { s[2] &^= 0x04; return s, d }, "kerberos wrap token: integrity check failed: sequence 20, RRC 28, EC 0: the checksum does not match", ErrIntegrity},
		{"filler", func(s, d []byte) ([]byte, []byte) { s[3] = 0; return s, d }, "kerberos wrap token: malformed: filler byte 0x00, want 0xff", ErrMalformed},
		{"EC", func(s, d []byte) ([]byte, []byte) { s[5] = 1; return s, d }, "kerberos wrap token: malformed: its plaintext is 109 bytes but the sealed data part 110 (signature 60 bytes)", ErrMalformed},
		{"EC with a data part to match", func(s, d []byte) ([]byte, []byte) { s[5] = 1; return append(s, d[0]), d[1:] }, "kerberos wrap token: integrity check failed: the header 05 04 07 ff 00 01 00 1c 00 00 00 00 00 00 00 14 does not match its encrypted copy 05 04 07 ff 00 00 00 00 00 00 00 00 00 00 00 14", ErrIntegrity},
		{"RRC", func(s, d []byte) ([]byte, []byte) { s[7] = 27; return s, d }, "kerberos wrap token: integrity check failed: sequence 20, RRC 27, EC 0: the checksum does not match", ErrIntegrity},
		{"RRC 0", func(s, d []byte) ([]byte, []byte) { s[7] = 0; return s, d }, "kerberos wrap token: integrity check failed: sequence 20, RRC 0, EC 0: the checksum does not match", ErrIntegrity},
		{"sequence in clear", func(s, d []byte) ([]byte, []byte) { s[15]++; return s, d }, "kerberos wrap token: integrity check failed: the header 05 04 07 ff 00 00 00 1c 00 00 00 00 00 00 00 15 does not match its encrypted copy 05 04 07 ff 00 00 00 00 00 00 00 00 00 00 00 14", ErrIntegrity},
		{"encrypted header copy", func(s, d []byte) ([]byte, []byte) { s[16] ^= 1; return s, d }, integrity, ErrIntegrity},
		{"checksum", func(s, d []byte) ([]byte, []byte) { s[40] ^= 0x80; return s, d }, integrity, ErrIntegrity},
		{"confounder", func(s, d []byte) ([]byte, []byte) { s[59] ^= 1; return s, d }, integrity, ErrIntegrity},
		{"data", func(s, d []byte) ([]byte, []byte) { d[0] ^= 1; return s, d }, integrity, ErrIntegrity},
		{"last data byte", func(s, d []byte) ([]byte, []byte) { d[len(d)-1] ^= 1; return s, d }, integrity, ErrIntegrity},
		{"data cut", func(s, d []byte) ([]byte, []byte) { return s, d[:len(d)-1] }, integrity, ErrIntegrity},
		{"data lengthened", func(s, d []byte) ([]byte, []byte) { return s, append(d, 0) }, integrity, ErrIntegrity},
		{"signature cut", func(s, d []byte) ([]byte, []byte) { return s[:59], d }, "kerberos wrap token: malformed: its plaintext is 109 bytes but the sealed data part 110 (signature 59 bytes)", ErrMalformed},
		{"signature of the header only", func(s, d []byte) ([]byte, []byte) { return s[:16], d }, "kerberos wrap token: malformed: its plaintext is 66 bytes but the sealed data part 110 (signature 16 bytes)", ErrMalformed},
		{"header cut", func(s, d []byte) ([]byte, []byte) { return s[:15], d }, "kerberos wrap token: malformed: 15 bytes, shorter than the 16-byte token header", ErrMalformed},
		{"nothing", func(s, d []byte) ([]byte, []byte) { return nil, nil }, "kerberos wrap token: malformed: 0 bytes, shorter than the 16-byte token header", ErrMalformed},
		{"header alone", func(s, d []byte) ([]byte, []byte) { return s[:16], nil }, "kerberos wrap token: malformed: 0 bytes after the header, too short for EC 0 (at least 44)", ErrMalformed},
		{"huge EC", func(s, d []byte) ([]byte, []byte) { s[4], s[5] = 0xff, 0xff; return s, d }, "kerberos wrap token: malformed: 154 bytes after the header, too short for EC 65535 (at least 65579)", ErrMalformed},
		{"swapped halves", func(s, d []byte) ([]byte, []byte) { return append(s[:16:16], append(d, s[16:]...)...), nil }, "kerberos wrap token: malformed: its plaintext is 110 bytes but the sealed data part 0 (signature 170 bytes)", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ini, _ := k.pair(t)
			ini.recvSeq = 20
			s, d := tc.mutate(append([]byte(nil), sig...), append([]byte(nil), data...))
			d0 := append([]byte(nil), d...)
			err := ini.UnsealInPlace(d, s)
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, tc.target) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
			if !bytes.Equal(d, d0) {
				t.Error("the data part was changed by a failed unseal")
			}
			if got, err := unseal(ini, sig, data); err != nil || !bytes.Equal(got, msg) {
				t.Errorf("the genuine token after it: %q %v", got, err)
			}
		})
	}
}

// TestWrongKey: a token of another context does not unseal.
func TestWrongKey(t *testing.T) {
	_, acc := newKeys(t, etypeID.AES256_CTS_HMAC_SHA1_96, false, true, 1, 2).pair(t)
	ini, _ := newKeys(t, etypeID.AES256_CTS_HMAC_SHA1_96, false, true, 1, 2).pair(t)
	sig, data := seal(t, acc, []byte("hello"))
	if _, err := unseal(ini, sig, data); !errors.Is(err, ErrIntegrity) {
		t.Errorf("got %v, want ErrIntegrity", err)
	}
	// An acceptor without an acceptor subkey gets a token that says it
	// used one.
	k := newKeys(t, etypeID.AES256_CTS_HMAC_SHA1_96, false, false, 1, 2)
	noSub, _ := k.pair(t)
	tok := wrapToken(t, k.session, 22, 0x07, 2, []byte("hello"), 0, 28, 28)
	s, d := split(tok, 5)
	if err := noSub.UnsealInPlace(d, s); err == nil || err.Error() != "kerberos wrap token: malformed: protected with an acceptor subkey, but the AP-REP sent none" {
		t.Errorf("got %v", err)
	}
}

// TestEtypes: a context whose sealing key is not AES is refused when it
// is made, saying which key and which etype; an initiator key that is
// not AES next to an AES acceptor subkey is not needed to seal, and only
// a token that would use it is refused.
func TestEtypes(t *testing.T) {
	rc4 := types.EncryptionKey{KeyType: etypeID.RC4_HMAC, KeyValue: make([]byte, 16)}
	aes := randomKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	for _, tc := range []struct {
		name    string
		session types.EncryptionKey
		auth    types.Authenticator
		rep     messages.EncAPRepPart
		wantErr string
	}{
		{"RC4 session key", rc4, types.Authenticator{}, messages.EncAPRepPart{}, "kerberos: only AES keys (etypes 17, 18) can seal WinRM messages: the session key is of etype 23"},
		{"RC4 authenticator subkey", aes, types.Authenticator{SubKey: rc4}, messages.EncAPRepPart{}, "kerberos: only AES keys (etypes 17, 18) can seal WinRM messages: the authenticator subkey is of etype 23"},
		{"RC4 acceptor subkey", aes, types.Authenticator{}, messages.EncAPRepPart{Subkey: rc4}, "kerberos: only AES keys (etypes 17, 18) can seal WinRM messages: the AP-REP acceptor subkey is of etype 23"},
		{"DES session key", types.EncryptionKey{KeyType: etypeID.DES_CBC_MD5, KeyValue: make([]byte, 8)}, types.Authenticator{}, messages.EncAPRepPart{}, "kerberos: only AES keys (etypes 17, 18) can seal WinRM messages: the session key is of etype 3"},
		{"short AES key", types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: make([]byte, 16)}, types.Authenticator{}, messages.EncAPRepPart{}, "krbseal: the session key (etype 18) is 16 bytes, want 32"},
		{"empty acceptor subkey value", aes, types.Authenticator{}, messages.EncAPRepPart{Subkey: types.EncryptionKey{KeyType: etypeID.AES128_CTS_HMAC_SHA1_96}}, "krbseal: the AP-REP acceptor subkey (etype 17) is 0 bytes, want 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, side := range []func(types.EncryptionKey, types.Authenticator, messages.EncAPRepPart) (*Session, error){NewInitiator, NewAcceptor} {
				s, err := side(tc.session, tc.auth, tc.rep)
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				if s != nil {
					t.Error("a session with the error")
				}
				if strings.HasPrefix(tc.wantErr, "kerberos:") && !errors.Is(err, ErrUnsupportedEtype) {
					t.Error("not ErrUnsupportedEtype")
				}
			}
		})
	}
	rep := messages.EncAPRepPart{Subkey: aes}
	ini, err := NewInitiator(rc4, types.Authenticator{}, rep)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := NewAcceptor(rc4, types.Authenticator{}, rep)
	if err != nil {
		t.Fatal(err)
	}
	sig, data := seal(t, acc, []byte("aes"))
	if got, err := unseal(ini, sig, data); err != nil || string(got) != "aes" {
		t.Fatalf("with the acceptor subkey: %q %v", got, err)
	}
	sig[2] &^= 0x04
	if _, err := unseal(ini, sig, data); err == nil || !errors.Is(err, ErrUnsupportedEtype) ||
		err.Error() != "kerberos: only AES keys (etypes 17, 18) can seal WinRM messages: protected with the initiator's key, which is not AES" {
		t.Errorf("without the flag: %v", err)
	}
}

// TestSealSignatureBuffer: a signature buffer of another length is
// refused without using a sequence number.
func TestSealSignatureBuffer(t *testing.T) {
	ini, acc := newKeys(t, etypeID.AES128_CTS_HMAC_SHA1_96, false, true, 1, 2).pair(t)
	for _, n := range []int{0, 16, 59, 61} {
		msg := []byte("m")
		if err := ini.SealInPlace(msg, make([]byte, n)); err == nil || err.Error() != fmt.Sprintf("krbseal: signature buffer of %d bytes, want 60", n) {
			t.Errorf("%d bytes: %v", n, err)
		}
		if string(msg) != "m" {
			t.Errorf("%d bytes: the message was changed", n)
		}
	}
	sig, data := seal(t, ini, []byte("m"))
	if got, err := unseal(acc, sig, data); err != nil || string(got) != "m" {
		t.Errorf("after the refusals: %q %v", got, err)
	}
}

// TestConcurrent: concurrent callers are serialised (run with -race);
// each token still gets its own sequence number.
func TestConcurrent(t *testing.T) {
	ini, acc := newKeys(t, etypeID.AES256_CTS_HMAC_SHA1_96, false, true, 1, 2).pair(t)
	const n = 8
	type tok struct{ sig, data []byte }
	toks := make(chan tok, n)
	for range n {
		go func() {
			sig, data := make([]byte, 60), []byte("concurrent")
			if err := ini.SealInPlace(data, sig); err != nil {
				t.Error(err)
			}
			toks <- tok{sig, data}
		}()
	}
	bySeq := map[uint64]tok{}
	for range n {
		tk := <-toks
		bySeq[binary.BigEndian.Uint64(tk.sig[8:16])] = tk
	}
	for seq := uint64(1); seq <= n; seq++ {
		tk, ok := bySeq[seq]
		if !ok {
			t.Fatalf("no token with sequence %d: %v", seq, bySeq)
		}
		if got, err := unseal(acc, tk.sig, tk.data); err != nil || string(got) != "concurrent" {
			t.Fatalf("sequence %d: %q %v", seq, got, err)
		}
	}
}

// FuzzUnsealInPlace: no signature and data, however malformed, panics or
// changes the session or the data unless it unseals.
func FuzzUnsealInPlace(f *testing.F) {
	k := newKeys(f, etypeID.AES256_CTS_HMAC_SHA1_96, false, true, 1, 2)
	ini, acc := k.pair(f)
	sig, data := seal(f, acc, []byte("<s:Envelope/>"))
	f.Add(sig, data)
	f.Add(sig[:16], data)
	f.Add(wrapToken(f, k.rep.Subkey, 22, 0x07, 2, []byte("x"), 16, 28, 44), []byte{})
	f.Add(wrapToken(f, k.rep.Subkey, 22, 0x07, 2, nil, 0, 0, 0), []byte{})
	f.Add([]byte{5, 4, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 2}, make([]byte, 40))
	f.Add([]byte{5, 4, 7, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, make([]byte, 28))
	f.Fuzz(func(t *testing.T, sig, data []byte) {
		// One session for the worker (fuzz calls are sequential), set
		// back after a token that unseals.
		d := append([]byte(nil), data...)
		if err := ini.UnsealInPlace(d, sig); err != nil {
			if ini.recvSeq != 2 {
				t.Fatalf("sequence moved to %d on %v", ini.recvSeq, err)
			}
			if !bytes.Equal(d, data) {
				t.Fatalf("data changed on %v", err)
			}
		}
		ini.recvSeq = 2
	})
}

// BenchmarkSealUnseal is Kerberos message encryption's cost per message:
// one side seals (AES-CTS, HMAC-SHA1-96), the other checks and unseals,
// for 1 KB, a Get's request plus reply (2.4 KB) and a page of a listing.
// µs/KB is the cost of sealing or of unsealing one kilobyte, to compare
// with NTLM's (ntlmauth.BenchmarkSealUnseal).
func BenchmarkSealUnseal(b *testing.B) {
	for _, etype := range []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.AES128_CTS_HMAC_SHA1_96} {
		for _, size := range []int{1 << 10, 2400, 64 << 10} {
			b.Run(fmt.Sprintf("etype%d/%dB", etype, size), func(b *testing.B) {
				ini, acc := newKeys(b, etype, false, true, 1, 2).pair(b)
				msg := bytes.Repeat([]byte("<p:State>2</p:State>"), size/20+1)[:size]
				sig := make([]byte, ini.SignatureLen())
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := ini.SealInPlace(msg, sig); err != nil {
						b.Fatal(err)
					}
					if err := acc.UnsealInPlace(msg, sig); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N)/(2*float64(size)/1024), "µs/KB")
			})
		}
	}
}

// rotateLeft rotates b left by n bytes (0 <= n < len(b)) in place.
func rotateLeft(b []byte, n int) {
	b2 := append(append([]byte(nil), b[n:]...), b[:n]...)
	copy(b, b2)
}
