package bitsprov_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// listJobs is how many jobs the listing benchmark puts on one host.
const listJobs = 1000

// listHostEnv makes the test binary run TestE2EListHostProcess as the
// benchmark's simulated host instead of skipping it.
const listHostEnv = "BITSPROV_E2E_LIST_HOST"

// BenchmarkListJobs1000 lists 1,000 jobs on one simulated host, over NTLM
// with message encryption and over Basic.
//
// The goal is client CPU per listing, so the hosts of the child/ variants
// run in a child process (this test binary running
// TestE2EListHostProcess) and getrusage(RUSAGE_SELF) around the loop
// counts the client alone: envelopes, sealing, HTTP, XML parsing,
// decoding and GC. It is reported as client-cpu-ms/op (round-trips/op
// and reply-KiB/op say how much crossed the wire, in plaintext); ns/op is the wall
// time of a listing, which includes waiting for the host. The inproc/
// variants run the same hosts in this process and report
// process-cpu-ms/op, client and host together.
//
// "Jobs" is Client.Jobs as it is. "maxelements" is the same listing with
// MaxElements 32000 on the Enumerate and every Pull, as txwinrm and
// PowerShell send: without it a Pull asks for one item (the WS-Enumeration
// default), so Jobs makes one round trip per job.
func BenchmarkListJobs1000(b *testing.B) {
	// Each set of hosts starts only when a variant needs it: idle
	// in-process hosts would still count in the child variants'
	// getrusage(RUSAGE_SELF).
	hosts := map[string]func() listHosts{
		"child":  sync.OnceValue(func() listHosts { return startListHostProcess(b) }),
		"inproc": sync.OnceValue(func() listHosts { return startListHosts(b) }),
	}
	for _, where := range []string{"child", "inproc"} {
		metric := "client-cpu-ms/op"
		if where == "inproc" {
			metric = "process-cpu-ms/op"
		}
		for _, auth := range []transport.Auth{transport.AuthNTLM, transport.AuthBasic} {
			name := "basic"
			if auth == transport.AuthNTLM {
				name = "ntlm-sealed"
			}
			for _, how := range []string{"Jobs", "maxelements"} {
				b.Run(where+"/"+name+"/"+how, func(b *testing.B) {
					url := hosts[where]().basic
					if auth == transport.AuthNTLM {
						url = hosts[where]().ntlm
					}
					benchList(b, url, auth, how == "maxelements", metric)
				})
			}
		}
	}
}

func benchList(b *testing.B, url string, auth transport.Auth, maxElements bool, metric string) {
	tr, err := transport.New(transport.Config{Auth: auth, User: e2eUser, Password: e2ePassword})
	if err != nil {
		b.Fatal(err)
	}
	if c, ok := tr.(interface{ CloseIdleConnections() }); ok {
		defer c.CloseIdleConnections()
	}
	// Count what crosses the wire, so that a change in batching shows.
	var trips, replyBytes int
	counted := transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
		resp, err := tr.RoundTrip(ctx, req)
		trips++
		if resp != nil {
			replyBytes += len(resp.Body)
		}
		return resp, err
	})
	c := bitsprov.NewClient(wsman.NewClient(url, counted))
	ctx := context.Background()
	list := func() {
		var jobs []*bitsprov.Job
		var err error
		if maxElements {
			jobs, err = listMaxElements(ctx, c)
		} else {
			jobs, err = c.Jobs(ctx, bitsprov.JobFilter{})
		}
		if err != nil {
			b.Fatal(err)
		}
		if len(jobs) != listJobs || jobs[0].FilesTotal != 1 || jobs[listJobs-1].DisplayName != fmt.Sprintf("fleet update %04d", listJobs-1) {
			b.Fatalf("listing holds %d jobs, want %d", len(jobs), listJobs)
		}
	}
	list() // the NTLM handshake and warm connections are not what we measure
	b.ReportAllocs()
	n := 0
	trips, replyBytes = 0, 0
	before := cpuTime(b)
	for b.Loop() {
		list()
		n++
	}
	cpu := cpuTime(b) - before
	b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(n), metric)
	b.ReportMetric(float64(trips)/float64(n), "round-trips/op")
	b.ReportMetric(float64(replyBytes)/1024/float64(n), "reply-KiB/op")
}

