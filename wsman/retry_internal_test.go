package wsman

import (
	"testing"
	"time"
)

func TestRetryPause(t *testing.T) {
	p := RetryPolicy{Attempts: 5, Base: 100 * time.Millisecond, Max: time.Second}.withDefaults()
	tests := []struct {
		n          int
		retryAfter time.Duration
		lo, hi     time.Duration
		ok         bool
	}{
		{1, 0, 50 * time.Millisecond, 100 * time.Millisecond, true},
		{2, 0, 100 * time.Millisecond, 200 * time.Millisecond, true},
		{3, 0, 200 * time.Millisecond, 400 * time.Millisecond, true},
		{5, 0, 500 * time.Millisecond, time.Second, true},
		{40, 0, 500 * time.Millisecond, time.Second, true},
		{1, 700 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond, true},
		{1, 2 * time.Second, 0, 0, false},
	}
	for _, tt := range tests {
		for range 50 {
			d, ok := p.pause(tt.n, tt.retryAfter)
			if ok != tt.ok || d < tt.lo || d > tt.hi {
				t.Fatalf("pause(%d, %v) = %v, %v; want %v..%v, %v", tt.n, tt.retryAfter, d, ok, tt.lo, tt.hi, tt.ok)
			}
		}
	}
}

func TestRetryDefaults(t *testing.T) {
	if got := (RetryPolicy{}).withDefaults(); got != DefaultRetry {
		t.Errorf("zero policy = %+v, want %+v", got, DefaultRetry)
	}
	if got := NoRetry.withDefaults(); got.Attempts != 1 {
		t.Errorf("NoRetry = %+v", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{" 7 ", 7 * time.Second},
		{"Sat, 21 Nov 2026 12:00:30 GMT", 30 * time.Second},
		{"Sat, 21 Nov 2026 11:00:00 GMT", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
