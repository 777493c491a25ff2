// Package cli binds command-line flags to environment variables, so every
// setting of a binary is both (flags win), and --help lists each flag with
// its variable.
package cli

import (
	"flag"
	"fmt"
	"strconv"
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

// String defines a string flag defaulting to $env, else def.
func (f *Flags) String(name, env, def, text string) *string {
	if v := f.getenv(env); v != "" {
		def = v
	}
	return f.FlagSet.String(name, def, usage(env, text))
}

// Duration defines a duration flag defaulting to $env, else def.
func (f *Flags) Duration(name, env string, def time.Duration, text string) *time.Duration {
	if v := f.getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %q is not a duration (e.g. 30s, 5m)", env, v))
		} else {
			def = d
		}
	}
	return f.FlagSet.Duration(name, def, usage(env, text))
}

// Int defines an int flag defaulting to $env, else def.
func (f *Flags) Int(name, env string, def int, text string) *int {
	if v := f.getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %q is not a whole number", env, v))
		} else {
			def = n
		}
	}
	return f.FlagSet.Int(name, def, usage(env, text))
}

// Float defines a float flag defaulting to $env, else def.
func (f *Flags) Float(name, env string, def float64, text string) *float64 {
	if v := f.getenv(env); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %q is not a number", env, v))
		} else {
			def = n
		}
	}
	return f.FlagSet.Float64(name, def, usage(env, text))
}

// Bool defines a bool flag defaulting to $env, else def.
func (f *Flags) Bool(name, env string, def bool, text string) *bool {
	if v := f.getenv(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %q is not true or false", env, v))
		} else {
			def = b
		}
	}
	return f.FlagSet.Bool(name, def, usage(env, text))
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
