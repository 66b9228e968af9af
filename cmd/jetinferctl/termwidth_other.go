//go:build !unix

package main

// fdWidth knows no terminal here: the width comes from $COLUMNS or 80.
func fdWidth(uintptr) int { return 0 }
