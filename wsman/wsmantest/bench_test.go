package wsmantest_test

import (
	"context"
	"testing"

	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// benchGet measures one Get round trip through the real client and
// transport over loopback with keep-alive.
func benchGet(b *testing.B, auth string) {
	s, _ := newServer(b, wsmantest.Config{Auth: wsmantest.AuthBasic | wsmantest.AuthNTLM}, 3)
	c := newClient(b, s, auth, testPass, nil)
	ctx := context.Background()
	opts := sel("Name", "w001")
	if _, err := c.Get(ctx, widgetURI, opts); err != nil { // handshake outside the timing
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Get(ctx, widgetURI, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if auth != "basic" && s.NTLMHandshakes() != 1 {
		b.Errorf("%d NTLM handshakes, want 1", s.NTLMHandshakes())
	}
}

func BenchmarkGetRoundTripBasic(b *testing.B)         { benchGet(b, "basic") }
func BenchmarkGetRoundTripNTLM(b *testing.B)          { benchGet(b, "ntlm") }
func BenchmarkGetRoundTripNTLMEncrypted(b *testing.B) { benchGet(b, "ntlm-enc") }
