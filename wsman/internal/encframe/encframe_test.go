package encframe

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var sig16 = []byte("SIGNATURE-16-BYT")

func TestAppendExactBytes(t *testing.T) {
	sealed := []byte("0123456789abcdefghi") // N = 19
	got := Append(nil, SOAPType, len(sealed), sig16, sealed)
	want := "--Encrypted Boundary\r\n" +
		"\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n" +
		"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=19\r\n" +
		"--Encrypted Boundary\r\n" +
		"\tContent-Type: application/octet-stream\r\n" +
		"\x10\x00\x00\x00" + "SIGNATURE-16-BYT" + "0123456789abcdefghi" +
		"--Encrypted Boundary--\r\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Fatalf("Append mismatch (-want +got):\n%s", diff)
	}
}

// TestTotalLength checks the NTLM formula N + 254 + digits(N) from
// wsman-wire.md §4.3, and pywinrm's unit test (272 bytes for N=19 with a
// 4-byte signature and a 28-byte payload).
func TestTotalLength(t *testing.T) {
	for _, n := range []int{0, 1, 9, 10, 99, 236, 1000, 153600, 1 << 20} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			got := len(Append(nil, SOAPType, n, sig16, make([]byte, n)))
			want := n + 254 + len(strconv.Itoa(n))
			if got != want || Size(SOAPType, n, 16, n) != want {
				t.Fatalf("len = %d, Size = %d, want %d", got, Size(SOAPType, n, 16, n), want)
			}
		})
	}
	if got := len(Append(nil, SOAPType, 19, []byte("sigs"), make([]byte, 28))); got != 272 {
		t.Fatalf("pywinrm case: %d bytes, want 272", got)
	}
}

func identity(sealed, sig []byte) ([]byte, error) { return sealed, nil }

func TestRoundTrip(t *testing.T) {
	for _, plain := range [][]byte{nil, []byte("x"), []byte("--Encrypted Boundary--\r\n"), bytes.Repeat([]byte{0, '-', '\r', '\n'}, 5000)} {
		body, err := Wrap(plain, SOAPType, func(p []byte) ([]byte, []byte, error) { return p, sig16, nil })
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(body)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		want := &Part{OriginalType: SOAPType, Length: len(plain), Signature: sig16, Sealed: plain}
		if diff := cmp.Diff(want, p, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
			t.Fatalf("Parse mismatch (-want +got):\n%s", diff)
		}
		got, ctype, err := Unwrap(body, identity)
		if err != nil || !bytes.Equal(got, plain) || ctype != SOAPType {
			t.Fatalf("Unwrap = %q, %q, %v", got, ctype, err)
		}
	}
}

