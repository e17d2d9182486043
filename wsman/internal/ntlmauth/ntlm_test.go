package ntlmauth

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	azure "github.com/Azure/go-ntlmssp"
	"github.com/bodgit/ntlmssp"
)

func testServer() *Server {
	return &Server{Domain: "WORKGROUP", Computer: "WIN-BITS01", Users: map[string]string{"alice": "S3cret!pw", "bob": "hunter2"}}
}

func TestAzureClientAuthenticates(t *testing.T) {
	tests := []struct {
		name, user, password string
		wantUser             string
		wantErr              string
	}{
		{name: "good", user: "alice", password: "S3cret!pw", wantUser: "alice"},
		{name: "user name case-insensitive", user: "ALICE", password: "S3cret!pw", wantUser: "ALICE"},
		{name: "with domain", user: `WORKGROUP\bob`, password: "hunter2", wantUser: "bob"},
		{name: "wrong password", user: "alice", password: "S3cret!pX", wantErr: `ntlm: authentication failed: wrong password for user "alice"`},
		{name: "unknown user", user: "mallory", password: "S3cret!pw", wantErr: `ntlm: authentication failed: unknown user "mallory"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testServer().NewConn()
			neg, err := azure.NewNegotiateMessage("", "")
			if err != nil {
				t.Fatal(err)
			}
			ch, err := c.Challenge(neg)
			if err != nil {
				t.Fatalf("Challenge: %v", err)
			}
			auth, err := azure.NewAuthenticateMessage(ch, tt.user, tt.password, nil)
			if err != nil {
				t.Fatalf("azure NewAuthenticateMessage: %v", err)
			}
			err = c.Authenticate(auth)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrAuthFailed) {
					t.Fatalf("Authenticate error = %v, want %q wrapping ErrAuthFailed", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), tt.password) {
					t.Fatalf("error leaks the password: %v", err)
				}
				if c.User() != "" || c.Session() != nil {
					t.Fatalf("failed Authenticate left user %q session %v", c.User(), c.Session())
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if c.User() != tt.wantUser {
				t.Fatalf("User() = %q, want %q", c.User(), tt.wantUser)
			}
			if c.Session() != nil {
				t.Fatal("Azure negotiates no SIGN/SEAL, yet a Session was created")
			}
		})
	}
}

// bodgitHandshake authenticates a bodgit/ntlmssp client (sign, seal,
// KEY_EXCH, MIC) against a fresh Conn.
func bodgitHandshake(t *testing.T, srv *Server, user, password string) (*Conn, *ntlmssp.Client, error) {
	t.Helper()
	nc, err := ntlmssp.NewClient(ntlmssp.SetUserInfo(user, password), ntlmssp.SetDomain("WORKGROUP"), ntlmssp.SetVersion(ntlmssp.DefaultVersion()))
	if err != nil {
		t.Fatal(err)
	}
	neg, err := nc.Authenticate(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := srv.NewConn()
	ch, err := c.Challenge(neg)
	if err != nil {
		t.Fatalf("Challenge: %v", err)
	}
	auth, err := nc.Authenticate(ch, nil)
	if err != nil {
		t.Fatalf("bodgit Authenticate: %v", err)
	}
	return c, nc, c.Authenticate(auth)
}

func TestBodgitSealedSession(t *testing.T) {
	c, nc, err := bodgitHandshake(t, testServer(), "bob", "hunter2")
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if c.flags&(flagSeal|flagSign|flagKeyExch|flagESS|flag128) != flagSeal|flagSign|flagKeyExch|flagESS|flag128 {
		t.Fatalf("negotiated flags %#08x lack SEAL/SIGN/KEY_EXCH/ESS/128", c.flags)
	}
	srvSess, cliSess := c.Session(), nc.SecuritySession()
	if srvSess == nil || !srvSess.Sealed() {
		t.Fatal("no sealed server session")
	}
	for i := range 5 {
		req := fmt.Appendf(nil, "<s:Envelope>request %d %s</s:Envelope>", i, strings.Repeat("x", i*100))
		sealed, sig, err := cliSess.Wrap(req)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(sealed, req) {
			t.Fatal("client Wrap did not encrypt")
		}
		got, err := srvSess.Unwrap(sealed, sig)
		if err != nil {
			t.Fatalf("message %d: server Unwrap: %v", i, err)
		}
		if !bytes.Equal(got, req) {
			t.Fatalf("message %d: server Unwrap = %q, want %q", i, got, req)
		}
		reply := fmt.Appendf(nil, "<s:Envelope>reply %d</s:Envelope>", i)
		sealed, sig = srvSess.Wrap(reply)
		if binary.LittleEndian.Uint32(sig[12:]) != uint32(i) {
			t.Fatalf("reply %d carries sequence %d", i, binary.LittleEndian.Uint32(sig[12:]))
		}
		got, err = cliSess.Unwrap(sealed, sig)
		if err != nil {
			t.Fatalf("reply %d: client Unwrap: %v", i, err)
		}
		if !bytes.Equal(got, reply) {
			t.Fatalf("reply %d: client Unwrap = %q, want %q", i, got, reply)
		}
	}
}

func TestUnwrapRejects(t *testing.T) {
	c, nc, err := bodgitHandshake(t, testServer(), "alice", "S3cret!pw")
	if err != nil {
		t.Fatal(err)
	}
	srvSess, cliSess := c.Session(), nc.SecuritySession()
	first, firstSig, _ := cliSess.Wrap([]byte("message zero"))
	if _, err := srvSess.Unwrap(first, firstSig); err != nil {
		t.Fatal(err)
	}
	msg, sig, _ := cliSess.Wrap([]byte("message one"))

	tamperedSig := bytes.Clone(sig)
	tamperedSig[5] ^= 1
	tamperedMsg := bytes.Clone(msg)
	tamperedMsg[0] ^= 1
	skipped := bytes.Clone(sig)
	binary.LittleEndian.PutUint32(skipped[12:], 2)

	tests := []struct {
		name     string
		msg, sig []byte
		want     error
		wantText string
	}{
		{"replayed message", first, firstSig, ErrSequence, "ntlm: unexpected sequence number (replayed or out of order): got 0, want 1"},
		{"tampered signature", msg, tamperedSig, ErrBadSignature, "ntlm: message signature does not verify: checksum mismatch at sequence 1"},
		{"tampered ciphertext", tamperedMsg, sig, ErrBadSignature, "ntlm: message signature does not verify: checksum mismatch at sequence 1"},
		{"sequence from the future", msg, skipped, ErrSequence, "ntlm: unexpected sequence number (replayed or out of order): got 2, want 1"},
		{"short signature", msg, sig[:12], ErrBadSignature, "ntlm: message signature does not verify: signature is 12 bytes, want 16"},
		{"bad version", msg, append([]byte{2, 0, 0, 0}, sig[4:]...), ErrBadSignature, "ntlm: message signature does not verify: signature version 2, want 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := srvSess.Unwrap(tt.msg, tt.sig)
			if !errors.Is(err, tt.want) || err.Error() != tt.wantText {
				t.Fatalf("Unwrap error = %v, want %q", err, tt.wantText)
			}
		})
	}
	// None of the rejected messages moved the session: the genuine one
	// still unwraps.
	got, err := srvSess.Unwrap(msg, sig)
	if err != nil || string(got) != "message one" {
		t.Fatalf("genuine message after rejections: %q, %v", got, err)
	}
}

func TestMICDetectsAlteredMessage(t *testing.T) {
	nc, _ := ntlmssp.NewClient(ntlmssp.SetUserInfo("alice", "S3cret!pw"), ntlmssp.SetDomain("WORKGROUP"), ntlmssp.SetVersion(ntlmssp.DefaultVersion()))
	neg, _ := nc.Authenticate(nil, nil)
	c := testServer().NewConn()
	ch, err := c.Challenge(neg)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := nc.Authenticate(ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Drop ALWAYS_SIGN: it enters no key, so only the MIC can notice.
	flags := binary.LittleEndian.Uint32(auth[60:])
	binary.LittleEndian.PutUint32(auth[60:], flags&^flagAlwaysSign)
	err = c.Authenticate(auth)
	const want = `ntlm: authentication failed: user "alice": MIC does not verify (message altered)`
	if err == nil || err.Error() != want {
		t.Fatalf("Authenticate = %v, want %q", err, want)
	}
}

func TestChallengeFlags(t *testing.T) {
	// 0xE2889032 is what pywinrm's ntlm-auth 1.4.0 sends: OEM, SIGN, SEAL,
	// ESS, KEY_EXCH, 128, 56, but neither UNICODE nor NTLM.
	pywinrm := make([]byte, 32)
	copy(pywinrm, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(pywinrm[8:], 1)
	binary.LittleEndian.PutUint32(pywinrm[12:], 0xE2889032)

	tests := []struct {
		name      string
		negFlags  uint32
		wantFlags uint32
	}{
		{"pywinrm OEM negotiate", 0xE2889032, 0xE2889032&^flagOEM&^0x1000 | flagUnicode | flagNTLM},
		{"azure v0.1.1", 0, 0},
	}
	azNeg, _ := azure.NewNegotiateMessage("", "")
	tests[1].negFlags = binary.LittleEndian.Uint32(azNeg[12:])
	tests[1].wantFlags = tests[1].negFlags&echoedClientFlags | flagUnicode | flagNTLM | flagTargetInfo | flagVersion
	if tests[1].negFlags&flagRequestTarget != 0 {
		tests[1].wantFlags |= flagTargetDomain
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			neg := bytes.Clone(pywinrm)
			binary.LittleEndian.PutUint32(neg[12:], tt.negFlags)
			ch, err := testServer().NewConn().Challenge(neg)
			if err != nil {
				t.Fatal(err)
			}
			got := binary.LittleEndian.Uint32(ch[20:])
			if got != tt.wantFlags {
				t.Fatalf("CHALLENGE flags = %#08x, want %#08x", got, tt.wantFlags)
			}
			if got&flagUnicode == 0 || got&flagOEM != 0 {
				t.Fatalf("CHALLENGE flags %#08x: UNICODE must be set and OEM clear", got)
			}
			ti, err := field(ch, 40)
			if err != nil {
				t.Fatal(err)
			}
			avs, err := parseAV(ti)
			if err != nil {
				t.Fatal(err)
			}
			if len(avs[avTimestamp]) != 8 {
				t.Fatalf("TargetInfo lacks an 8-byte MsvAvTimestamp: %v", avs)
			}
			if got, want := decodeName(avs[avNbComputer], flagUnicode), "WIN-BITS01"; got != want {
				t.Fatalf("MsvAvNbComputerName = %q, want %q", got, want)
			}
		})
	}
}

// TestOEMNegotiateStillAuthenticates answers pywinrm's flag set and lets a
// sealing client finish the exchange on that CHALLENGE. bodgit always sends
// its own NEGOTIATE, so the stored one is swapped for it to keep the MIC
// (computed over the client's real NEGOTIATE) comparable.
func TestOEMNegotiateStillAuthenticates(t *testing.T) {
	nc, _ := ntlmssp.NewClient(ntlmssp.SetUserInfo("alice", "S3cret!pw"), ntlmssp.SetDomain("WORKGROUP"), ntlmssp.SetVersion(ntlmssp.DefaultVersion()))
	bodgitNeg, _ := nc.Authenticate(nil, nil)
	neg := bytes.Clone(bodgitNeg)
	binary.LittleEndian.PutUint32(neg[12:], 0xE2889032)
	c := testServer().NewConn()
	ch, err := c.Challenge(neg)
	if err != nil {
		t.Fatal(err)
	}
	c.negotiate = bodgitNeg
	auth, err := nc.Authenticate(ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Authenticate(auth); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	sealed, sig, _ := nc.SecuritySession().Wrap([]byte("hello"))
	if got, err := c.Session().Unwrap(sealed, sig); err != nil || string(got) != "hello" {
		t.Fatalf("Unwrap = %q, %v", got, err)
	}
}

func TestMalformedMessages(t *testing.T) {
	c := testServer().NewConn()
	if _, err := c.Challenge([]byte("NTLMSSP\x00\x03\x00\x00\x00\x00\x00\x00\x00")); err == nil || err.Error() != "ntlm: malformed message: message type 3, want NEGOTIATE (1)" {
		t.Fatalf("Challenge(type 3) = %v", err)
	}
	if err := c.Authenticate(make([]byte, 100)); err == nil || err.Error() != "ntlm: authentication failed: AUTHENTICATE before CHALLENGE" {
		t.Fatalf("Authenticate before Challenge = %v", err)
	}
	neg, _ := azure.NewNegotiateMessage("", "")
	if _, err := c.Challenge(neg); err != nil {
		t.Fatal(err)
	}
	bad := make([]byte, 88)
	copy(bad, "NTLMSSP\x00\x03")
	binary.LittleEndian.PutUint16(bad[20:], 200) // NtChallengeResponse: 200 bytes at 88
	binary.LittleEndian.PutUint32(bad[24:], 88)
	err := c.Authenticate(bad)
	const want = "ntlm: authentication failed: ntlm: malformed message: field at offset 20 (200 bytes at 88) overruns the 88-byte message"
	if err == nil || err.Error() != want {
		t.Fatalf("Authenticate(overrun) = %v, want %q", err, want)
	}
}

func FuzzAuthenticate(f *testing.F) {
	nc, _ := ntlmssp.NewClient(ntlmssp.SetUserInfo("alice", "S3cret!pw"), ntlmssp.SetDomain("WORKGROUP"), ntlmssp.SetVersion(ntlmssp.DefaultVersion()))
	neg, _ := nc.Authenticate(nil, nil)
	c := testServer().NewConn()
	ch, _ := c.Challenge(neg)
	auth, _ := nc.Authenticate(ch, nil)
	f.Add(auth)
	f.Add([]byte("NTLMSSP\x00\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := testServer().NewConn()
		if _, err := c.Challenge(neg); err != nil {
			t.Fatal(err)
		}
		_ = c.Authenticate(b)
	})
}

// TestClientSessionMatchesBodgit: the session ClientSession derives from
// the AUTHENTICATE bodgit/ntlmssp sent seals byte for byte as bodgit's own
// session does (same ciphertext, same signature, message after message),
// unseals what the server seals, and refuses what bodgit would refuse.
func TestClientSessionMatchesBodgit(t *testing.T) {
	for _, user := range []string{"bob", `WORKGROUP\bob`} {
		t.Run(user, func(t *testing.T) {
			nc, err := ntlmssp.NewClient(ntlmssp.SetUserInfo("bob", "hunter2"), ntlmssp.SetDomain("WORKGROUP"), ntlmssp.SetVersion(ntlmssp.DefaultVersion()))
			if err != nil {
				t.Fatal(err)
			}
			neg, err := nc.Authenticate(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := testServer().NewConn()
			ch, err := c.Challenge(neg)
			if err != nil {
				t.Fatal(err)
			}
			auth, err := nc.Authenticate(ch, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Authenticate(auth); err != nil {
				t.Fatal(err)
			}
			ours, err := ClientSession(auth, "hunter2")
			if err != nil {
				t.Fatalf("ClientSession: %v", err)
			}
			theirs, srv := nc.SecuritySession(), c.Session()
			for i := range 20 {
				msg := fmt.Appendf(nil, "<s:Envelope>request %d %s</s:Envelope>", i, strings.Repeat("x", i*97))
				wantSealed, wantSig, err := theirs.Wrap(msg)
				if err != nil {
					t.Fatal(err)
				}
				got, sig := append([]byte(nil), msg...), make([]byte, 16)
				ours.SealInPlace(got, sig)
				if !bytes.Equal(got, wantSealed) || !bytes.Equal(sig, wantSig) {
					t.Fatalf("message %d: sealed %x sig %x, bodgit %x sig %x", i, got[:16], sig, wantSealed[:16], wantSig)
				}
				if plain, err := srv.Unwrap(got, sig); err != nil || !bytes.Equal(plain, msg) {
					t.Fatalf("message %d: server Unwrap = %q, %v", i, plain, err)
				}
				reply := fmt.Appendf(nil, "<s:Envelope>reply %d %s</s:Envelope>", i, strings.Repeat("y", i*131))
				sealed, rsig := srv.Wrap(reply)
				if i%5 == 4 {
					// A forged reply is refused and does not move the session.
					bad := append([]byte(nil), sealed...)
					bad[0] ^= 1
					if err := ours.UnsealInPlace(bad, rsig); !errors.Is(err, ErrBadSignature) {
						t.Fatalf("reply %d: forged reply: err = %v, want ErrBadSignature", i, err)
					}
				}
				if err := ours.UnsealInPlace(sealed, rsig); err != nil || !bytes.Equal(sealed, reply) {
					t.Fatalf("reply %d: UnsealInPlace = %q, %v", i, sealed, err)
				}
			}
			// A replayed reply is out of sequence.
			sealed, rsig := srv.Wrap([]byte("<x/>"))
			replay := append([]byte(nil), sealed...)
			if err := ours.UnsealInPlace(sealed, rsig); err != nil {
				t.Fatal(err)
			}
			if err := ours.UnsealInPlace(replay, rsig); !errors.Is(err, ErrSequence) {
				t.Fatalf("replayed reply: err = %v, want ErrSequence", err)
			}
		})
	}
}

func TestClientSessionRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"empty", nil, "ntlm: malformed message: not an AUTHENTICATE message"},
		{"negotiate", append([]byte("NTLMSSP\x00\x01\x00\x00\x00"), make([]byte, 60)...), "ntlm: malformed message: not an AUTHENTICATE message"},
		{"short NT response", append([]byte("NTLMSSP\x00\x03\x00\x00\x00"), make([]byte, 60)...), "ntlm: malformed message: NTLMv2 response of 0 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ClientSession(tc.msg, "pw")
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrBadMessage) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkSealUnseal is MS-WSMV encryption's cost per message: one side
// seals and signs it (RC4, HMAC-MD5), the other checks and unseals it,
// for 1 KB, a Get's request plus reply (2.4 KB) and a page of a listing.
// It reports µs/KB, the cost of sealing or of unsealing one kilobyte:
// what encryption adds to a client per kilobyte it sends or receives, a
// way to state a goal for it that does not move when the rest of a Get
// gets faster.
func BenchmarkSealUnseal(b *testing.B) {
	flags := flagSign | flagSeal | flagESS | flagKeyExch | flag128
	key := bytes.Repeat([]byte{0x42}, 16)
	for _, size := range []int{1 << 10, 2400, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			client := newDirectedSession(flags, key, clientSigningMagic, serverSigningMagic, clientSealingMagic, serverSealingMagic)
			server := newSession(flags, key)
			msg := bytes.Repeat([]byte("<p:State>2</p:State>"), size/20+1)[:size]
			var sig [16]byte
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				client.SealInPlace(msg, sig[:])
				if err := server.UnsealInPlace(msg, sig[:]); err != nil {
					b.Fatal(err)
				}
			}
			// Each op seals and unseals size bytes: 2·size bytes of work.
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N)/(2*float64(size)/1024), "µs/KB")
		})
	}
}
