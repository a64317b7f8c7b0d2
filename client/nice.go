package client

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Renice lowers the agent's CPU and I/O priority so that a dump competes
// less with the host's own work. nice is 0..19 (0 leaves it); ioClass is
// the Linux I/O scheduling class: 1 realtime, 2 best-effort, 3 idle, 0
// leaves it. It applies to the whole process, every thread included.
func Renice(nice, ioClass int) error {
	if nice < 0 || nice > 19 {
		return fmt.Errorf("--nice %d: want 0..19", nice)
	}
	if ioClass < 0 || ioClass > 3 {
		return fmt.Errorf("--ionice %d: want 0 (leave), 1 realtime, 2 best-effort or 3 idle", ioClass)
	}
	// Linux keeps both priorities per thread, and new threads inherit them
	// from the thread that makes them: set them on every existing thread.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("renice: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if nice > 0 {
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && err != syscall.ESRCH {
				return fmt.Errorf("set CPU niceness %d: %w", nice, err)
			}
		}
		if ioClass > 0 {
			const ioprioWhoProcess, ioprioClassShift = 1, 13
			prio := ioClass << ioprioClassShift
			if ioClass != 3 {
				prio |= 4 // the middle of the class's 0..7 levels
			}
			if _, _, e := syscall.Syscall(syscall.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(prio)); e != 0 && e != syscall.ESRCH {
				return fmt.Errorf("set I/O class %d: %w", ioClass, e)
			}
		}
	}
	return nil
}