func TestParseTolerant(t *testing.T) {
	// Exchange and the MS-WSMV 4.5 example put a space after the dashes;
	// some writers drop the final CRLF.
	body := "-- Encrypted Boundary\r\n" +
		"\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n" +
		"\tOriginalContent: type=application/soap+xml;charset=UTF-16;Length=3\r\n" +
		"-- Encrypted Boundary\r\n" +
		"\tContent-Type: application/octet-stream\r\n" +
		"\x02\x00\x00\x00" + "SG" + "abc" +
		"-- Encrypted Boundary--"
	p, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := &Part{OriginalType: "application/soap+xml;charset=UTF-16", Length: 3, Signature: []byte("SG"), Sealed: []byte("abc")}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Fatalf("mismatch (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	good := string(Append(nil, SOAPType, 3, sig16, []byte("abc")))
	tests := []struct {
		name, body, want string
	}{
		{"empty", "", "malformed multipart/encrypted body: does not start with the Encrypted Boundary line"},
		{"plain SOAP", "<s:Envelope/>", "malformed multipart/encrypted body: does not start with the Encrypted Boundary line"},
		{"no second boundary", "--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted", "malformed multipart/encrypted body: first part ends without a second boundary"},
		{"wrong protocol", strings.Replace(good, "HTTP-SPNEGO", "HTTP-CredSSP", 1), "malformed multipart/encrypted body: first part Content-Type \"application/HTTP-CredSSP-session-encrypted\", want application/HTTP-SPNEGO-session-encrypted"},
		{"no Length", strings.Replace(good, ";Length=3", "", 1), "malformed multipart/encrypted body: no OriginalContent header with a Length"},
		{"bad Length", strings.Replace(good, "Length=3", "Length=-3", 1), "malformed multipart/encrypted body: OriginalContent Length \"-3\" is not a byte count"},
		{"no type", strings.Replace(good, "type=", "kind=", 1), "malformed multipart/encrypted body: OriginalContent \"kind=application/soap+xml;charset=UTF-8;Length=3\" does not start with type="},
		{"header without colon", strings.Replace(good, "\tOriginalContent:", "\tOriginalContent", 1), "malformed multipart/encrypted body: header line \"\\tOriginalContent type=application/soap+xml;charset=UTF-8;Length=3\" has no colon"},
		{"wrong payload type", strings.Replace(good, "octet-stream", "soap+xml", 1), "malformed multipart/encrypted body: second part header \"\\tContent-Type: application/soap+xml\", want Content-Type: application/octet-stream"},
		{"no closing boundary", strings.TrimSuffix(good, "--Encrypted Boundary--\r\n"), "malformed multipart/encrypted body: does not end with the closing Encrypted Boundary line"},
		{"signature length overruns", strings.Replace(good, "\x10\x00\x00\x00", "\xff\xff\xff\xff", 1), "malformed multipart/encrypted body: signature length 4294967295 exceeds the 19 payload bytes"},
		{"payload too short", "--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=a;Length=0\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n\x01--Encrypted Boundary--\r\n", "malformed multipart/encrypted body: payload of 1 bytes has no signature length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body))
			if err == nil || !errors.Is(err, ErrMalformed) || err.Error() != tt.want {
				t.Fatalf("Parse error = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestUnwrapLengthAndUnsealErrors(t *testing.T) {
	body := Append(nil, SOAPType, 5, sig16, []byte("abc"))
	_, _, err := Unwrap(body, identity)
	if !errors.Is(err, ErrLength) || err.Error() != "unsealed length differs from OriginalContent Length: got 3 bytes, header says 5" {
		t.Fatalf("Unwrap = %v", err)
	}
	boom := errors.New("bad signature")
	if _, _, err := Unwrap(Append(nil, SOAPType, 3, sig16, []byte("abc")), func(_, _ []byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("Unwrap = %v, want the unseal error", err)
	}
}

func TestIsEncrypted(t *testing.T) {
	tests := []struct {
		ct   string
		want bool
	}{
		{ContentType, true},
		{`multipart/encrypted; protocol="application/http-spnego-session-encrypted"; boundary="Encrypted Boundary"`, true},
		{`multipart/encrypted;protocol="application/HTTP-CredSSP-session-encrypted";boundary="Encrypted Boundary"`, false},
		{"application/soap+xml;charset=UTF-8", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsEncrypted(tt.ct); got != tt.want {
			t.Errorf("IsEncrypted(%q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}

func BenchmarkIsEncrypted(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !IsEncrypted(ContentType) {
			b.Fatal("ContentType is not encrypted")
		}
	}
}

func FuzzUnwrapEncrypted(f *testing.F) {
	f.Add(Append(nil, SOAPType, 3, sig16, []byte("abc")))
	f.Add([]byte("-- Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=a;Length=0\r\n-- Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n\x00\x00\x00\x00-- Encrypted Boundary--"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Parse(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever parsed must survive a rebuild and parse to the same parts.
		again, err := Parse(Append(nil, p.OriginalType, p.Length, p.Signature, p.Sealed))
		if err != nil {
			t.Fatalf("rebuilt body does not parse: %v", err)
		}
		if !bytes.Equal(again.Signature, p.Signature) || !bytes.Equal(again.Sealed, p.Sealed) || again.Length != p.Length {
			t.Fatalf("rebuild changed the parts: %+v vs %+v", again, p)
		}
		_, _, _ = Unwrap(body, identity)
	})
}

func BenchmarkWrapUnwrap(b *testing.B) {
	plain := bytes.Repeat([]byte("<w:Item>BitsClientJob</w:Item>"), 2000) // ~60 KB
	seal := func(p []byte) ([]byte, []byte, error) { return p, sig16, nil }
	b.ReportAllocs()
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		body, err := Wrap(plain, SOAPType, seal)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := Unwrap(body, identity); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendSealedMatchesAppend: sealing in place produces the frame that
// sealing into new buffers and Append produce, after whatever dst held,
// and UnwrapInPlace reads it back as a part of the body.
func TestAppendSealedMatchesAppend(t *testing.T) {
	xor := func(msg []byte) {
		for i := range msg {
			msg[i] ^= 0x5a
		}
	}
	for _, plain := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("<s:Envelope/>"), 500)} {
		prefix := []byte("kept")
		got := AppendSealed(append([]byte(nil), prefix...), SOAPType, plain, len(sig16), func(msg, sig []byte) {
			if !bytes.Equal(msg, plain) || len(sig) != len(sig16) {
				t.Fatalf("seal got %q and a %d-byte slot", msg, len(sig))
			}
			xor(msg)
			copy(sig, sig16)
		})
		sealed := append([]byte(nil), plain...)
		xor(sealed)
		want := Append(append([]byte(nil), prefix...), SOAPType, len(plain), sig16, sealed)
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendSealed (-want +got):\n%s", cmp.Diff(string(want), string(got)))
		}
		body := got[len(prefix):]
		back, ctype, err := UnwrapInPlace(body, func(s, sig []byte) error {
			if !bytes.Equal(sig, sig16) {
				t.Fatalf("signature %q", sig)
			}
			xor(s)
			return nil
		})
		if err != nil || !bytes.Equal(back, plain) || ctype != SOAPType {
			t.Fatalf("UnwrapInPlace = %q, %q, %v", back, ctype, err)
		}
		if len(back) > 0 && &back[0] != &body[bytes.Index(body, sig16)+len(sig16)] {
			t.Error("UnwrapInPlace copied the plaintext instead of returning it in place")
		}
	}
	t.Run("errors", func(t *testing.T) {
		body := Append(nil, SOAPType, 5, sig16, []byte("abc"))
		if _, _, err := UnwrapInPlace(body, func([]byte, []byte) error { return nil }); !errors.Is(err, ErrLength) {
			t.Errorf("length mismatch: err = %v", err)
		}
		boom := errors.New("boom")
		if _, _, err := UnwrapInPlace(body, func([]byte, []byte) error { return boom }); !errors.Is(err, boom) {
			t.Errorf("unseal error: err = %v", err)
		}
		if _, _, err := UnwrapInPlace([]byte("junk"), func([]byte, []byte) error { return nil }); !errors.Is(err, ErrMalformed) {
			t.Errorf("junk: err = %v", err)
		}
	})
}

// TestUnwrapInPlaceAllocates nothing for an envelope: it runs on every
// sealed reply.
func TestUnwrapInPlaceAllocates(t *testing.T) {
	body := Append(nil, SOAPType, 3, sig16, []byte("abc"))
	n := testing.AllocsPerRun(100, func() {
		plain, ctype, err := UnwrapInPlace(body, func([]byte, []byte) error { return nil })
		if err != nil || string(plain) != "abc" || ctype != SOAPType {
			t.Fatalf("UnwrapInPlace = %q, %q, %v", plain, ctype, err)
		}
	})
	if n != 0 {
		t.Errorf("UnwrapInPlace allocates %v times per reply, want 0", n)
	}
}
