package main

import (
	"strings"
	"testing"
)

// tapir client --allow-exec takes absolute paths only: a relative one
// would depend on where the agent was started. It is refused before the
// agent listens.
func TestClientAllowExecMustBeAbsolute(t *testing.T) {
	out, errOut, code := run(t, "client", "--listen", "127.0.0.1:0", "--allow-exec", "/etc/tapir/exec", "--allow-exec", "scripts/freeze")
	if code == 0 || !strings.Contains(out+errOut, "--allow-exec scripts/freeze: give an absolute path") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}
