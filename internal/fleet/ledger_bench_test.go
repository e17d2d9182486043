package fleet

import (
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkLedgerPut measures one durable step record (open, fsync'd
// commit, close) with GOMAXPROCS writers ("procs") and 32 times as many
// ("procsx32"), whose Puts share commits.
func BenchmarkLedgerPut(b *testing.B) {
	for _, par := range []int{1, 32} {
		b.Run(map[int]string{1: "procs", 32: "procsx32"}[par], func(b *testing.B) {
			l, err := OpenLedger(filepath.Join(b.TempDir(), "ledger.db"))
			if err != nil {
				b.Fatal(err)
			}
			run, err := l.BeginRun("bench", "fp", "", false)
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(n.Add(1))
					e := &Entry{RunID: run.ID, Host: "h", Index: i % 1000, Step: StepResumed, JobID: "{J}"}
					if err := l.Put(e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