// listMaxElements is Client.Jobs with MaxElements set.
func listMaxElements(ctx context.Context, c *bitsprov.Client) ([]*bitsprov.Job, error) {
	var jobs []*bitsprov.Job
	for item, err := range c.WSMan.Enumerate(ctx, bitsprov.ResourceURI, wsman.EnumerateOptions{Optimize: true, MaxElements: 32000}) {
		if err != nil {
			return nil, err
		}
		j, err := bitsprov.JobFromInstance(item.Instance)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// cpuTime is the user plus system CPU time this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// listHosts are the endpoints of a host requiring sealed NTLM and one
// taking Basic, each holding listJobs jobs.
type listHosts struct{ ntlm, basic string }

// startListHosts starts the two hosts in this process.
func startListHosts(tb testing.TB) listHosts {
	tb.Helper()
	var hs listHosts
	for _, cfg := range []wsmantest.Config{
		{Auth: wsmantest.AuthNTLM, RequireEncryption: true},
		{Auth: wsmantest.AuthBasic},
	} {
		cfg.Users = map[string]string{e2eUser: e2ePassword}
		cfg.Machine = e2eMachine
		h, err := bitssim.NewHost(bitssim.HostConfig{Server: cfg, Provider: bitssim.Config{TimeScale: e2eTimeScale}})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(h.Close)
		fillQueue(tb, h.Provider)
		if cfg.Auth == wsmantest.AuthNTLM {
			hs.ntlm = h.URL
		} else {
			hs.basic = h.URL
		}
	}
	return hs
}

// fillQueue creates listJobs suspended jobs by calling the provider
// directly, the way a fleet's update jobs look: one file each, Windows
// paths, a description.
func fillQueue(tb testing.TB, p *bitssim.Provider) {
	tb.Helper()
	r := &wsmantest.Request{ResourceURI: bitssim.ResourceURI, Action: bitssim.ResourceURI + "/CreateJob", Machine: e2eMachine}
	for i := range listJobs {
		in := &wsman.Instance{ClassName: "CreateJob_INPUT", ResourceURI: bitssim.ResourceURI}
		in.Set("DisplayName", fmt.Sprintf("fleet update %04d", i))
		in.Set("RemoteUrl", fmt.Sprintf("https://updates.example.com/packages/kb%07d-x64.cab", 5000000+i))
		in.Set("LocalFile", fmt.Sprintf(`C:\ProgramData\Updates\kb%07d-x64.cab`, 5000000+i))
		in.Set("Description", "Monthly rollup staged by bitsremote")
		in.Set("Suspend", "true")
		out, err := p.Invoke(context.Background(), r, "CreateJob", in)
		if err != nil {
			tb.Fatal(err)
		}
		if rv, _ := out.String("ReturnValue"); rv != "0" {
			tb.Fatalf("CreateJob %d: ReturnValue %s", i, rv)
		}
	}
}

// startListHostProcess runs the hosts in a child process and returns
// their endpoints; the child exits when the benchmark ends.
func startListHostProcess(b *testing.B) listHosts {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestE2EListHostProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), listHostEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() {
		stdin.Close() // the child's signal to stop
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if l := sc.Text(); !sent && strings.HasPrefix(l, "list-hosts ") {
				lines <- l
				sent = true
			}
		}
		if !sent {
			close(lines)
		}
		_ = cmd.Wait()
	}()
	var l string
	select {
	case l = <-lines:
	case <-time.After(60 * time.Second):
	}
	var hs listHosts
	if _, err := fmt.Sscanf(l, "list-hosts %s %s", &hs.ntlm, &hs.basic); err != nil {
		b.Fatalf("the host process did not start (first line %q): %v", l, err)
	}
	return hs
}

// TestE2EListHostProcess is BenchmarkListJobs1000's host process; it
// skips unless started by the benchmark.
func TestE2EListHostProcess(t *testing.T) {
	if os.Getenv(listHostEnv) != "1" {
		t.Skip("runs only as BenchmarkListJobs1000's host process")
	}
	hs := startListHosts(t)
	fmt.Printf("list-hosts %s %s\n", hs.ntlm, hs.basic)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the benchmark closes stdin
}
