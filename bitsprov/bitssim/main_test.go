package bitssim

import (
	"testing"

	"github.com/bitsremote/bitsremote/internal/leakcheck"
)

// TestMain fails the package when transfer, server or provider goroutines
// outlive the tests: a simulated host must stop everything it started
// when it is closed.
func TestMain(m *testing.M) { leakcheck.Main(m, "github.com/bitsremote/bitsremote/") }
