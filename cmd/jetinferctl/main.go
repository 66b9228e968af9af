// Command jetinferctl is jetinfer's command-line tool for operators and users:
// tenants, tokens, backfills and dead letters.
//
// Usage: jetinferctl <group> <command> [flags]. Every flag can also be set
// through its JETINFER_* environment variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/jetinfer/jetinfer/internal/config"
)

// command is one `jetinferctl <group> <name>`.
type command struct {
	group, name string
	summary     string
	// flags registers the command's flags and returns its action.
	flags func(fs *flag.FlagSet) func(ctx context.Context, env *env) error
}

// env is what a command writes to.
type env struct {
	stdout, stderr io.Writer
	args           []string // positional arguments after the flags
}

var commands []command

// register adds a command; each command's file calls it from init.
func register(c command) { commands = append(commands, c) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "jetinferctl:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 || args[0] != "help" {
			return flag.ErrHelp
		}
		return nil
	}
	for _, c := range commands {
		if c.group == args[0] && c.name == args[1] {
			fs := flag.NewFlagSet("jetinferctl "+c.group+" "+c.name, flag.ContinueOnError)
			fs.SetOutput(stderr)
			action := c.flags(fs)
			if err := config.Parse(fs, args[2:]); err != nil {
				return err
			}
			return action(ctx, &env{stdout: stdout, stderr: stderr, args: fs.Args()})
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", strings.Join(args[:2], " "))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: jetinferctl <group> <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	sorted := append([]command(nil), commands...)
	sort.Slice(sorted, func(i, j int) bool {
		return sorted[i].group+" "+sorted[i].name < sorted[j].group+" "+sorted[j].name
	})
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-22s %s\n", c.group+" "+c.name, c.summary)
	}
	fmt.Fprintln(w, "\nrun `jetinferctl <group> <command> -h` for a command's flags")
}
