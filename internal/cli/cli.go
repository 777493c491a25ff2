// Package cli binds command-line flags to environment variables, so every
// setting of a binary is both (a flag wins over its variable), and --help
// lists each flag with its variable.
//
// The environment is applied after the command line is parsed, to the
// flags it did not set; the flags' defaults are the compiled-in ones. So
// --help and a mistyped flag print those defaults, never a value from the
// environment or a _FILE: INBANK_API_KEY and CALLBACK_SECRET were once
// printed to the pod log that way.
package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/smartrent-bridge/bridge/internal/version"
)

// Getenv reads one environment variable; os.Getenv in main, a map in tests.
type Getenv func(string) string

// Flags is a flag set whose unset flags are read from the environment.
type Flags struct {
	*flag.FlagSet
	getenv   Getenv
	bindings []binding
	// Stdout receives --version (os.Stdout unless a test sets it).
	Stdout      io.Writer
	showVersion *bool
}

// ErrVersion is returned by Parse after --version printed the build; it
// is a flag.ErrHelp, so callers that end quietly on --help do so here too.
var ErrVersion = fmt.Errorf("version printed: %w", flag.ErrHelp)

// binding ties a flag to its variable; what names the expected value in
// an error ("" for strings, which cannot be malformed).
type binding struct{ flag, env, what string }

// New returns a flag set for the named binary.
func New(name string, getenv Getenv) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := &Flags{FlagSet: fs, getenv: getenv, Stdout: os.Stdout}
	f.showVersion = fs.Bool("version", false, "print the version and exit")
	return f
}

func (f *Flags) bind(name, env, what string) {
	f.bindings = append(f.bindings, binding{flag: name, env: env, what: what})
}

func usage(env, text string) string { return fmt.Sprintf("%s (env %s)", text, env) }

// env returns the variable's value, or the contents of the file named by
// env_FILE (secrets mounted as files), or "". The error names the
// variable, never a value.
func (f *Flags) env(name string) (string, error) {
	if v := f.getenv(name); v != "" {
		return v, nil
	}
	if path := f.getenv(name + "_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// StringVar defines a string flag read from $env (or the file named by
// $env_FILE) when the command line does not set it, else def.
func (f *Flags) StringVar(p *string, name, env, def, text string) {
	f.FlagSet.StringVar(p, name, def, usage(env, text))
	f.bind(name, env, "")
}

// String is StringVar into a new variable.
func (f *Flags) String(name, env, def, text string) *string {
	p := new(string)
	f.StringVar(p, name, env, def, text)
	return p
}

// DurationVar defines a duration flag read from $env, else def.
func (f *Flags) DurationVar(p *time.Duration, name, env string, def time.Duration, text string) {
	f.FlagSet.DurationVar(p, name, def, usage(env, text))
	f.bind(name, env, "a duration (e.g. 30s, 5m)")
}

// Duration is DurationVar into a new variable.
func (f *Flags) Duration(name, env string, def time.Duration, text string) *time.Duration {
	p := new(time.Duration)
	f.DurationVar(p, name, env, def, text)
	return p
}

// IntVar defines an int flag read from $env, else def.
func (f *Flags) IntVar(p *int, name, env string, def int, text string) {
	f.FlagSet.IntVar(p, name, def, usage(env, text))
	f.bind(name, env, "a whole number")
}

// Int is IntVar into a new variable.
func (f *Flags) Int(name, env string, def int, text string) *int {
	p := new(int)
	f.IntVar(p, name, env, def, text)
	return p
}

// Int64Var defines an int64 flag read from $env, else def.
func (f *Flags) Int64Var(p *int64, name, env string, def int64, text string) {
	f.FlagSet.Int64Var(p, name, def, usage(env, text))
	f.bind(name, env, "a whole number")
}

// Float defines a float flag read from $env, else def.
func (f *Flags) Float(name, env string, def float64, text string) *float64 {
	p := f.FlagSet.Float64(name, def, usage(env, text))
	f.bind(name, env, "a number")
	return p
}

// Bool defines a bool flag read from $env, else def.
func (f *Flags) Bool(name, env string, def bool, text string) *bool {
	p := new(bool)
	f.BoolVar(p, name, env, def, text)
	return p
}

// BoolVar defines a bool flag read from $env, else def.
func (f *Flags) BoolVar(p *bool, name, env string, def bool, text string) {
	f.FlagSet.BoolVar(p, name, def, usage(env, text))
	f.bind(name, env, "true or false")
}

// Parse parses args, then reads the environment into the flags args did
// not set, and returns the first problem. flag.ErrHelp comes back for
// --help, after the usage (with compiled-in defaults) is printed.
func (f *Flags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	if *f.showVersion {
		fmt.Fprintln(f.Stdout, f.Name(), version.Get())
		return ErrVersion
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.Arg(0))
	}
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, b := range f.bindings {
		if set[b.flag] {
			continue
		}
		v, err := f.env(b.env)
		if err != nil {
			return err
		}
		if v == "" {
			continue
		}
		if err := f.Set(b.flag, v); err != nil {
			return fmt.Errorf("%s: %q is not %s", b.env, v, b.what) // only typed values fail; strings (secrets) cannot
		}
	}
	return nil
}

// Require returns an error naming the first empty setting, as
// "NAME is required (flag --name)".
func Require(settings ...[2]string) error {
	for _, s := range settings {
		if strings.TrimSpace(s[1]) == "" {
			return fmt.Errorf("%s is required", s[0])
		}
	}
	return nil
}
