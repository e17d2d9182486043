package wsman

import (
	"math/rand/v2"
	"testing"
)

// TestSwarClean: swarClean says clean exactly when no byte is a control,
// non-ASCII or one of the two given, for every byte in every position and
// for random words (which hold several bytes of each kind).
func TestSwarClean(t *testing.T) {
	want := func(w []byte, b1, b2 byte) bool {
		for _, c := range w {
			if c < 0x20 || c >= 0x80 || c == b1 || c == b2 {
				return false
			}
		}
		return true
	}
	pairs := [][2]byte{{'&', ']'}, {'&', '<'}, {0, 0}}
	for _, p := range pairs {
		for pos := range 8 {
			for c := range 256 {
				w := []byte("abcdefgh")
				w[pos] = byte(c)
				if got := swarClean(string(w), p[0], p[1]); got != want(w, p[0], p[1]) {
					t.Fatalf("swarClean(%q, %q, %q) = %v", w, p[0], p[1], got)
				}
			}
		}
		r := rand.New(rand.NewPCG(1, 2))
		alphabet := []byte{0, 1, 0x1f, 0x20, '\t', '\n', '\r', '&', ']', '<', '>', 'a', 0x7f, 0x80, 0xff, 0xc3, '%', '\'', '[', '^'}
		for range 200000 {
			var w [8]byte
			for k := range w {
				if r.IntN(2) == 0 {
					w[k] = alphabet[r.IntN(len(alphabet))]
				} else {
					w[k] = byte(r.IntN(256))
				}
			}
			if got := swarClean(string(w[:]), p[0], p[1]); got != want(w[:], p[0], p[1]) {
				t.Fatalf("swarClean(%q, %q, %q) = %v", w, p[0], p[1], got)
			}
		}
	}
}
