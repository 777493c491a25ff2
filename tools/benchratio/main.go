// Command benchratio reads `go test -bench` output and prints, for each
// benchmark family, the median of a rate metric per sub-benchmark and its
// ratio to the family's baseline measured in the same run. Absolute rates
// vary between runs and machines; ratios much less (shared/design/benchmarks.md).
//
//	go test -run '^$' -bench BenchmarkIngress -count 7 ./internal/ingress | go run ./tools/benchratio -baseline BenchmarkIngress=raw_publish -target BenchmarkIngress/ingress_handler=0.75
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

type pairs map[string]string

func (p pairs) String() string { return fmt.Sprint(map[string]string(p)) }
func (p pairs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want key=value, got %q", v)
	}
	p[k] = val
	return nil
}

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func main() {
	baselines, targets := pairs{}, pairs{}
	metric := flag.String("metric", "msgs/s", "the rate metric to compare")
	flag.Var(baselines, "baseline", "family=sub-benchmark that is the baseline (repeatable)")
	flag.Var(targets, "target", "family/sub=minimum ratio (repeatable)")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *metric, baselines, targets); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, metric string, baselines, targets pairs) error {
	samples := map[string][]float64{}
	var order []string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 1; i < len(f); i++ {
			if f[i] != metric {
				continue
			}
			v, err := strconv.ParseFloat(f[i-1], 64)
			if err != nil {
				continue
			}
			if _, seen := samples[m[1]]; !seen {
				order = append(order, m[1])
			}
			samples[m[1]] = append(samples[m[1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(order) == 0 {
		return fmt.Errorf("no %s figures in the input", metric)
	}
	fmt.Fprintf(out, "%-45s %6s %14s %8s %8s\n", "benchmark", "runs", "median "+metric, "ratio", "target")
	failed := false
	for _, name := range order {
		family, _, _ := strings.Cut(name, "/")
		med := median(samples[name])
		ratio, target := "", ""
		if base, ok := baselines[family]; ok {
			if b := samples[family+"/"+base]; len(b) > 0 {
				r := med / median(b)
				ratio = fmt.Sprintf("%.2f", r)
				if t, ok := targets[name]; ok {
					tv, _ := strconv.ParseFloat(t, 64)
					target = "≥ " + t
					if r < tv {
						target += " MISS"
						failed = true
					}
				}
			}
		}
		fmt.Fprintf(out, "%-45s %6d %14.0f %8s %8s\n", name, len(samples[name]), med, ratio, target)
	}
	if failed {
		fmt.Fprintln(out, "some ratios are below their targets")
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
