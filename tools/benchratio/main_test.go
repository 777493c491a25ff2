package main

import (
	"strings"
	"testing"
)

func TestRatiosAgainstBaseline(t *testing.T) {
	in := `goos: linux
BenchmarkIngress/raw_publish-2   100  1 ns/op  1000 msgs/s
BenchmarkIngress/ingress-2       100  1 ns/op  700 msgs/s
BenchmarkIngress/raw_publish-2   100  1 ns/op  2000 msgs/s
BenchmarkIngress/ingress-2       100  1 ns/op  1700 msgs/s
BenchmarkIngress/raw_publish-2   100  1 ns/op  3000 msgs/s
BenchmarkIngress/ingress-2       100  1 ns/op  2400 msgs/s
PASS`
	var out strings.Builder
	err := run(strings.NewReader(in), &out, "msgs/s", pairs{"BenchmarkIngress": "raw_publish"}, pairs{"BenchmarkIngress/ingress": "0.9"})
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"BenchmarkIngress/raw_publish", "2000", "1.00", "BenchmarkIngress/ingress", "1700", "0.85", "≥ 0.9 MISS"} {
		if !strings.Contains(got, want) {
			t.Fatalf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestNoFigures(t *testing.T) {
	if err := run(strings.NewReader("PASS\n"), &strings.Builder{}, "msgs/s", pairs{}, pairs{}); err == nil {
		t.Fatal("no error for input without figures")
	}
}
