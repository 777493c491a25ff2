// Package cli binds command-line flags to environment variables, so every
// setting of a binary is both (a flag wins over its variable), and --help
// lists each flag with its variable.
package cli

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Getenv reads one environment variable; os.Getenv in main, a map in tests.
type Getenv func(string) string

// Flags is a flag set whose defaults come from the environment.
type Flags struct {
	*flag.FlagSet
	getenv Getenv
	errs   []error
}

// New returns a flag set for the named binary.
func New(name string, getenv Getenv) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &Flags{FlagSet: fs, getenv: getenv}
}

func usage(env, text string) string { return fmt.Sprintf("%s (env %s)", text, env) }

// env returns the variable's value, or the contents of the file named by
// env_FILE (secrets mounted as files), or "".
func (f *Flags) env(name string) string {
	if v := f.getenv(name); v != "" {
		return v
	}
	if path := f.getenv(name + "_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s_FILE: %w", name, err))
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return ""
}

func parsed[T any](f *Flags, env string, def T, parse func(string) (T, error), what string) T {
	v := f.env(env)
	if v == "" {
		return def
	}
	x, err := parse(v)
	if err != nil {
		f.errs = append(f.errs, fmt.Errorf("%s: %q is not %s", env, v, what))
		return def
	}
	return x
}

// StringVar defines a string flag defaulting to $env (or the file named by
// $env_FILE), else def.
func (f *Flags) StringVar(p *string, name, env, def, text string) {
	if v := f.env(env); v != "" {
		def = v
	}
	f.FlagSet.StringVar(p, name, def, usage(env, text))
}

// String is StringVar into a new variable.
func (f *Flags) String(name, env, def, text string) *string {
	p := new(string)
	f.StringVar(p, name, env, def, text)
	return p
}

// DurationVar defines a duration flag defaulting to $env, else def.
func (f *Flags) DurationVar(p *time.Duration, name, env string, def time.Duration, text string) {
	f.FlagSet.DurationVar(p, name, parsed(f, env, def, time.ParseDuration, "a duration (e.g. 30s, 5m)"), usage(env, text))
}

// Duration is DurationVar into a new variable.
func (f *Flags) Duration(name, env string, def time.Duration, text string) *time.Duration {
	p := new(time.Duration)
	f.DurationVar(p, name, env, def, text)
	return p
}

// IntVar defines an int flag defaulting to $env, else def.
func (f *Flags) IntVar(p *int, name, env string, def int, text string) {
	f.FlagSet.IntVar(p, name, parsed(f, env, def, strconv.Atoi, "a whole number"), usage(env, text))
}

// Int is IntVar into a new variable.
func (f *Flags) Int(name, env string, def int, text string) *int {
	p := new(int)
	f.IntVar(p, name, env, def, text)
	return p
}

// Int64Var defines an int64 flag defaulting to $env, else def.
func (f *Flags) Int64Var(p *int64, name, env string, def int64, text string) {
	parse := func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
	f.FlagSet.Int64Var(p, name, parsed(f, env, def, parse, "a whole number"), usage(env, text))
}

// Float defines a float flag defaulting to $env, else def.
func (f *Flags) Float(name, env string, def float64, text string) *float64 {
	parse := func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
	return f.FlagSet.Float64(name, parsed(f, env, def, parse, "a number"), usage(env, text))
}

// Bool defines a bool flag defaulting to $env, else def.
func (f *Flags) Bool(name, env string, def bool, text string) *bool {
	return f.FlagSet.Bool(name, parsed(f, env, def, strconv.ParseBool, "true or false"), usage(env, text))
}

// Parse parses args and returns the first problem with the environment or
// the flags. flag.ErrHelp comes back for --help, after the usage is printed.
func (f *Flags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	if len(f.errs) > 0 {
		return f.errs[0]
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.Arg(0))
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
