// Command servefixture is a stand-in custom handler for the packager's tests:
// `servefixture serve` listens on FUNCTIONS_CUSTOMHANDLER_PORT and answers
// GET / as the Functions host's readiness probe expects. It exercises the
// packager (cross-build, zip layout, run bit) independently of the real main.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: servefixture serve")
		os.Exit(2)
	}
	port := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Port 0 takes a free port: the test reads it from this line.
	fmt.Fprintf(os.Stderr, "servefixture listening on %s\n", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
