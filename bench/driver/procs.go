package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process: Caddy, the upstream or redis-server. Each runs in a process group of
// its own (so a Ctrl-C in the terminal reaches only the driver, which then stops them in
// order) and dies with the driver even if the driver is killed (Pdeathsig).
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// startProc starts bin with args; stdout and stderr go to logPath. If firstLine is not nil,
// the first line of stdout is sent to it (and also logged).
func startProc(name, logPath string, env []string, firstLine chan<- string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = f
	var stdout io.ReadCloser
	if firstLine != nil {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			f.Close()
			return nil, err
		}
	} else {
		cmd.Stdout = f
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	var copied sync.WaitGroup
	if stdout != nil {
		copied.Add(1)
		go func() {
			defer copied.Done()
			r := bufio.NewReader(stdout)
			line, _ := r.ReadString('\n')
			_, _ = f.WriteString(line)
			firstLine <- strings.TrimSpace(line)
			_, _ = io.Copy(f, r)
		}()
	}
	go func() {
		copied.Wait() // Wait closes the pipe: read it to the end first
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitErr describes an unexpected exit, with the end of the process's log.
func (p *proc) exitErr() error {
	return fmt.Errorf("%s exited unexpectedly (%v); end of its log %s:\n%s", p.name, p.waitErr, p.logPath, tailFile(p.logPath, 30))
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILL.
func (p *proc) stop(grace time.Duration) {
	if !p.exited() {
		_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
			<-p.done
		}
	}
	_ = p.logFile.Close()
}

// cpuTime is the CPU time (user + system, all threads) the process has used so far.
func (p *proc) cpuTime() (time.Duration, error) { return pidCPUTime(p.pid()) }

var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}()

func ticks(n float64) time.Duration { return time.Duration(n / clockTicks * float64(time.Second)) }

// pidCPUTime reads utime+stime from /proc/<pid>/stat.
func pidCPUTime(pid int) (time.Duration, error) {
	st, err := readStat(pid)
	return st.self, err
}

// procStat is what the driver reads from /proc/<pid>/stat.
type procStat struct {
	pgrp     int
	self     time.Duration // utime + stime
	children time.Duration // cutime + cstime: children that exited and were waited for
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); pgrp is field 5, utime, stime, cutime and cstime are
	// fields 14 to 17.
	if len(fields) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var v [4]float64
	var errs []error
	for k := range v {
		var err error
		v[k], err = strconv.ParseFloat(fields[11+k], 64)
		errs = append(errs, err)
	}
	pgrp, err := strconv.Atoi(fields[2])
	if err := errors.Join(append(errs, err)...); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procStat{pgrp: pgrp, self: ticks(v[0] + v[1]), children: ticks(v[2] + v[3])}, nil
}

// groupCPUTime is the CPU time so far of the process group led by pid (Apache: its parent
// and the worker processes it forked), with the workers that already exited (the leader's
// cutime and cstime).
func groupCPUTime(pid int) (time.Duration, error) {
	leader, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	total := leader.self + leader.children
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == pid {
			continue
		}
		st, err := readStat(n)
		if err != nil || st.pgrp != pid {
			continue // gone meanwhile, or another group
		}
		total += st.self
	}
	return total, nil
}

// machineCPU is the machine-wide CPU time from the first line of /proc/stat: proc is the
// time in processes (user, nice, system), irq the time in interrupts and softirqs (loopback
// networking does much of its work there, attributed to no process), steal the time the
// hypervisor gave to other guests.
type machineCPU struct{ proc, irq, steal time.Duration }

func (m machineCPU) busy() time.Duration { return m.proc + m.irq + m.steal }

// inProcesses is the part of busy that the kernel also charges to processes. Without
// CONFIG_IRQ_TIME_ACCOUNTING (tick-based accounting), a tick that lands in a softirq is
// charged to the process it interrupted too, so the interrupt time is inside the processes'
// times; with it, interrupt time is charged to no process.
func (m machineCPU) inProcesses() time.Duration {
	if irqTimeSeparate {
		return m.proc
	}
	return m.proc + m.irq
}

// irqTimeSeparate reports whether the kernel keeps interrupt time out of the processes' times
// (CONFIG_IRQ_TIME_ACCOUNTING=y). When the kernel's config cannot be read, it assumes so: then
// the CPU of other processes is, if anything, underestimated, and no run is repeated for
// nothing.
var irqTimeSeparate, irqTimeKnown = func() (bool, bool) {
	var cfg []byte
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			cfg, _ = io.ReadAll(io.LimitReader(zr, 8<<20))
		}
	}
	if cfg == nil {
		rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
		cfg, _ = os.ReadFile("/boot/config-" + strings.TrimSpace(string(rel)))
	}
	if cfg == nil {
		return true, false
	}
	return bytes.Contains(cfg, []byte("\nCONFIG_IRQ_TIME_ACCOUNTING=y")), true
}()

func (m machineCPU) sub(o machineCPU) machineCPU {
	return machineCPU{proc: m.proc - o.proc, irq: m.irq - o.irq, steal: m.steal - o.steal}
}

func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return machineCPU{}, errors.New("/proc/stat: unexpected format")
	}
	var v [8]float64
	for i := range v {
		if v[i], err = strconv.ParseFloat(fields[i+1], 64); err != nil {
			return machineCPU{}, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	// user nice system idle iowait irq softirq steal (guest time is included in user).
	return machineCPU{proc: ticks(v[0] + v[1] + v[2]), irq: ticks(v[5] + v[6]), steal: ticks(v[7])}, nil
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process could take it before
// it is bound; the callers fail with a clear error then.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitPorts waits until every address accepts TCP connections, the process exits, or timeout.
func waitPorts(ctx context.Context, p *proc, timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if p.exited() {
				return p.exitErr()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s does not accept connections on %s after %s; end of its log %s:\n%s", p.name, a, timeout, p.logPath, tailFile(p.logPath, 30))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// redisDo sends one command to the Redis server at addr and returns the reply: a simple or bulk
// string, or an integer as its decimal text. Enough RESP for PING and INFO.
func redisDo(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, req.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("redis: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New("redis: " + line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("redis: bad bulk length %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line)
}

// redisCommands is Redis's total_commands_processed (INFO stats); the INFO itself counts one.
func redisCommands(addr string) (int64, error) {
	info, err := redisDo(addr, "INFO", "stats")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("redis INFO stats has no total_commands_processed")
}
