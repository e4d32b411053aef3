package engines

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/inferbench/inferbench/engines/internal/pacedserver"
)

// firehoseEnv, when set to a chunk count, turns the test binary into a
// standalone firehose server (see startFirehoseProcess).
const firehoseEnv = "ENGINES_TEST_FIREHOSE_CHUNKS"

// pacedEnv, when set to the paced server's arguments (space-separated),
// turns the test binary into the paced server (see startPacedProcess).
const pacedEnv = "ENGINES_TEST_PACED_ARGS"

// TestMain fails the run if a test leaves goroutines behind: every request
// must end with its context, and every server and client is closed.
func TestMain(m *testing.M) {
	if n := os.Getenv(firehoseEnv); n != "" {
		os.Exit(serveFirehose(n))
	}
	if args, ok := os.LookupEnv(pacedEnv); ok {
		if err := pacedserver.Main(strings.Fields(args), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "paced server:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// serveFirehose serves the firehose on a loopback port, prints its URL, and
// exits when stdin closes.
func serveFirehose(n string) int {
	chunks, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("http://%s/v1/chat/completions\n", l.Addr())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	_ = http.Serve(l, firehose(chunks))
	return 0
}

// startFirehoseProcess runs the firehose in a child process, so that the
// benchmark's own CPU time is the client's alone. It returns the URL.
func startFirehoseProcess(tb testing.TB, chunks int) string {
	tb.Helper()
	return startChildServer(tb, "firehose process", fmt.Sprintf("%s=%d", firehoseEnv, chunks), "GOMAXPROCS=1")
}

// startChildServer runs this test binary as a server child process (env
// selects which, in TestMain), stops it when the test ends (its stdin
// closes), and returns the URL it prints on its first line.
func startChildServer(tb testing.TB, what string, env ...string) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	return strings.TrimSpace(line)
}
