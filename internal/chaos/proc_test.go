package chaos_test

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// serverProc is a server the chaos tests run as a process of their own, so
// that they can SIGKILL it (a crash, which an embedded server cannot have)
// and start it again on the same port and data.
type serverProc struct {
	name string           // for messages: redis-server, nats-server
	log  string           // where its output goes
	cmd  func() *exec.Cmd // the command line, built afresh for each start
	// ready reports whether the started server serves.
	ready func() bool

	proc *exec.Cmd
	done chan struct{}
}

// start runs the server and waits until it is ready.
func (p *serverProc) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.proc = p.cmd()
	p.proc.Stdout, p.proc.Stderr = logf, logf
	if err := p.proc.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.done = done
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(p.proc)
	deadline := time.Now().Add(30 * time.Second)
	for !p.ready() {
		select {
		case <-done:
			t.Fatalf("%s exited at start; its log:\n%s", p.name, tail(p.log, 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready; its log:\n%s", p.name, tail(p.log, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs the server and waits for it to exit.
func (p *serverProc) kill() {
	if p.proc == nil {
		return
	}
	_ = p.proc.Process.Kill()
	<-p.done
	p.proc = nil
}
