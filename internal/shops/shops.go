// Package shops reads the Inbank shops one bridge serves: a retailer with
// a shop per country (and sometimes several per country) runs one
// deployment for all of them. Each shop has its own API host, shop uuid,
// product code and API key; its key is referenced (an environment
// variable or a file), never written in the shops file.
package shops

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/smartrent-bridge/bridge/internal/activation"
	"github.com/smartrent-bridge/bridge/internal/ids"
)

// Default is the alias of the shop configured by the INBANK_* variables,
// used by events without a shop.
const Default = ids.DefaultShop

var aliasPattern = ids.ShopAliasPattern

// Shop is one Inbank shop.
type Shop struct {
	Alias            string
	BaseURL          string
	ShopUUID         string
	ProductCode      string
	ActivationPolicy activation.Policy // "" = the bridge's ACTIVATION_POLICY
	SessionTTL       time.Duration     // 0 = the bridge's SESSION_TTL
	Concurrency      int               // Inbank calls in flight for this shop; 0 = the bridge's default
	APIKeyEnv        string            // the key is in this environment variable…
	APIKeyFile       string            // …or in this file (re-read on SIGHUP)
}

// APIKey reads the shop's key from where it is referenced.
func (s Shop) APIKey(getenv func(string) string) (string, error) {
	switch {
	case s.APIKeyFile != "":
		b, err := os.ReadFile(s.APIKeyFile)
		if err != nil {
			return "", fmt.Errorf("shop %s: API key file: %w", s.Alias, err)
		}
		k := strings.TrimSpace(string(b))
		if k == "" {
			return "", fmt.Errorf("shop %s: API key file %s is empty", s.Alias, s.APIKeyFile)
		}
		return k, nil
	case s.APIKeyEnv != "":
		k := getenv(s.APIKeyEnv)
		if k == "" {
			return "", fmt.Errorf("shop %s: environment variable %s (its API key) is not set", s.Alias, s.APIKeyEnv)
		}
		return k, nil
	}
	return "", fmt.Errorf("shop %s: no API key reference", s.Alias)
}

// file is the shops file's shape. Unknown keys are errors.
type file struct {
	Shops map[string]fileShop `yaml:"shops"`
}

type fileShop struct {
	BaseURL          string  `yaml:"baseUrl"`
	ShopUUID         string  `yaml:"shopUuid"`
	ProductCode      string  `yaml:"productCode"`
	APIKey           *keyRef `yaml:"apiKey"`
	ActivationPolicy string  `yaml:"activationPolicy"`
	SessionTTL       string  `yaml:"sessionTtl"`
	Concurrency      int     `yaml:"concurrency"`
}

type keyRef struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// Parse reads a shops file (YAML, or JSON, which is YAML too) and checks
// every shop, including that its API key can be read. The error has one
// line per problem.
func Parse(data []byte, getenv func(string) string) ([]Shop, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("shops file: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if len(f.Shops) == 0 {
		return nil, errors.New("shops file: no shops under \"shops\"")
	}
	var problems []error
	bad := func(alias, format string, args ...any) {
		problems = append(problems, fmt.Errorf("shop %s: "+format, append([]any{alias}, args...)...))
	}
	var out []Shop
	for alias, fs := range f.Shops {
		if alias == Default {
			problems = append(problems, fmt.Errorf("shop alias %q is the shop of the INBANK_* settings; choose another alias", alias))
			continue
		}
		if !aliasPattern.MatchString(alias) {
			problems = append(problems, fmt.Errorf("shop alias %q: use lower-case letters, digits, - and _", alias))
			continue
		}
		s := Shop{Alias: alias, BaseURL: fs.BaseURL, ShopUUID: fs.ShopUUID, ProductCode: fs.ProductCode, Concurrency: fs.Concurrency}
		if u, err := url.Parse(fs.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(alias, "baseUrl %q must be an absolute http(s) URL", fs.BaseURL)
		} else if strings.Contains(u.Path, "/partner/v3") {
			bad(alias, "baseUrl must not contain /partner/v3")
		}
		if fs.ShopUUID == "" {
			bad(alias, "shopUuid is required")
		}
		if fs.ActivationPolicy != "" {
			if p, err := activation.Parse(fs.ActivationPolicy); err != nil {
				bad(alias, "activationPolicy: %v", err)
			} else {
				s.ActivationPolicy = p
			}
		}
		if fs.SessionTTL != "" {
			d, err := time.ParseDuration(fs.SessionTTL)
			if err != nil || d <= 0 {
				bad(alias, "sessionTtl %q is not a positive duration", fs.SessionTTL)
			}
			s.SessionTTL = d
		}
		if fs.Concurrency < 0 {
			bad(alias, "concurrency must not be negative")
		}
		switch {
		case fs.APIKey == nil || (fs.APIKey.Env == "" && fs.APIKey.File == ""):
			bad(alias, "apiKey must reference the key: {env: VARIABLE} or {file: /path} (never the key itself)")
		case fs.APIKey.Env != "" && fs.APIKey.File != "":
			bad(alias, "apiKey: give env or file, not both")
		default:
			s.APIKeyEnv, s.APIKeyFile = fs.APIKey.Env, fs.APIKey.File
			if _, err := s.APIKey(getenv); err != nil {
				problems = append(problems, err)
			}
		}
		out = append(out, s)
	}
	if len(problems) > 0 {
		slices.SortFunc(problems, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, errors.Join(problems...)
	}
	slices.SortFunc(out, func(a, b Shop) int { return strings.Compare(a.Alias, b.Alias) })
	return out, nil
}

// Load reads and parses the shops file at path.
func Load(path string, getenv func(string) string) ([]Shop, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("shops file: %w", err)
	}
	return Parse(b, getenv)
}
