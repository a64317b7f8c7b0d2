package gen

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tapir-backup/tapir/wire"
)

// StartAgent makes a CA in tlsDir with a server certificate "backup" and a
// client certificate "localhost", starts the `tapir client` agent bin on a
// free loopback port with state in stateDir, and waits until it listens.
// It returns the agent's address and a function that stops it.
func StartAgent(bin, tlsDir, stateDir string) (string, func(), error) {
	ca, err := wire.InitCA(tlsDir, "bench", time.Now())
	if err != nil {
		return "", nil, err
	}
	for _, c := range []struct{ name, role string }{{"backup", wire.RoleServer}, {"localhost", wire.RoleClient}} {
		if _, _, err := ca.Issue(c.name, []string{c.role}, tlsDir, time.Now()); err != nil {
			return "", nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	agent := exec.Command(bin, "client", "--listen", addr, "--ca", filepath.Join(tlsDir, "ca.crt"),
		"--cert", filepath.Join(tlsDir, "localhost.crt"), "--key", filepath.Join(tlsDir, "localhost.key"),
		"--state-dir", stateDir, "--nice", "0", "--ionice", "0", "--log-level", "warn")
	agent.Stderr = os.Stderr
	if err := agent.Start(); err != nil {
		return "", nil, fmt.Errorf("start the agent: %w", err)
	}
	stop := func() { agent.Process.Kill(); agent.Wait() }
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr, stop, nil
		}
		if i > 200 {
			stop()
			return "", nil, fmt.Errorf("the agent %s does not listen on %s", bin, addr)
		}
		time.Sleep(50 * time.Millisecond) // a benchmark's start-up, not a test
	}
}
