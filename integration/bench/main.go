// Command bench measures bitsremote's fleet engine against simulated
// Windows hosts, and pywinrm's Get loop against the same host.
//
//	go run ./integration/bench                       # the full run (1,000 hosts)
//	go run ./integration/bench -hosts 100 -peer=false # a quick one
//
// It starts the hosts in a child process (itself with -role hosts) on
// 127.0.0.1, 127.0.0.2, ... so that the client's CPU time is its own, and
// measures with NTLM and MS-WSMV message encryption:
//
//  1. one poll cycle over every host's jobs (-hosts × -jobs suspended
//     jobs): each host's queue read with one enumeration, as the fleet
//     wait does, and for comparison with one Get per job;
//  2. create → wait → complete of -transfer-hosts × -jobs download jobs
//     through the fleet transfer engine and its ledger;
//  3. the same Get loop through pywinrm (integration/peer/getloop.py) and
//     through our client, Basic and NTLM-encrypted, in alternating
//     slices, and the ratio of requests per client CPU-second.
//
// Client CPU is getrusage(RUSAGE_SELF) user+system; peak RSS is Maxrss.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
)

// hostsProfileEnv carries -hosts-cpuprofile to the hosts process.
const hostsProfileEnv = "BITSREMOTE_BENCH_HOSTS_CPUPROFILE"

func main() {
	var o benchOptions
	role := flag.String("role", "client", "client (the benchmark) or hosts (the simulated hosts; started by client)")
	flag.IntVar(&o.Hosts, "hosts", 1000, "simulated hosts for the poll cycle")
	flag.IntVar(&o.Jobs, "jobs", 10, "jobs per host")
	flag.IntVar(&o.Cycles, "cycles", 5, "measured poll cycles (the best and the median are printed)")
	flag.BoolVar(&o.GetCycles, "get-cycles", true, "also measure poll cycles that read each job with its own Get")
	flag.IntVar(&o.Concurrency, "concurrency", 32, "hosts worked on at once (the fleet default)")
	flag.IntVar(&o.TransferHosts, "transfer-hosts", 100, "hosts for the create → wait → complete run (0: skip)")
	flag.IntVar(&o.PeerRequests, "peer-requests", 2000, "Gets in each Get-loop comparison")
	flag.BoolVar(&o.Peer, "peer", true, "compare with pywinrm (needs /usr/bin/python3 with python3-winrm)")
	flag.StringVar(&o.PeerScript, "peer-script", "integration/peer/getloop.py", "pywinrm Get-loop script")
	flag.StringVar(&o.Python, "python", "/usr/bin/python3", "Python with pywinrm")
	n := flag.Int("n", 0, "hosts to serve (-role hosts)")
	files := flag.String("files", "", "directory to serve for downloads (-role hosts)")
	scale := flag.Float64("time-scale", 1, "BITS timer scale (-role hosts)")
	cpuProfile := flag.String("cpuprofile", "", "write the client's CPU profile to `FILE`")
	hostsProfile := flag.String("hosts-cpuprofile", "", "write the hosts process's CPU profile to `FILE`")
	flag.Parse()
	if *hostsProfile != "" {
		os.Setenv(hostsProfileEnv, *hostsProfile)
	}
	if *role == "hosts" {
		// The hosts' own profile, to see what the simulator costs the
		// shared cores; set by -hosts-cpuprofile in the client.
		*cpuProfile = os.Getenv(hostsProfileEnv)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	var err error
	switch *role {
	case "hosts":
		// The hosts stand in for a thousand separate machines sharing the
		// client's two cores: the less CPU their garbage collector takes
		// (memory is not what this process measures), the less they
		// disturb the client being measured. GOGC in the environment
		// still wins.
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(400)
		}
		err = serveHosts(*n, benchUser, os.Getenv("BITSREMOTE_PASSWORD"), *files, *scale)
	case "client":
		err = runBench(o)
	default:
		err = fmt.Errorf("-role %q: want client or hosts", *role)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
