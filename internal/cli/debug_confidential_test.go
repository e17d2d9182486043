package cli

import (
	"io"
	"log/slog"
	"testing"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// TestDebugTransportKeepsConfidentiality: --debug wraps the transport;
// the wrapper must still say whether a body sent to an endpoint is
// sealed, or bitsprov's own refusal to send a job password in clear
// (transport.IsConfidential) learns nothing and lets it through.
func TestDebugTransportKeepsConfidentiality(t *testing.T) {
	plain, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: "u", Password: "p", Encryption: transport.EncryptionNever})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: "u", Password: "p", Encryption: transport.EncryptionAlways})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name string
		next transport.Transport
		want bool
	}{
		{"plain ntlm over http", plain, false},
		{"sealed ntlm over http", sealed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &debugTransport{next: tt.next, log: log, host: "h"}
			got, known := transport.IsConfidential(d, "http://h:5985/wsman")
			if got != tt.want || !known {
				t.Errorf("IsConfidential(debug wrapper) = %v, known %v; want %v, known", got, known, tt.want)
			}
		})
	}
}
