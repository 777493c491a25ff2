package main

import (
	"context"
	"strings"
	"testing"

	"github.com/smartrent-bridge/bridge/internal/apptest"
)

func TestOrderServiceGetsItsRedirectURL(t *testing.T) {
	w := apptest.Start(t)
	var out strings.Builder
	if err := run(context.Background(), []string{"--nats-url", w.NATSURL, "--order", "EX-1", "--price", "799"}, &out); err != nil {
		t.Fatal(err)
	}
	if s := w.Fake.Sessions("EX-1"); len(s) != 1 || !strings.Contains(out.String(), "/session/"+s[0].UUID) {
		t.Fatalf("output %q, sessions %+v", out.String(), s)
	}
}

func TestOrderServiceReportsARejection(t *testing.T) {
	w := apptest.Start(t)
	err := run(context.Background(), []string{"--nats-url", w.NATSURL, "--order", "EX-2", "--period", "48"}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "PERIOD_NOT_OFFERED") {
		t.Fatalf("err = %v", err)
	}
}
