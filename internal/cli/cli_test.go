package cli

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestEnvironmentDefaultsAndFlagsWin(t *testing.T) {
	env := map[string]string{"A": "from-env", "D": "3s", "N": "7"}
	f := New("x", func(k string) string { return env[k] })
	a := f.String("a", "A", "def", "")
	b := f.String("b", "B", "def", "")
	d := f.Duration("d", "D", time.Second, "")
	n := f.Int("n", "N", 1, "")
	if err := f.Parse([]string{"--n", "9"}); err != nil {
		t.Fatal(err)
	}
	if *a != "from-env" || *b != "def" || *d != 3*time.Second || *n != 9 {
		t.Fatalf("a=%q b=%q d=%v n=%d", *a, *b, *d, *n)
	}
}

func TestBadEnvironmentValueIsNamed(t *testing.T) {
	f := New("x", func(k string) string { return map[string]string{"RETRY": "soon"}[k] })
	f.Duration("retry", "RETRY", time.Second, "")
	err := f.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "RETRY") {
		t.Fatalf("err = %v, want one naming RETRY", err)
	}
}

func TestFileVariant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	os.WriteFile(path, []byte("s3cret\n"), 0o600)
	f := New("x", func(k string) string { return map[string]string{"KEY_FILE": path}[k] })
	key := f.String("key", "KEY", "", "")
	if err := f.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if *key != "s3cret" {
		t.Fatalf("key = %q, want the file's contents without the newline", *key)
	}
	f = New("x", func(k string) string { return map[string]string{"KEY_FILE": "/nonexistent"}[k] })
	f.String("key", "KEY", "", "")
	if err := f.Parse(nil); err == nil || !strings.Contains(err.Error(), "KEY_FILE") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestRequire(t *testing.T) {
	if err := Require([2]string{"A", "x"}, [2]string{"B", " "}); err == nil || err.Error() != "B is required" {
		t.Fatalf("err = %v", err)
	}
}

func TestVersionFlag(t *testing.T) {
	f := New("bridge", func(string) string { return "" })
	var out strings.Builder
	f.Stdout = &out
	err := f.Parse([]string{"--version"})
	if !errors.Is(err, ErrVersion) || !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want ErrVersion (a flag.ErrHelp)", err)
	}
	if !strings.HasPrefix(out.String(), "bridge ") || !strings.Contains(out.String(), runtime.Version()) {
		t.Fatalf("printed %q", out.String())
	}
}
