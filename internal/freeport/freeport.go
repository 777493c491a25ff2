// Package freeport picks loopback TCP ports for processes that a test or
// benchmark starts and must know the address of before they listen.
//
// A port taken from a bind to port 0 and released is in the kernel's
// ephemeral range: between the pick and the child's own bind, any
// connection or bind to port 0 on the machine (another test package
// running in parallel) may be given it. Ports are therefore picked below
// that range, where the kernel hands out nothing by itself, and a process
// never picks the same port twice.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the bottom of the range picked from; the top is the start of
// the ephemeral range.
const lowest = 10000

var (
	mu     sync.Mutex
	picked = map[int]bool{}
)

// Pick returns a loopback port nobody listens on now, outside the
// ephemeral range when the machine leaves room for it.
func Pick() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	if top := ephemeralStart(); top-lowest >= 1000 {
		for range 100 {
			p := lowest + rand.IntN(top-lowest)
			if picked[p] {
				continue
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				continue // in use
			}
			l.Close()
			picked[p] = true
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	picked[p] = true
	return p, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range
// (Linux's ip_local_port_range; 32768 elsewhere).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
