package shell_test

import (
	"context"
	"io"
	"testing"

	"github.com/bitsremote/bitsremote/wsman/shell"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// BenchmarkRun measures one whole command (Create, Command, Receive,
// Signal, Delete) over sealed NTLM on loopback.
func BenchmarkRun(b *testing.B) {
	h := newBenchHost(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, code, err := shell.Run(context.Background(), h.c, "ver"); err != nil || code != 0 {
			b.Fatalf("code %d, err %v", code, err)
		}
	}
}

func newBenchHost(b *testing.B) *host {
	return newHostTB(b, func(ctx context.Context, cmd *wsmantest.Command, stdout, stderr io.Writer) int {
		io.WriteString(stdout, "Microsoft Windows [Version 10.0.20348.2227]\r\n")
		return 0
	})
}
