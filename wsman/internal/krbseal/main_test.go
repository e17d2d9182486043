package krbseal

import (
	"testing"

	"github.com/bitsremote/bitsremote/internal/leakcheck"
)

// TestMain fails the package when a goroutine of ours (the MIT peer's
// waiter) outlives the tests.
func TestMain(m *testing.M) { leakcheck.Main(m, "github.com/bitsremote/bitsremote/") }
