//go:build unix

package main

import "golang.org/x/sys/unix"

// fdWidth returns the columns of the terminal on fd, or 0 when fd is no
// terminal.
func fdWidth(fd uintptr) int {
	ws, err := unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}
