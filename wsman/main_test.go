package wsman

import (
	"testing"

	"github.com/bitsremote/bitsremote/internal/leakcheck"
)

// TestMain fails the package when a goroutine running our code (the
// module path is the marker, so test helpers count too) outlives the
// tests: a client's retry or reply reader, a simulated server or a
// round-trip host left running is caught here.
func TestMain(m *testing.M) { leakcheck.Main(m, "github.com/bitsremote/bitsremote/") }
