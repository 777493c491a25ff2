package order_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOrderIsTheDomainOnly keeps the order domain free of I/O: neither it
// nor anything it depends on reaches NATS, HTTP or one of our adapters, so
// the workflow's rules are read and tested without them. (The uuid module
// imports net for node ids; no networking of ours.)
func TestOrderIsTheDomainOnly(t *testing.T) {
	for pkg, forbidden := range map[string][]string{
		"./":           {"net/http", "github.com/nats-io/", "github.com/cloudevents/sdk-go/protocol", "/internal/inbank", "/internal/streams", "/internal/orderstore", "/internal/handlers", "/internal/natsconn"},
		"../inbankapi": {"net/http", "github.com/nats-io/", "/internal/inbank", "/internal/events"},
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f) || strings.HasSuffix(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// TestQuoteAndCtlNeedNoWorkflow: the quote service and smartrentctl use the
// order's rules and type, not the workflow that runs them.
func TestQuoteAndCtlNeedNoWorkflow(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../quote", "../ctl").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, "/internal/handlers") {
			t.Errorf("%s imports internal/handlers", strings.Fields(line)[0])
		}
	}
}
