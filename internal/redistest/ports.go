package redistest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// clusterBusOffset is the distance from a cluster node's port to its cluster bus port.
const clusterBusOffset = 10000

// lowestPort is the smallest port pickPort hands out.
const lowestPort = 11000

// ports remembers every port this process has handed out, so that two servers of one test
// binary never get the same one, even after one of them stopped (it may be restarted).
var ports struct {
	sync.Mutex
	used map[int]bool
}

// pickPort returns a port that is free on 127.0.0.1 now; with bus, port+10000 is free too.
//
// It prefers ports below the kernel's ephemeral range (ip_local_port_range, usually
// 32768-60999): the kernel gives those to the outgoing connections of every process, so a
// port taken from there (as "listen on :0, close" does) can be grabbed by some client's connect
// before redis-server binds it, or while a stopped server waits for its Restart. Below the
// range only programs that bind explicitly compete, and a lost race is caught by startAll,
// which tries again with new ports. Without a usable range it falls back to ":0".
func pickPort(bus bool) (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	hi := ephemeralLow()
	if bus {
		hi -= clusterBusOffset
	}
	for range 200 {
		var p int
		if hi-lowestPort >= 1000 {
			p = lowestPort + rand.IntN(hi-lowestPort)
		} else {
			var err error
			if p, err = kernelPort(); err != nil {
				return 0, err
			}
		}
		if ports.used[p] || !portFree(p) {
			continue
		}
		if bus {
			if p+clusterBusOffset > 65535 || ports.used[p+clusterBusOffset] || !portFree(p+clusterBusOffset) {
				continue
			}
			ports.used[p+clusterBusOffset] = true
		}
		ports.used[p] = true
		return p, nil
	}
	return 0, errors.New("redistest: no free port on 127.0.0.1 after 200 tries")
}

// ephemeralLow is the first port of the kernel's ephemeral range; 32768 when unknown.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 0 {
		return 32768
	}
	return lo
}

// kernelPort asks the kernel for a free port.
func kernelPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: listening on 127.0.0.1:0: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports whether 127.0.0.1:p can be bound now.
func portFree(p int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
