package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const canaryPassword = "Canary-Pw-7f3a9c!e"

// TestConfigNeverPrintsPassword: however a Config is printed or logged,
// the password does not appear.
func TestConfigNeverPrintsPassword(t *testing.T) {
	cfg := Config{Auth: AuthNTLM, User: `CORP\admin`, Password: canaryPassword, CAFile: "/etc/ca.pem"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg, "ptr", &cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", cfg)
	outs := map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		"%q": fmt.Sprintf("%q", cfg), "%x": fmt.Sprintf("%x", cfg),
		"&%v": fmt.Sprintf("%v", &cfg), "&%+v": fmt.Sprintf("%+v", &cfg),
		"error": fmt.Errorf("connect with %v: %w", cfg, errors.New("x")).Error(),
		"slog":  logged.String(),
	}
	for verb, out := range outs {
		if strings.Contains(out, canaryPassword) || strings.Contains(out, fmt.Sprintf("%x", canaryPassword)) {
			t.Errorf("%s shows the password: %s", verb, out)
		}
	}
	if want := `{Auth:ntlm User:CORP\admin Password:REDACTED`; !strings.HasPrefix(outs["%v"], want) {
		t.Errorf("%%v = %s, want it to start %s", outs["%v"], want)
	}
	if !strings.HasPrefix(outs["%#v"], "transport.Config{Auth:ntlm") || !strings.Contains(outs["slog"], "Password:REDACTED") {
		t.Errorf("%%#v = %s\nslog = %s", outs["%#v"], outs["slog"])
	}
	if cfg.Password != canaryPassword {
		t.Fatal("printing changed the Config")
	}
}

// TestTransportErrorsNeverShowPassword: errors from every transport, for
// a refused connection and a bad endpoint, never carry the password.
func TestTransportErrorsNeverShowPassword(t *testing.T) {
	for _, auth := range []Auth{AuthBasic, AuthNTLM} {
		for _, enc := range []Encryption{EncryptionNever, EncryptionAuto} {
			tr, err := New(Config{Auth: auth, User: "admin", Password: canaryPassword, Encryption: enc, DialTimeout: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{"http://127.0.0.1:1/wsman", "https://127.0.0.1:1/wsman", "http://admin:" + canaryPassword + "@127.0.0.1:1/wsman", "::bad"} {
				_, err := tr.RoundTrip(context.Background(), &Request{URL: u, Body: []byte("<x/>")})
				if err == nil {
					t.Fatalf("%v/%v %s: no error", auth, enc, u)
				}
				if s := fmt.Sprintf("%v %+v", err, err); strings.Contains(s, canaryPassword) {
					t.Errorf("%v/%v %s: error shows the password: %s", auth, enc, u, s)
				}
			}
		}
	}
}

// TestIsConfidential: bodies go readable only over plain http without
// sealing.
func TestIsConfidential(t *testing.T) {
	mk := func(cfg Config) Transport {
		cfg.User, cfg.Password = "u", "p"
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	tests := []struct {
		name      string
		tr        Transport
		url       string
		ok, known bool
	}{
		{"basic http", mk(Config{Auth: AuthBasic}), "http://h:5985/wsman", false, true},
		{"basic https", mk(Config{Auth: AuthBasic}), "https://h:5986/wsman", true, true},
		{"ntlm never http", mk(Config{Auth: AuthNTLM, Encryption: EncryptionNever}), "http://h:5985/wsman", false, true},
		{"ntlm auto http", mk(Config{Auth: AuthNTLM}), "http://h:5985/wsman", true, true},
		{"ntlm always http", mk(Config{Auth: AuthNTLM, Encryption: EncryptionAlways}), "http://h:5985/wsman", true, true},
		{"foreign wrapper http", Func(func(context.Context, *Request) (*Response, error) { return nil, nil }), "http://h/wsman", false, false},
		{"foreign wrapper https", Func(func(context.Context, *Request) (*Response, error) { return nil, nil }), "https://h/wsman", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, known := IsConfidential(tt.tr, tt.url)
			if ok != tt.ok || known != tt.known {
				t.Errorf("IsConfidential = %v, %v; want %v, %v", ok, known, tt.ok, tt.known)
			}
		})
	}
}
