package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMeter measures, over a stretch of a benchmark, this process's CPU time
// and the whole machine's (from /proc/stat), so a figure can say how much of
// the machine went to the database and how much to the job process. With
// BENCH_CPUPROFILE=file it also writes this process's CPU profile.
type cpuMeter struct {
	start    time.Time
	self     time.Duration
	machine  time.Duration
	profile  *os.File
	hasTotal bool
}

func startCPUMeter() *cpuMeter {
	m := &cpuMeter{start: time.Now(), self: selfCPU()}
	m.machine, m.hasTotal = machineCPU()
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			m.profile = f
		}
	}
	return m
}

func (m *cpuMeter) stop() string {
	if m.profile != nil {
		pprof.StopCPUProfile()
		m.profile.Close()
	}
	wall := time.Since(m.start)
	self := selfCPU() - m.self
	out := fmt.Sprintf("this process %.1f s of %.1f s wall", self.Seconds(), wall.Seconds())
	if total, ok := machineCPU(); ok && m.hasTotal {
		busy := total - m.machine
		out += fmt.Sprintf("; whole machine busy %.1f core-s (%.0f%% of its cores), so %.1f core-s elsewhere (Postgres)",
			busy.Seconds(), 100*busy.Seconds()/(wall.Seconds()*float64(numCPU())), (busy - self).Seconds())
	}
	return out
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the machine's busy CPU time so far (all cores, not idle or
// iowait), from /proc/stat.
func machineCPU() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / 100, true // USER_HZ is 100 on Linux
}

func numCPU() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}
